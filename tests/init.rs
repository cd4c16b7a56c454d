//! `plan init`: the starter it writes passes `plan check` (exit 0 or 1, never 2) for every size and
//! profile; it refuses what it must not guess; `--from-cluster` reads the lab's apiserver stand-in.
//!
//! Every address here is in TEST-NET-1 (192.0.2.0/24, documentation only) or on loopback; the
//! stand-in listens on 127.0.0.1 and the guard (`PLAN_LOOPBACK_ONLY=1`) refuses any other API
//! server. No external binary is needed: the stand-in's etcd health is a tiny HTTP answer here.

mod common;

use common::{plan, refused, Output};
use plan_lab::apiserver::{ApiObjects, ApiserverStandIn};
use plan_lab::pki::{LabCa, ServingCertSans};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The flags of a starter with `masters` masters, everything an address needs given.
fn flags(masters: u32) -> Vec<String> {
    let mut args = vec![
        "init".to_string(),
        format!("--masters={masters}"),
        "--first-master=cp-1=192.0.2.10".to_string(),
        "--vip=192.0.2.9".to_string(),
        "--fqdn=k8s-api.example.lan".to_string(),
        "--lb-host=lb=192.0.2.2".to_string(),
        "--hypervisor-host=hv-1=192.0.2.3".to_string(),
    ];
    args.extend((2..=masters).map(|n| format!("--new-master=cp-{n}=192.0.2.{}", 10 + n)));
    args
}

fn run(args: &[String]) -> Output {
    plan(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Writes the starter `args` describe to a file and runs `plan check` on it.
fn init_then_check(dir: &Path, args: &[String]) -> (Output, Option<Output>) {
    let file = dir.join(format!("starter-{}.yaml", args.len() + args.iter().map(String::len).sum::<usize>()));
    let _ = std::fs::remove_file(&file);
    let mut args = args.to_vec();
    args.push(format!("--output={}", file.display()));
    let init = run(&args);
    if init.code != 0 {
        return (init, None);
    }
    let check = plan(&["--scenario", &file.display().to_string(), "check"]);
    (init, Some(check))
}

#[track_caller]
fn assert_checks(dir: &Path, args: &[String]) -> String {
    let (init, check) = init_then_check(dir, args);
    assert_eq!(init.code, 0, "{args:?}: {}", init.stderr);
    let check = check.expect("checked");
    assert!(check.code == 0 || check.code == 1, "{args:?}: plan check exit {}: {}", check.code, check.stderr);
    init.stdout
}

#[test]
fn starters_of_every_size_and_profile_pass_check_with_exit_0_or_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    for masters in [3, 5, 7] {
        assert_checks(dir.path(), &flags(masters));
    }
    // Profiles together: keepalived on 7 masters without IaC or DNS, kube-vip on machines provided.
    let mut keepalived = flags(7);
    keepalived.retain(|a| !a.starts_with("--lb-host"));
    keepalived.extend(["--lb=keepalived", "--iac=none", "--dns=none", "--hypervisor=libvirt"].map(String::from));
    assert_checks(dir.path(), &keepalived);
    let mut bare = flags(5);
    bare.retain(|a| !a.starts_with("--lb-host") && !a.starts_with("--hypervisor-host"));
    bare.extend(["--lb=kube-vip", "--hypervisor=none", "--iac=none", "--dns=by-hand"].map(String::from));
    assert_checks(dir.path(), &bare);
    let mut varied = flags(5);
    varied.extend(
        [
            "--name=edge",
            "--port=8443",
            "--kubernetes=1.29",
            "--worker=w-1=192.0.2.30",
            "--worker=w-2=192.0.2.31",
            "--hypervisor-host=hv-2=192.0.2.4",
        ]
        .map(String::from),
    );
    assert_checks(dir.path(), &varied);
    let profiles = [
        ("--lb", ["pfsense-bootstrap", "haproxy", "keepalived", "kube-vip"].as_slice()),
        ("--hypervisor", ["proxmox", "libvirt", "none"].as_slice()),
        ("--iac", ["terragrunt", "none"].as_slice()),
        ("--dns", ["iac", "by-hand", "none"].as_slice()),
    ];
    for (flag, values) in profiles {
        for value in values {
            let mut args = flags(3);
            if ["keepalived", "kube-vip"].contains(value) {
                // The VIP lives on the masters: there is no load balancer machine to name.
                args.retain(|a| !a.starts_with("--lb-host"));
            }
            if *value == "none" && flag == "--hypervisor" {
                args.retain(|a| !a.starts_with("--hypervisor-host"));
            }
            args.push(format!("{flag}={value}"));
            assert_checks(dir.path(), &args);
        }
    }
}

/// The starter as an operator reads it: every comment and placeholder, held byte for byte.
#[test]
fn the_starter_reads_as_written() {
    let mut args = flags(3);
    args.extend(["--name=edge", "--worker=w-1=192.0.2.30", "--lb=haproxy", "--hypervisor=libvirt", "--kubernetes=1.33"].map(String::from));
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("starter_haproxy_libvirt", out.stdout);
}

#[test]
fn init_writes_to_stdout_and_refuses_to_overwrite_without_force() {
    let out = run(&flags(3));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("# plan scenario 'cluster', written by plan init"), "{}", out.stdout);
    assert!(out.stdout.contains("control_plane_count: 3"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mine.yaml");
    std::fs::write(&file, "keep me\n").expect("written");
    let mut args = flags(3);
    args.push(format!("--output={}", file.display()));
    let said = refused(&run(&args));
    assert!(said.contains("exists: plan init does not overwrite a scenario without --force"), "{said}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me\n");
    args.push("--force".to_string());
    let written = run(&args);
    assert_eq!(written.code, 0, "{}", written.stderr);
    assert!(written.stdout.starts_with(&format!("plan init: wrote {}: ", file.display())), "{}", written.stdout);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), out.stdout, "the file holds what stdout showed");
}

#[test]
fn a_missing_address_or_a_bad_answer_is_refused_in_one_line() {
    let without = |flag: &str| -> Vec<String> { flags(3).into_iter().filter(|a| !a.starts_with(flag)).collect() };
    for (dropped, named) in [
        ("--first-master", "--first-master NAME=ADDRESS is needed"),
        ("--vip", "--vip ADDRESS is needed"),
        ("--fqdn", "--fqdn NAME is needed"),
        ("--lb-host", "--lb-host NAME=ADDRESS is needed"),
        ("--hypervisor-host", "--hypervisor-host NAME=ADDRESS is needed"),
    ] {
        let said = refused(&run(&without(dropped)));
        assert!(said.contains(named), "{dropped}: {said}");
    }
    // Every answer missing is named in the one refusal, not one per try.
    let bare = refused(&plan(&["init", "--masters", "5", "--first-master", "alpha=198.51.100.10", "--new-master", "bravo=198.51.100.11"]));
    assert!(bare.starts_with("plan init: 5 answers are needed; --new-master NAME=ADDRESS: --masters 5 needs 4 new masters"), "{bare}");
    for flag in ["--vip ADDRESS: ", "--fqdn NAME: ", "--hypervisor-host NAME=ADDRESS: ", "--lb-host NAME=ADDRESS: "] {
        assert!(bare.contains(&format!("; {flag}")), "{flag}: {bare}");
    }
    assert!(!bare.contains("--first-master"), "the first master was given: {bare}");
    let mut one_short = flags(3);
    one_short.pop();
    assert!(refused(&run(&one_short)).contains("--masters 3 needs 2 new masters"));
    let mut four = flags(3);
    four[1] = "--masters=4".to_string();
    assert!(refused(&run(&four)).contains("3, 5 or 7"));
    let mut clash = flags(3);
    clash.push("--worker=w-1=192.0.2.10".to_string());
    assert!(refused(&run(&clash)).contains("192.0.2.10"), "a repeated address is the validator's refusal");
    let mut not_an_address = flags(3);
    not_an_address.push("--worker=w-1=w-1.lan".to_string());
    assert!(refused(&run(&not_an_address)).contains("not an IPv4 address"));
    assert!(refused(&plan(&["init", "--kubeconfig", "k"])).contains("--from-cluster"), "--kubeconfig needs --from-cluster");
    let mut no_zone = without("--fqdn");
    no_zone.push("--fqdn=api".to_string());
    assert!(refused(&run(&no_zone)).contains("--fqdn api has no zone"));
    let mut on_masters = flags(3);
    on_masters.push("--lb=keepalived".to_string());
    assert!(refused(&run(&on_masters)).contains("--lb-host lb: --lb keepalived runs on the masters"));
    let mut nowhere = flags(3);
    nowhere.push("--output=/nonexistent-plan-init/s.yaml".to_string());
    assert_eq!(refused(&run(&nowhere)), "--output /nonexistent-plan-init/s.yaml: the directory /nonexistent-plan-init does not exist");
}

/// A tiny "etcd" on loopback that answers `GET /health` healthy: the stand-in serves the API's
/// objects only while its local etcd is healthy.
fn healthy_etcd() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("fake etcd");
    let address = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n{\"health\":\"true\"}");
        }
    });
    address
}

/// The lab's apiserver stand-in with real TLS on 127.0.0.1, serving `nodes` and `kubeadm_config`,
/// and a kubeconfig that trusts its CA.
struct Cluster {
    _stand_in: ApiserverStandIn,
    kubeconfig: std::path::PathBuf,
    served: Arc<AtomicUsize>,
    address: SocketAddr,
}

fn cluster(dir: &Path, nodes: &str, kubeadm_config: &str) -> Cluster {
    let ca = LabCa::new(dir).expect("CA");
    let ip = Ipv4Addr::LOCALHOST;
    let (crt, key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    let sans = ServingCertSans::of("cp-1", ip, None);
    ca.issue(&sans, &crt, &key).expect("issued");
    let objects = ApiObjects {
        nodes: dir.join("nodes"),
        cluster_configuration: dir.join("kubeadm-config.yaml"),
        cluster_info: dir.join("cluster-info.yaml"),
        served: Arc::new(AtomicUsize::new(0)),
    };
    std::fs::write(&objects.nodes, nodes).expect("nodes");
    std::fs::write(&objects.cluster_configuration, kubeadm_config).expect("kubeadm-config");
    let served = Arc::clone(&objects.served);
    // A free port, then the stand-in binds it: another test may take it between the two (seen
    // once under the parallel suite), so a few tries.
    let (stand_in, address) = (0..5)
        .find_map(|_| {
            let port = TcpListener::bind((ip, 0)).expect("a free port").local_addr().expect("bound").port();
            let address = SocketAddr::from((ip, port));
            ApiserverStandIn::start("cp-1", address, &crt, &key, healthy_etcd(), Some(objects.clone())).ok().map(|s| (s, address))
        })
        .expect("the stand-in starts on a free port");
    let ca_pem = std::fs::read(dir.join("ca.crt")).expect("ca.crt");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, plan_lab::executor_lab::kubeconfig_file(&format!("https://{address}"), &ca_pem)).expect("kubeconfig");
    Cluster { _stand_in: stand_in, kubeconfig, served, address }
}

/// `plan init --from-cluster` with `args`, the guard on, `$KUBECONFIG` set to `kubeconfig`.
fn init_from_cluster(kubeconfig: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_plan"))
        .args(["init", "--from-cluster"])
        .args(args)
        .env("PLAN_LOOPBACK_ONLY", "1")
        .env("KUBECONFIG", kubeconfig)
        .current_dir(common::root())
        .output()
        .expect("the plan binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const ONE_MASTER: &str = "cp-1 Ready control-plane 127.0.30.10 v1.33.4\nw-1 Ready <none> 127.0.30.20 v1.33.4\nw-2 NotReady <none>\n";
const KUBEADM_CONFIG: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.4\n\
                              controlPlaneEndpoint: k8s-api.lab.example:6443\napiServer:\n  certSANs:\n  - k8s-api.lab.example\n\
                              \x20 extraArgs:\n  - name: oidc-issuer-url\n    value: https://id.lab.example\n";
/// What no cluster can say: the new masters, the VIP, the machines around the cluster.
const NOT_IN_THE_CLUSTER: [&str; 8] = [
    "--new-master",
    "cp-2=127.0.30.11",
    "--new-master",
    "cp-3=127.0.30.12",
    "--vip=127.0.30.9",
    "--lb-host=lb=127.0.30.2",
    "--hypervisor-host=hv-1=127.0.30.3",
    "--name=lab",
];

#[test]
fn from_cluster_reads_the_lab_stand_in_read_only_and_the_result_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = cluster(dir.path(), ONE_MASTER, KUBEADM_CONFIG);
    let out = init_from_cluster(&lab.kubeconfig, &NOT_IN_THE_CLUSTER);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lab.served.load(Ordering::SeqCst), 2, "one node list and one ConfigMap, nothing else");
    let s = plan_model::validate::parse_scenario(&out.stdout).expect("validates");
    let master = &s.nodes[0];
    assert_eq!((master.name.as_str(), master.address.to_string().as_str()), ("cp-1", "127.0.30.10"));
    assert_eq!(s.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["cp-1", "w-1"], "w-2 has no InternalIP");
    assert_eq!(s.kubernetes.version, "1.33", "from kubeadm-config's kubernetesVersion");
    assert_eq!(s.control_plane_endpoint.fqdn, "k8s-api.lab.example", "from its controlPlaneEndpoint");
    assert_eq!(s.dns.zone, "lab.example");
    let words = out.stdout.split_whitespace().filter(|w| *w != "#").collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("Read from the cluster at https://{}/: 3 node(s), kubeadm-config", lab.address)), "{}", out.stdout);
    assert!(words.contains("Left out (read from the cluster): w-2 (no IPv4 InternalIP)."), "{}", out.stdout);
    assert!(words.contains("extraArgs (read from the cluster) sets oidc-issuer-url"), "{}", out.stdout);
    // The flags win over what was read.
    let mut flagged = NOT_IN_THE_CLUSTER.to_vec();
    flagged.extend(["--kubernetes=1.34", "--fqdn=api.other.example", "--first-master=cp-1=127.0.30.10"]);
    let out = init_from_cluster(&lab.kubeconfig, &flagged);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let s = plan_model::validate::parse_scenario(&out.stdout).expect("validates");
    assert_eq!((s.kubernetes.version.as_str(), s.control_plane_endpoint.fqdn.as_str()), ("1.34", "api.other.example"));
    // And what was read goes through plan check.
    let file = dir.path().join("lab.yaml");
    let mut written = NOT_IN_THE_CLUSTER.to_vec();
    let output = format!("--output={}", file.display());
    written.push(&output);
    assert_eq!(init_from_cluster(&lab.kubeconfig, &written).code, 0);
    let check = plan(&["--scenario", &file.display().to_string(), "check"]);
    assert!(check.code == 0 || check.code == 1, "plan check exit {}: {}", check.code, check.stderr);
}

#[test]
fn from_cluster_refuses_a_cluster_with_two_masters_and_an_api_it_cannot_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let two = "cp-1 Ready control-plane 127.0.30.10 v1.33.4\ncp-2 Ready control-plane 127.0.30.11 v1.33.4\n";
    let lab = cluster(dir.path(), two, KUBEADM_CONFIG);
    let said = refused(&init_from_cluster(&lab.kubeconfig, &NOT_IN_THE_CLUSTER));
    assert!(said.contains("already has 2 control-plane nodes (cp-1, cp-2): plan converts a cluster with exactly one"), "{said}");
    let kubeconfig = lab.kubeconfig.clone();
    drop(lab);
    let said = refused(&init_from_cluster(&kubeconfig, &NOT_IN_THE_CLUSTER));
    assert!(said.starts_with("plan init --from-cluster: cannot read the cluster at https://127.0.0.1:"), "{said}");
    // Off loopback, the guard refuses before any connection (TEST-NET-1, never a real host).
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, plan_lab::executor_lab::kubeconfig_file("https://192.0.2.99:6443", b"")).expect("kubeconfig");
    let said = refused(&init_from_cluster(&elsewhere, &NOT_IN_THE_CLUSTER));
    assert!(said.contains("PLAN_LOOPBACK_ONLY=1 allows loopback destinations"), "{said}");
    let said = refused(&init_from_cluster(&dir.path().join("none"), &NOT_IN_THE_CLUSTER));
    assert!(said.contains("kubeconfig"), "{said}");
}
