//! `plan capacity`: the over-commit that deferred the source plan, what fits instead, and what fails when.

mod common;

use common::{plan, remove_steps, scenario, write};
use serde_json::Value;

fn json(args: &[&str], expected_code: i32) -> Value {
    let out = plan(args);
    assert_eq!(out.code, expected_code, "plan {args:?}\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).expect("capacity prints JSON")
}

fn trigger<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["triggers"].as_array().expect("triggers").iter().find(|t| t["trigger"] == id).expect("every trigger reported")
}

fn host<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let hosts = doc["exposure"]["resilience"]["hypervisors"].as_array().expect("host failures listed");
    hosts.iter().find(|h| h["hypervisor"] == name).expect("hypervisor listed")
}

/// A scenario file edited in a temporary directory.
fn edited(dir: &tempfile::TempDir, base: &str, edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(scenario(base)).expect("scenario reads");
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from:?} occurs once in {base}");
        text = text.replace(from, to);
    }
    write(dir.path(), base, &text)
}

#[test]
fn homelab_is_over_committed_with_the_source_plans_figures() {
    let out = plan(&["capacity"]);
    assert_eq!(out.code, 1, "over-commit exits 1\n{}", out.stderr);
    assert!(out.stdout.contains("262 + 2 x 32 = 326 GB against 267 GB physical, limit 253.7 GB (5% headroom)"), "{}", out.stdout);
    assert!(out.stdout.contains("pve: OVER-COMMITTED (beyond physical RAM)"));
    assert!(out.stdout.contains("59 GB over physical RAM; 1.5 GB of swap already in use"));
    assert!(out.stdout.contains("Verdict: OVER-COMMITTED: pve 262 + 2 x 32 = 326 GB against 267 GB physical (limit 253.7 GB)"));
    assert!(out.stderr.contains("over-committed: pve 262 + 2 x 32 = 326 GB"), "{}", out.stderr);
    // Sizing: 4.6 GB used needs 8 GB; 16 GB masters need RAM freed, 8 GB a hair over the headroom.
    assert!(out.stdout.contains("k8s-master uses 4.6 GB of 32 GB"));
    assert!(out.stdout.contains("smallest size 8 GB"));
    assert!(out.stdout.contains("16 GB: peak pve 278 of 253.7 GB: 24.4 GB to free; keeping k8s-master at 32 GB: 40.4 GB to free"));
    assert!(out.stdout.contains("8 GB: peak pve 254 of 253.7 GB"));
    // Exposure: one host, one load balancer.
    assert!(out.stdout.contains("=> HA against a master VM failure, not against a host failure"), "{}", out.stdout);
    assert!(out.stdout.contains("the load balancer fails:  NOT survivable (pfsense)"));
}

#[test]
fn homelab_json_carries_the_figures() {
    let doc = json(&["capacity", "--format", "json"], 1);
    assert_eq!(doc["capacity_format"], 1);
    assert_eq!(doc["scenario"], "homelab");
    assert_eq!(doc["verdict"], "over-committed");
    assert_eq!(doc["masters_before"], 1);
    assert_eq!(doc["masters_after"], 3);
    assert_eq!(doc["plan_halted"], Value::Null);
    assert_eq!(doc["policy"]["ram_headroom_percent"], 5.0);
    assert_eq!(doc["policy"]["vcpu_per_core_max"], Value::Null);

    let pve = &doc["hypervisors"][0];
    assert_eq!(pve["name"], "pve");
    assert_eq!(pve["fits"], false);
    assert_eq!(pve["migration_adds"], true);
    let ram = &pve["ram"];
    assert_eq!(ram["before_gb"], 262.0);
    assert_eq!(ram["peak_gb"], 326.0);
    assert_eq!(ram["after_gb"], 326.0);
    assert_eq!(ram["physical_gb"], 267.0);
    assert_eq!(ram["limit_gb"], 253.65);
    assert_eq!(ram["over_limit_gb"], 72.35);
    assert_eq!(ram["over_physical_gb"], 59.0);
    assert_eq!(ram["peak_step"], "3.1");
    assert_eq!(ram["verdict"], "over-physical");
    let masters: Vec<(&str, f64)> =
        pve["new_masters"].as_array().unwrap().iter().map(|m| (m["name"].as_str().unwrap(), m["ram_gb"].as_f64().unwrap())).collect();
    assert_eq!(masters, [("k8s-master-2", 32.0), ("k8s-master-3", 32.0)]);
    assert_eq!(pve["vcpu"]["added_at_peak"], 16);
    assert_eq!(pve["vcpu"]["verdict"], "not-judged");

    let sizing = &doc["sizing"];
    assert_eq!(sizing["needed_gb"], 7.67);
    assert_eq!(sizing["smallest_size_gb"], 8.0);
    assert_eq!(sizing["right_size_max_gb"], 16.0);
    let sixteen = sizing["sizes"].as_array().unwrap().iter().find(|s| s["size_gb"] == 16.0).expect("16 GB listed");
    assert_eq!(sixteen["to_free_gb"], 24.35);
    assert_eq!(sixteen["to_free_keeping_existing_gb"], 40.35);
    assert_eq!(sixteen["fits"], false);

    let exposure = &doc["exposure"];
    assert_eq!(exposure["before"]["voters"], 1);
    assert_eq!(exposure["before"]["tolerance"], 0);
    assert_eq!(exposure["after"]["voters"], 3);
    assert_eq!(exposure["after"]["tolerance"], 1);
    let after: Vec<&str> = exposure["after"]["single_points"].as_array().unwrap().iter().map(|p| p["machine"].as_str().unwrap()).collect();
    assert_eq!(after, ["pfsense", "pve"]);
    let res = &exposure["resilience"];
    assert_eq!(res["master_vm_failure"], "survivable");
    assert_eq!(res["load_balancer_failure"], "not-survivable");
    assert_eq!(res["hypervisor_failure"], "not-survivable");
    assert_eq!(host(&doc, "pve")["voters"], 3);

    assert_eq!(trigger(&doc, "second-hypervisor")["state"], "not-met");
    assert_eq!(trigger(&doc, "right-sized-masters")["state"], "not-met");
    assert_eq!(trigger(&doc, "ram-freed")["state"], "not-met");
    assert_eq!(trigger(&doc, "upgrade-nursing")["state"], "unknown");
}

#[test]
fn exposure_windows_follow_the_plan() {
    let doc = json(&["capacity", "--format", "json"], 1);
    let exposure = &doc["exposure"];
    let plan_s = doc["plan_duration_s"].as_u64().unwrap();
    let windows = exposure["windows"].as_array().unwrap();
    assert_eq!(windows.iter().map(|w| w["duration_s"].as_u64().unwrap()).sum::<u64>(), plan_s, "windows cover the plan");
    assert_eq!(windows[0]["from_step"], "0.1");
    // The 2-voter stretch: no tolerance, and either master alone takes quorum away.
    let two = windows
        .iter()
        .find(|w| w["voters_min"].as_u64() <= Some(2) && w["voters_max"].as_u64() >= Some(2))
        .expect("a window through 2 voters");
    assert_eq!(two["tolerance"], 0);
    for master in ["k8s-master", "k8s-master-2"] {
        let point = two["single_points"].as_array().unwrap().iter().find(|p| p["machine"] == master).expect("a single point");
        assert_eq!(point["impact"]["quorum_lost"], true, "{master}");
        assert_eq!(point["kind"], "master");
    }
    // Before the cut-over the old master stops the clients; after it the load balancer does.
    let phase = |id: &str| exposure["phases"].as_array().unwrap().iter().find(|p| p["phase"] == id).expect("phase");
    let machines = |p: &Value| -> Vec<String> {
        p["single_points"].as_array().unwrap().iter().map(|s| s["machine"].as_str().unwrap().to_string()).collect()
    };
    assert!(machines(phase("1")).contains(&"k8s-master".to_string()));
    assert!(!machines(phase("1")).contains(&"pfsense".to_string()));
    assert_eq!(machines(phase("7")), ["pfsense", "pve"]);
    let timed = exposure["single_point_time"].as_array().unwrap();
    let pve = timed.iter().find(|t| t["machine"] == "pve").expect("pve timed");
    assert_eq!(pve["duration_s"].as_u64().unwrap(), plan_s, "the only host is a single point all along");
    assert!(exposure["tolerance_zero_s"].as_u64().unwrap() > 0);
}

#[test]
fn rightsized_homelab_fits_and_shows_the_new_peak() {
    let path = scenario("homelab-rightsized.yaml");
    let out = plan(&["--scenario", &path, "capacity"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("214 + 2 x 16 = 246 GB against 267 GB physical, limit 253.7 GB"), "{}", out.stdout);
    assert!(out.stdout.contains("Verdict: FITS: pve peak 214 + 2 x 16 = 246 GB"));
    let doc = json(&["--scenario", &path, "capacity", "--format", "json"], 0);
    assert_eq!(doc["verdict"], "fits");
    assert_eq!(doc["hypervisors"][0]["ram"]["peak_gb"], 246.0);
    assert_eq!(doc["hypervisors"][0]["ram"]["verdict"], "fits");
    assert_eq!(trigger(&doc, "right-sized-masters")["state"], "met");
    assert_eq!(trigger(&doc, "ram-freed")["state"], "met");
    assert_eq!(trigger(&doc, "second-hypervisor")["state"], "not-met");
}

#[test]
fn masters_spread_over_hypervisors_survive_a_host_failure() {
    // Three hosts, one master each: any one may fail.
    let doc = json(&["--scenario", &scenario("three-hypervisors.yaml"), "capacity", "--format", "json"], 0);
    assert_eq!(doc["exposure"]["resilience"]["hypervisor_failure"], "survivable");
    for h in ["hv-north", "hv-south", "hv-east"] {
        assert_eq!(host(&doc, h)["survivable"], true, "{h}");
        assert_eq!(host(&doc, h)["voters"], 1);
    }
    assert_eq!(trigger(&doc, "second-hypervisor")["state"], "met");
    let out = plan(&["--scenario", &scenario("three-hypervisors.yaml"), "capacity"]);
    assert!(out.stdout.contains("=> HA against a master VM failure and a host failure"), "{}", out.stdout);
    assert!(!out.stdout.contains("10.0.20.") && !out.stdout.contains("k8s-master"), "nothing of the homelab leaks in");

    // Two hosts: the one with a single master may fail, the one with an etcd majority may not.
    let doc = json(&["--scenario", &scenario("two-hypervisors.yaml"), "capacity", "--format", "json"], 0);
    assert_eq!(doc["exposure"]["resilience"]["hypervisor_failure"], "partly-survivable");
    assert_eq!(host(&doc, "hv-south")["survivable"], true);
    assert_eq!(host(&doc, "hv-north")["survivable"], false);
    assert_eq!(host(&doc, "hv-north")["impact"]["quorum_lost"], true);
    let evidence = trigger(&doc, "second-hypervisor")["evidence"].as_str().unwrap().to_string();
    assert!(evidence.contains("hv-south may fail, hv-north may not (2 of 3 etcd voters on it)"), "{evidence}");
    assert_eq!(doc["hypervisors"][0]["vcpu"]["verdict"], "fits", "vCPU judged with cores and a policy");
}

#[test]
fn the_source_plans_revisit_triggers_are_judged_only_where_the_scenario_asks() {
    let doc = json(&["--scenario", &scenario("five-masters.yaml"), "capacity", "--format", "json"], 0);
    assert_eq!(doc["triggers"], serde_json::json!([]), "five masters do not ask");
    let out = plan(&["--scenario", &scenario("five-masters.yaml"), "capacity"]);
    assert!(!out.stdout.contains("Revisit triggers") && !out.stdout.contains("98%"), "{}", out.stdout);
    let out = plan(&["capacity"]);
    assert!(out.stdout.contains("Revisit triggers of the source plan"), "the homelab asks: {}", out.stdout);
}

#[test]
fn all_masters_on_one_hypervisor_do_not_survive_a_host_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(
        &dir,
        "three-hypervisors.yaml",
        &[
            ("vmid: 411, hypervisor: hv-south", "vmid: 411, hypervisor: hv-north"),
            ("vmid: 412, hypervisor: hv-east", "vmid: 412, hypervisor: hv-north"),
        ],
    );
    let doc = json(&["--scenario", &path, "capacity", "--format", "json"], 0);
    let res = &doc["exposure"]["resilience"];
    assert_eq!(res["master_vm_failure"], "survivable");
    assert_eq!(res["hypervisor_failure"], "not-survivable", "{res}");
    assert_eq!(host(&doc, "hv-north")["voters"], 3);
    assert_eq!(trigger(&doc, "second-hypervisor")["state"], "not-met");
    let out = plan(&["--scenario", &path, "capacity"]);
    assert!(out.stdout.contains("=> HA against a master VM failure, not against a host failure"), "{}", out.stdout);
}

#[test]
fn five_voters_tolerate_two() {
    let doc = json(&["--scenario", &scenario("five-masters.yaml"), "capacity", "--format", "json"], 0);
    assert_eq!(doc["exposure"]["after"]["voters"], 5);
    assert_eq!(doc["exposure"]["after"]["tolerance"], 2);
    assert_eq!(doc["masters_after"], 5);
}

#[test]
fn vcpu_over_the_policy_is_an_over_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "two-hypervisors.yaml", &[("vcpu_per_core_max: 4", "vcpu_per_core_max: 1.5")]);
    let out = plan(&["--scenario", &path, "capacity"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("44 vCPU over the 36 vCPU limit"), "{}", out.stderr);
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "two-hypervisors.yaml", &[("master_ram_headroom_percent: 40", "master_ram_headroom_percent: 140")]);
    let out = plan(&["--scenario", &path, "capacity"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("master_ram_headroom_percent") && out.stderr.contains("140"), "{}", out.stderr);

    let path = edited(&dir, "two-hypervisors.yaml", &[("vcpu_per_core_max: 4", "vcpu_per_core: 4")]);
    let out = plan(&["--scenario", &path, "capacity"]);
    assert_eq!(out.code, 2, "an unknown policy field is refused");
    assert!(out.stderr.contains("vcpu_per_core"), "{}", out.stderr);

    let out = plan(&["capacity", "--format", "yaml"]);
    assert_eq!(out.code, 2);
    let out = plan(&["--scenario", "/nonexistent/scenario.yaml", "capacity"]);
    assert_eq!(out.code, 2);
}

#[test]
fn an_edited_plan_is_walked_as_edited() {
    let dir = tempfile::tempdir().unwrap();
    let exported = plan(&["show", "--format", "yaml"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let path = write(dir.path(), "plan.yaml", &remove_steps(&exported.stdout, &["3.1"]));
    let doc = json(&["--plan", &path, "capacity", "--format", "json"], 1);
    // Without step 3.1 master-3's VM never exists: the walk stops when 3.2 checks it, at 294 GB.
    assert_eq!(doc["plan_halted"]["step"], "3.2");
    assert_eq!(doc["hypervisors"][0]["ram"]["peak_gb"], 294.0);
}

#[test]
fn check_fails_on_the_homelab_for_the_capacity_reason() {
    let out = plan(&["check", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).expect("check prints JSON");
    let ram = doc["violations"].as_array().unwrap().iter().find(|v| v["invariant"] == "hypervisor-ram").expect("hypervisor-ram broken");
    let why = ram["why"].as_str().unwrap();
    assert!(why.contains("262 + 32 = 294 GB committed, over the 253.7 GB limit"), "{why}");
    assert!(why.contains("with every new master: 262 + 2 x 32 = 326 GB against 267 GB physical"), "{why}");
    let fits = plan(&["--scenario", &scenario("homelab-rightsized.yaml"), "check", "--format", "json"]);
    let doc: Value = serde_json::from_str(&fits.stdout).expect("check prints JSON");
    assert!(doc["violations"].as_array().unwrap().iter().all(|v| v["invariant"] != "hypervisor-ram"), "right-sized masters fit");
}

/// Pins the report: a change to the figures, the wording or the JSON interface shows up as a
/// snapshot diff to review, never silently.
#[test]
fn homelab_report_snapshots() {
    let text = plan(&["capacity"]);
    insta::assert_snapshot!("capacity_homelab_text", text.stdout);
    let doc = json(&["capacity", "--format", "json"], 1);
    insta::assert_json_snapshot!("capacity_homelab_json", doc);
}
