use super::*;
use plan_model::validate::parse_scenario;

fn loopback() -> Topology {
    Topology::new(&parse_scenario(include_str!("../../../scenarios/loopback.yaml")).unwrap())
}

/// Answers etcdctl as a one-member etcd whose member advertises `client_url`; keeps what ran.
struct CannedEtcd {
    client_url: &'static str,
    ran: Vec<String>,
}

impl Transport for CannedEtcd {
    fn run(&mut self, _place: &Place, request: &Request<'_>) -> Result<crate::transport::Completed, ExecError> {
        self.ran.push(request.shell.to_string());
        let url = self.client_url;
        let stdout = if request.shell.contains("member list") {
            format!(r#"{{"members":[{{"ID":1,"name":"lab-cp-1","peerURLs":["http://127.0.20.10:2380"],"clientURLs":["{url}"]}}]}}"#)
        } else {
            format!(r#"[{{"endpoint":"{url}","health":true}}]"#)
        };
        Ok(crate::transport::Completed { exit: Some(0), stdout, stderr: String::new(), duration: Duration::ZERO })
    }
}

#[test]
fn the_guard_checks_the_etcd_endpoint_and_every_member_url_before_dialling() {
    let t = loopback();
    let c = Cluster::initial(&t);
    let on = Guard::LOOPBACK_ONLY;
    let probe = |endpoint: &str| EtcdProbe { endpoint: endpoint.to_string(), pki: None };
    let mut observation = Observation::default();

    let mut etcd = CannedEtcd { client_url: "http://127.0.20.10:2379", ran: Vec::new() };
    let refused = observe_etcd(&t, &c, &mut etcd, &probe("https://10.0.20.100:2379"), on, &mut observation).unwrap_err();
    assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
    assert!(etcd.ran.is_empty(), "refused before the member list: {:?}", etcd.ran);

    // A member advertising an address off loopback: `endpoint health` would dial it.
    let mut etcd = CannedEtcd { client_url: "https://10.0.20.102:2379", ran: Vec::new() };
    let refused = observe_etcd(&t, &c, &mut etcd, &probe("http://127.0.20.10:2379"), on, &mut observation).unwrap_err();
    assert!(refused.to_string().contains("etcd member client URL (from etcd via lab-cp-1) https://10.0.20.102:2379"), "{refused}");
    assert_eq!(etcd.ran.len(), 1, "only the member list ran: {:?}", etcd.ran);

    let mut etcd = CannedEtcd { client_url: "http://127.0.20.10:2379", ran: Vec::new() };
    observe_etcd(&t, &c, &mut etcd, &probe("http://127.0.20.10:2379"), on, &mut observation).unwrap();
    assert!(etcd.ran[1].contains("--endpoints=http://127.0.20.10:2379 ") && etcd.ran[1].contains("endpoint health"), "{:?}", etcd.ran);
    let healthy = observation.facts.iter().find(|f| f.field == Field::EtcdHealthy).unwrap();
    assert_eq!((healthy.node.as_str(), healthy.seen), ("lab-cp-1", Seen::Yes));
}

fn homelab() -> Topology {
    Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).unwrap())
}

#[test]
fn kubelet_server_is_read_for_true_false_and_missing_line() {
    let t = homelab();
    assert_eq!(kubelet_on_vip("clusters:\n- cluster:\n    server: https://10.0.20.99:6443\n", &t).0, Seen::Yes);
    assert_eq!(kubelet_on_vip("    server: https://10.0.20.100:6443\n", &t).0, Seen::No);
    assert_eq!(kubelet_on_vip("    server: https://k8s-apiserver.viktorbarzin.lan:6443\n", &t).0, Seen::Yes);
    assert_eq!(kubelet_on_vip("apiVersion: v1\n", &t).0, Seen::No);
}

#[test]
fn cert_sans_are_read_for_true_false_and_missing() {
    let t = homelab();
    let with =
        "X509v3 Subject Alternative Name: \n    DNS:k8s-master, IP Address:10.96.0.1, IP Address:10.0.20.100, IP Address:10.0.20.99\n";
    assert_eq!(cert_has_vip(with, &t).0, Seen::Yes);
    assert_eq!(cert_has_vip("    DNS:k8s-master, IP Address:10.0.20.100, IP Address:10.0.20.990\n", &t).0, Seen::No);
    assert_eq!(cert_has_vip("", &t).0, Seen::No);
}

#[test]
fn drift_names_node_field_and_evidence() {
    let t = homelab();
    let c = Cluster::initial(&t);
    let observation = Observation {
        facts: vec![Fact {
            node: "k8s-node1".into(),
            field: Field::KubeletOnVip,
            seen: Seen::Yes,
            evidence: "server: https://10.0.20.99:6443".into(),
        }],
        unreachable: vec![],
        no_ssh: vec![],
    };
    let found = drift(&t, &observation, &[&c]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].to_string(), "k8s-node1: kubelet.conf server is the VIP: twin no, observed yes (server: https://10.0.20.99:6443)");
    let mut flipped = c;
    flipped.kubelet_vip.set(NodeIx(3), true);
    assert!(drift(&t, &observation, &[&c, &flipped]).is_empty(), "mid-step: either side is fine");
    assert!(overlay(&t, &observation, &c).kubelet_vip.contains(NodeIx(3)));
}

#[test]
fn a_node_no_ssh_reaches_is_down_in_the_state_recoveries_are_chosen_from() {
    let t = homelab();
    let c = Cluster::initial(&t);
    let node1 = t.resolve("node1").expect("node1");
    let observation = Observation {
        unreachable: vec![("k8s-node1".into(), "ssh k8s-node1: connection refused".into())],
        no_ssh: vec!["k8s-node1".into()],
        ..Observation::default()
    };
    let believed = overlay(&t, &observation, &c);
    assert!(c.up.contains(node1) && !believed.up.contains(node1));
    // A service that did not answer on a host that did is not a host down.
    let etcd_only = Observation { unreachable: observation.unreachable.clone(), ..Observation::default() };
    assert!(overlay(&t, &etcd_only, &c).up.contains(node1));
}

#[test]
fn an_api_the_twin_says_cannot_answer_is_not_observed() {
    let t = homelab();
    let mut c = Cluster::initial(&t);
    let m0 = t.existing_master();
    let direct = format!("https://{}:6443/", t.node(m0).address);
    assert!(!api_silent_in_twin(&t, &c, &direct), "the first master's apiserver answers");
    c.up.set(m0, false);
    assert!(api_silent_in_twin(&t, &c, &direct), "down in the twin: silence is expected");
    assert!(!api_silent_in_twin(&t, &c, "https://kube.example:6443/"), "a name: observed");
}
