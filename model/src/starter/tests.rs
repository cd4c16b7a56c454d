use super::*;
use crate::scenario::{DnsVia, HypervisorKind, IacKind, LbKind, NodeRole};
use crate::validate::parse_scenario;

/// Addresses of TEST-NET-1 (RFC 5737): documentation only, never a real host.
fn machine(name: &str, last: u8) -> Machine {
    Machine { name: name.to_string(), address: Ipv4Addr::new(192, 0, 2, last) }
}

fn answers(masters: u32) -> Answers {
    Answers {
        name: "starter".to_string(),
        masters,
        kubernetes_version: Some("1.34".to_string()),
        first_master: Some(machine("cp-1", 10)),
        new_masters: (2..=masters).map(|n| machine(&format!("cp-{n}"), 10 + n as u8)).collect(),
        workers: vec![machine("worker-1", 30), machine("worker-2", 31)],
        vip: Some(Ipv4Addr::new(192, 0, 2, 9)),
        fqdn: Some("k8s-api.example.lan".to_string()),
        lb_host: Some(machine("lb", 2)),
        hypervisor_hosts: vec![machine("hv-1", 3), machine("hv-2", 4)],
        ..Answers::default()
    }
}

#[test]
fn a_starter_of_every_size_validates_and_holds_the_answers() {
    for masters in MASTER_COUNTS {
        let text = render(&answers(masters)).expect("renders");
        let s = parse_scenario(&text).expect("validates");
        assert_eq!(s.target.control_plane_count, masters);
        assert_eq!(s.new_masters.len(), masters as usize - 1);
        let control_plane: Vec<_> = s.nodes.iter().filter(|n| n.role == NodeRole::ControlPlane).collect();
        assert_eq!(control_plane.len(), 1);
        assert_eq!((control_plane[0].name.as_str(), control_plane[0].address), ("cp-1", Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(s.nodes.len(), 3, "the master and two workers");
        assert_eq!(s.control_plane_endpoint.vip, Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(s.dns.zone, "example.lan");
        // The new masters spread over the hypervisors in order.
        assert_eq!(s.new_masters[0].hypervisor, "hv-1");
        assert_eq!(s.new_masters[1].hypervisor, "hv-2");
    }
}

#[test]
fn every_field_written_carries_a_comment() {
    let text = render(&answers(5)).expect("renders");
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let body = line.trim_start().trim_start_matches("- ");
        if body.starts_with('#') || !body.contains(':') {
            continue;
        }
        let above = lines[..n].last().expect("a line above every field");
        assert!(above.trim_start().starts_with('#'), "no comment above line {}: {line}", n + 1);
    }
}

#[test]
fn placeholders_are_marked_todo_and_addresses_are_only_the_answers() {
    let a = answers(3);
    let text = render(&a).expect("renders");
    assert!(text.matches("TODO:").count() >= 10, "{text}");
    let given: Vec<Ipv4Addr> = a
        .first_master
        .iter()
        .chain(&a.new_masters)
        .chain(&a.workers)
        .chain(&a.lb_host)
        .chain(&a.hypervisor_hosts)
        .map(|m| m.address)
        .chain(a.vip)
        .collect();
    for word in text.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        if let Ok(address) = word.trim_matches('.').parse::<Ipv4Addr>() {
            assert!(given.contains(&address), "{address} was not given: {text}");
        }
    }
}

#[test]
fn a_missing_address_is_refused_naming_its_flag() {
    /// Unsets one answer.
    type Unset = fn(&mut Answers);
    let cases: [(Unset, &str); 6] = [
        (|a| a.first_master = None, "--first-master NAME=ADDRESS"),
        (|a| drop(a.new_masters.pop()), "--new-master NAME=ADDRESS"),
        (|a| a.vip = None, "--vip ADDRESS"),
        (|a| a.fqdn = None, "--fqdn NAME"),
        (|a| a.hypervisor_hosts.clear(), "--hypervisor-host NAME=ADDRESS"),
        (|a| a.lb_host = None, "--lb-host NAME=ADDRESS"),
    ];
    for (unset, flag) in cases {
        let mut a = answers(3);
        unset(&mut a);
        match render(&a) {
            Err(StarterError::Missing(needed)) => assert_eq!(needed.iter().map(|n| n.flag).collect::<Vec<_>>(), [flag]),
            other => panic!("{flag}: {other:?}"),
        }
    }
    let mut a = answers(3);
    a.new_masters.pop();
    let said = render(&a).unwrap_err().to_string();
    assert!(said.contains("--masters 3 needs 2 new masters") && said.contains("(1 given)"), "{said}");
}

#[test]
fn every_missing_answer_is_named_at_once() {
    let mut a = answers(5);
    a.first_master = None;
    a.new_masters.truncate(2);
    a.vip = None;
    a.fqdn = None;
    a.hypervisor_hosts.clear();
    a.lb_host = None;
    let Err(StarterError::Missing(needed)) = render(&a) else { panic!("refused for what is missing") };
    let flags: Vec<&str> = needed.iter().map(|n| n.flag).collect();
    assert_eq!(
        flags,
        [
            "--first-master NAME=ADDRESS",
            "--new-master NAME=ADDRESS",
            "--vip ADDRESS",
            "--fqdn NAME",
            "--hypervisor-host NAME=ADDRESS",
            "--lb-host NAME=ADDRESS"
        ]
    );
    let said = StarterError::Missing(needed).to_string();
    assert!(said.starts_with("6 answers are needed; --first-master NAME=ADDRESS: the cluster's one control-plane node today; "), "{said}");
    assert!(
        said.contains(
            "; --new-master NAME=ADDRESS: --masters 5 needs 4 new masters, one --new-master each, in the order they join (2 given); "
        ),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one line, as every refusal: {said}");
    // Two missing, the others given: just those two.
    let mut b = answers(3);
    b.vip = None;
    b.lb_host = None;
    let said = render(&b).unwrap_err().to_string();
    assert!(said.starts_with("2 answers are needed; --vip ADDRESS: ") && said.contains("; --lb-host NAME=ADDRESS: "), "{said}");
    assert!(!said.contains("--fqdn"), "{said}");
    // Missing answers come before wrong ones: a load balancer machine named for keepalived (which
    // runs on the masters) is refused once the VIP is given.
    let mut c = answers(3);
    c.vip = None;
    c.profiles.lb = LbKind::Keepalived;
    assert!(render(&c).unwrap_err().to_string().starts_with("--vip ADDRESS is needed: "));
    c.vip = Some("192.0.2.9".parse().unwrap());
    assert!(render(&c).unwrap_err().to_string().contains("--lb keepalived runs on the masters"));
}

#[test]
fn answers_that_clash_are_refused_with_the_validators_reason() {
    let mut a = answers(3);
    a.vip = Some(a.new_masters[0].address);
    let said = render(&a).unwrap_err();
    assert!(matches!(said, StarterError::Invalid(_)), "{said:?}");
    assert!(said.to_string().contains("192.0.2.12") && said.to_string().contains("new_masters[0].address"), "{said}");
    let mut even = answers(3);
    even.masters = 4;
    assert!(render(&even).unwrap_err().to_string().contains("3, 5 or 7"));
    let mut bare = answers(3);
    bare.fqdn = Some("api".to_string());
    assert!(render(&bare).unwrap_err().to_string().contains("has no zone"));
}

/// Answers that break several rules are refused with all of them, on one line: here a name that
/// is no safe name, a version that is none, and the VIP on the first master's address.
#[test]
fn answers_that_break_several_rules_are_refused_with_every_one() {
    let mut a = answers(5);
    a.name = "Lab One".to_string();
    a.kubernetes_version = Some("1.x".to_string());
    a.vip = Some(a.first_master.as_ref().expect("a first master").address);
    let said = render(&a).unwrap_err().to_string();
    assert!(said.starts_with("3 problems: scenario name \"Lab One\" is not allowed"), "{said}");
    assert!(said.contains("; Kubernetes version \"1.x\" is not of the form 1.34 (kubernetes.version); the VIP "), "{said}");
    assert_eq!(said.lines().count(), 1, "one line, as every refusal: {said}");
}

/// Every combination of the four profiles makes a starter that validates.
#[test]
fn every_profile_combination_validates() {
    for lb in [LbKind::PfsenseBootstrap, LbKind::Haproxy, LbKind::Keepalived, LbKind::KubeVip] {
        for hypervisor in [HypervisorKind::Proxmox, HypervisorKind::Libvirt, HypervisorKind::None] {
            for iac in [IacKind::Terragrunt, IacKind::None] {
                for dns in [DnsVia::Iac, DnsVia::ByHand, DnsVia::None] {
                    let mut a = answers(3);
                    a.profiles = Profiles { lb, hypervisor, iac, dns };
                    if lb.on_masters() {
                        a.lb_host = None;
                    }
                    if hypervisor == HypervisorKind::None {
                        a.hypervisor_hosts.clear();
                    }
                    let text = render(&a).unwrap_or_else(|e| panic!("{:?}: {e}", a.profiles));
                    let s = parse_scenario(&text).expect("validated");
                    assert_eq!((s.load_balancer.kind, s.hypervisors[0].kind, s.iac_kind(), s.dns.via), (lb, hypervisor, iac, dns));
                    assert_eq!(s.vm_template.is_some(), hypervisor != HypervisorKind::None);
                    assert_eq!(s.nodes[0].vmid.is_some(), hypervisor == HypervisorKind::Proxmox, "a VM id only where qm snapshots by it");
                }
            }
        }
    }
}

#[test]
fn keepalived_puts_the_vip_on_another_port_than_the_apiservers() {
    let mut a = answers(3);
    a.profiles.lb = LbKind::Keepalived;
    a.lb_host = None;
    let s = parse_scenario(&render(&a).expect("renders")).expect("validates");
    assert_eq!((s.control_plane_endpoint.port, s.kubernetes.apiserver_port), (KEEPALIVED_PORT, Some(DEFAULT_PORT)));
    a.port = Some(DEFAULT_PORT);
    let said = render(&a).unwrap_err().to_string();
    assert!(said.contains("kube-apiserver already holds port 6443"), "the validator's reason: {said}");
}

#[test]
fn a_load_balancer_machine_is_asked_for_only_where_there_is_one() {
    let mut a = answers(3);
    a.profiles.lb = LbKind::KubeVip;
    let said = render(&a).unwrap_err().to_string();
    assert_eq!(said, "--lb-host lb: --lb kube-vip runs on the masters, there is no load balancer machine to name");
    a.profiles.lb = LbKind::Haproxy;
    a.lb_host = None;
    assert_eq!(
        render(&a).unwrap_err(),
        Needed::alone("--lb-host NAME=ADDRESS", "the haproxy load balancer machine that serves the VIP".to_string())
    );
    let mut provided = answers(3);
    provided.profiles.hypervisor = HypervisorKind::None;
    provided.hypervisor_hosts.clear();
    let s = parse_scenario(&render(&provided).expect("renders")).expect("validates");
    assert_eq!((s.hypervisors[0].name.as_str(), s.hypervisors[0].address), (PROVIDED_MACHINES, None));
}

#[test]
fn a_version_not_given_is_the_default_under_a_todo() {
    let mut a = answers(3);
    a.kubernetes_version = None;
    let text = render(&a).expect("renders");
    assert!(
        text.contains(&format!(
            "  # TODO: your cluster's version (kubectl version), or plan init --kubernetes\n  version: \"{DEFAULT_KUBERNETES}\""
        )),
        "{text}"
    );
}

#[test]
fn what_the_cluster_said_is_written_beside_its_field() {
    let mut a = answers(3);
    a.observed.apiserver_extra_args = vec!["oidc-issuer-url".to_string()];
    a.observed.skipped_nodes = vec!["edge-1 has no InternalIP".to_string()];
    a.provenance = vec!["Read from the cluster at https://127.0.0.1:6443.".to_string()];
    let text = render(&a).expect("renders");
    // The comments as one run of words, however they wrapped.
    let words = text.split_whitespace().filter(|w| *w != "#").collect::<Vec<_>>().join(" ");
    assert!(words.contains("sets oidc-issuer-url"), "{text}");
    assert!(words.contains("Left out (read from the cluster): edge-1 has no InternalIP."), "{text}");
    assert!(text.starts_with("# plan scenario 'starter'"));
    assert!(text.contains("# Read from the cluster at https://127.0.0.1:6443."));
}

#[test]
fn machines_parse_from_name_equals_address() {
    assert_eq!("cp-2=192.0.2.11".parse::<Machine>(), Ok(machine("cp-2", 11)));
    assert!("cp-2".parse::<Machine>().unwrap_err().contains("NAME=ADDRESS"));
    assert!("cp-2=cp-2.lan".parse::<Machine>().unwrap_err().contains("not an IPv4 address"));
}
