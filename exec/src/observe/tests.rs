use super::*;
use crate::target::Place;
use crate::transport::Request;
use plan_model::validate::parse_scenario;
use std::time::Duration;

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
    let etcd_only = Scope { etcd: true, ..Scope::default() };
    let probes = |endpoint: &str| Probes { etcd: Some(EtcdProbe::plain(endpoint)), lb: None, kube: None, guard: on };

    let mut etcd = CannedEtcd { client_url: "http://127.0.20.10:2379", ran: Vec::new() };
    let refused = observe(&t, &c, &mut etcd, etcd_only, &mut Observer::new(probes("https://10.0.20.100:2379"))).unwrap_err();
    assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
    assert!(etcd.ran.is_empty(), "refused before the member list: {:?}", etcd.ran);

    // A member advertising an address off loopback: `endpoint health` would dial it.
    let mut etcd = CannedEtcd { client_url: "https://10.0.20.102:2379", ran: Vec::new() };
    let refused = observe(&t, &c, &mut etcd, etcd_only, &mut Observer::new(probes("http://127.0.20.10:2379"))).unwrap_err();
    assert!(refused.to_string().contains("etcd member client URL (from etcd via lab-cp-1) https://10.0.20.102:2379"), "{refused}");
    assert_eq!(etcd.ran.len(), 1, "only the member list ran: {:?}", etcd.ran);

    let mut etcd = CannedEtcd { client_url: "http://127.0.20.10:2379", ran: Vec::new() };
    let observation = observe(&t, &c, &mut etcd, etcd_only, &mut Observer::new(probes("http://127.0.20.10:2379"))).unwrap();
    assert!(etcd.ran[1].contains("--endpoints=http://127.0.20.10:2379 ") && etcd.ran[1].contains("endpoint health"), "{:?}", etcd.ran);
    let healthy = observation.facts.iter().find(|f| f.field == Field::EtcdHealthy).unwrap();
    assert_eq!((healthy.node.as_str(), healthy.seen), ("lab-cp-1", Seen::Yes));
}

/// etcd as [`CannedEtcd`], its member's client URL as the test sets it and healthy only at
/// `healthy_url`; keeps each round of [`Transport::read_and_run`] apart from a run of its own.
struct EtcdRounds {
    client_url: &'static str,
    healthy_url: &'static str,
    asked: Vec<String>,
}

impl EtcdRounds {
    fn answer(&self, shell: &str) -> String {
        let url = self.client_url;
        if shell.contains("member list") {
            format!(r#"{{"members":[{{"ID":1,"name":"lab-cp-1","peerURLs":["http://127.0.20.10:2380"],"clientURLs":["{url}"]}}]}}"#)
        } else {
            let endpoint = shell.split("--endpoints=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
            format!(r#"[{{"endpoint":"{endpoint}","health":{}}}]"#, endpoint == self.healthy_url)
        }
    }
}

impl Transport for EtcdRounds {
    fn run(&mut self, _place: &Place, request: &Request<'_>) -> Result<crate::transport::Completed, ExecError> {
        self.asked.push(format!("alone: {}", if request.shell.contains("member list") { "list" } else { "health" }));
        Ok(crate::transport::Completed {
            exit: Some(0),
            stdout: self.answer(request.shell),
            stderr: String::new(),
            duration: Duration::ZERO,
        })
    }

    fn read_and_run(&mut self, reads: &[(crate::target::HostTarget, &str)], runs: &[(Place, Request<'_>)]) -> crate::transport::ReadAndRun {
        assert!(reads.is_empty(), "etcd only");
        let what: Vec<String> = runs
            .iter()
            .map(|(_, r)| {
                let endpoint = r.shell.split("--endpoints=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default();
                if r.shell.contains("member list") {
                    "list".to_string()
                } else {
                    format!("health {endpoint}")
                }
            })
            .collect();
        self.asked.push(format!("round: {}", what.join(", ")));
        let ran = runs
            .iter()
            .map(|(_, r)| {
                Ok(crate::transport::Completed {
                    exit: Some(0),
                    stdout: self.answer(r.shell),
                    stderr: String::new(),
                    duration: Duration::ZERO,
                })
            })
            .collect();
        crate::transport::ReadAndRun { read: Vec::new(), ran }
    }
}

/// The first look asks `endpoint health` after the member list; later looks ask it with the list,
/// over the URLs the last list named, and again only when this list names others: the facts are
/// then the second answer's.
#[test]
fn endpoint_health_goes_with_the_member_list_once_the_list_is_known() {
    let t = loopback();
    let c = Cluster::initial(&t);
    let etcd_only = Scope { etcd: true, ..Scope::default() };
    let probe = EtcdProbe::plain("http://127.0.20.10:2379");
    let mut observer = Observer::new(Probes { etcd: Some(probe), lb: None, kube: None, guard: Guard::LOOPBACK_ONLY });
    let (first, second) = ("http://127.0.20.10:2379", "http://127.0.20.10:32379");
    let mut etcd = EtcdRounds { client_url: first, healthy_url: first, asked: Vec::new() };
    let healthy = |o: &Observation| {
        let f = o.facts.iter().find(|f| f.field == Field::EtcdHealthy).expect("a health fact");
        (f.seen, f.evidence.clone())
    };

    let look = observe(&t, &c, &mut etcd, etcd_only, &mut observer).unwrap();
    assert_eq!(etcd.asked, ["round: list", "alone: health"]);
    assert_eq!(healthy(&look), (Seen::Yes, format!("{first}: health true")));

    etcd.asked.clear();
    let look = observe(&t, &c, &mut etcd, etcd_only, &mut observer).unwrap();
    assert_eq!(etcd.asked, [format!("round: list, health {first}")]);
    assert_eq!(healthy(&look), (Seen::Yes, format!("{first}: health true")));

    // The member now serves elsewhere, unhealthy there: asked again, and that answer counts.
    etcd.client_url = second;
    etcd.asked.clear();
    let look = observe(&t, &c, &mut etcd, etcd_only, &mut observer).unwrap();
    assert_eq!(etcd.asked, [format!("round: list, health {first}"), "alone: health".to_string()]);
    assert_eq!(healthy(&look), (Seen::No, format!("{second}: health false")));
    etcd.asked.clear();
    observe(&t, &c, &mut etcd, etcd_only, &mut observer).unwrap();
    assert_eq!(etcd.asked, [format!("round: list, health {second}")]);
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

/// A PEM certificate for `names` (DNS names and IP addresses, in that order of the list), as
/// `kubeadm init phase certs apiserver` leaves one.
pub(crate) fn cert_pem(names: &[&str]) -> String {
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("SANs");
    let key = rcgen::KeyPair::generate().expect("a key");
    params.self_signed(&key).expect("self-signed").pem()
}

#[test]
fn sans_are_read_from_the_pem_as_openssl_prints_them() {
    let pem = cert_pem(&["k8s-master", "kubernetes", "10.96.0.1", "10.0.20.100", "10.0.20.99"]);
    let sans = subject_alt_names(&pem).unwrap();
    assert_eq!(sans, "DNS:k8s-master, DNS:kubernetes, IP Address:10.96.0.1, IP Address:10.0.20.100, IP Address:10.0.20.99");
    assert_eq!(cert_has_vip(&sans, &homelab()).0, Seen::Yes);
    let without = subject_alt_names(&cert_pem(&["k8s-master", "10.0.20.100", "10.0.20.9"])).unwrap();
    assert_eq!(cert_has_vip(&without, &homelab()).0, Seen::No, "{without}");
    assert!(subject_alt_names("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n").is_err());
    assert!(subject_alt_names("server: https://10.0.20.99:6443\n").is_err());
}

/// The SANs as read here are the line openssl prints for the same certificate, where openssl is
/// installed (it is on CI: the lab needs it).
#[test]
fn sans_read_here_are_what_openssl_prints() {
    if !std::path::Path::new("/usr/bin/openssl").exists() {
        assert!(std::env::var("CI").is_err(), "openssl is missing under CI=true");
        eprintln!("skipped: no /usr/bin/openssl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let crt = dir.path().join("apiserver.crt");
    let pem = cert_pem(&["k8s-master-2", "k8s-apiserver.example.lan", "10.96.0.1", "192.168.7.21", "192.168.7.99"]);
    std::fs::write(&crt, &pem).unwrap();
    let out = std::process::Command::new("/usr/bin/openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&crt)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let line = printed.lines().map(str::trim).find(|l| l.contains("DNS:")).unwrap();
    assert_eq!(subject_alt_names(&pem).unwrap(), line);
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
        ..Observation::default()
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

#[test]
fn what_does_not_answer_is_silent_and_a_fact_that_differs_is_not() {
    let drift = |what: &str, twin: &str, observed: &str| Drift {
        node: "k8s-master-3".to_string(),
        what: what.to_string(),
        twin: twin.to_string(),
        observed: observed.to_string(),
        evidence: String::new(),
    };
    let observation = Observation { unreachable: vec![("kubernetes API".into(), "timed out".into())], ..Default::default() };
    let unreachable = drift_of_unreachable(&observation);
    assert!(unreachable.iter().all(|d| is_unreachable(d) && is_silent(d)), "{unreachable:?}");
    // An etcd member that does not answer its health check (a partition, an etcd frozen).
    assert!(is_silent(&drift(Field::EtcdHealthy.describe(), "yes", "no")));
    // A member healthy where the twin has it not, and facts that differ, are no wait's business.
    assert!(!is_silent(&drift(Field::EtcdHealthy.describe(), "no", "yes")));
    assert!(!is_silent(&drift(Field::EtcdVoter.describe(), "yes", "no")));
    assert!(!is_silent(&drift(Field::KubeletOnVip.describe(), "yes", "no")));
}

#[test]
fn a_health_check_and_a_ready_condition_lag_and_a_file_or_a_member_does_not() {
    let drift = |field: Field| Drift {
        node: "k8s-master-3".to_string(),
        what: field.describe().to_string(),
        twin: "yes".to_string(),
        observed: "no".to_string(),
        evidence: String::new(),
    };
    assert!(lags(&drift(Field::LbServerUp)), "HAProxy's check marks a server after `fall` checks");
    assert!(lags(&drift(Field::NodeReady)), "a node's Ready follows its kubelet's heartbeat");
    for field in
        [Field::KubeletOnVip, Field::CertHasVip, Field::EtcdVoter, Field::EtcdLearner, Field::LbServerInConfig, Field::LbServerLoaded]
    {
        assert!(!lags(&drift(field)), "{field:?} is read as it is");
    }
}

/// The look with the hypervisors asks each hypervisor the plan drives that the twin has up, and
/// none of `kind: none` (machines the operator provides) even with an address; the look of a
/// step (`Scope::whole`) asks none.
#[test]
fn the_hypervisors_asked_are_the_driven_ones_the_twin_has_up() {
    let asked = |text: &str, c: &dyn Fn(&Topology) -> Cluster, scope: Scope| {
        let t = Topology::new(&parse_scenario(text).unwrap());
        let mut recorder = crate::transport::Recorder::default();
        let probes = Probes { etcd: None, lb: None, kube: None, guard: Guard::LOOPBACK_ONLY };
        observe(&t, &c(&t), &mut recorder, scope, &mut Observer::new(probes)).expect("observed");
        recorder.commands.iter().filter(|r| r.shell == "true").map(|r| r.place.clone()).collect::<Vec<_>>()
    };
    let three = include_str!("../../../scenarios/three-hypervisors.yaml");
    let halt = Scope::FILES.with_hypervisors();
    assert_eq!(asked(three, &Cluster::initial, halt), ["hv-north", "hv-south", "hv-east"]);
    let east_down = |t: &Topology| Cluster { hypervisors_down: 1 << 2, ..Cluster::initial(t) };
    assert_eq!(asked(three, &east_down, halt), ["hv-north", "hv-south"]);
    assert!(asked(three, &Cluster::initial, Scope::whole(&Cluster::initial(&loopback()))).is_empty());
    let bare = include_str!("../../../scenarios/kube-vip-bare.yaml");
    let with_address = bare.replacen("kind: none,", "kind: none, address: 192.0.2.99,", 1);
    assert_ne!(with_address, bare, "the edit took");
    assert!(asked(&with_address, &Cluster::initial, halt).is_empty());
}

/// etcd on three loopback masters as the halt inside a join finds them: lab-cp-1's host does not
/// answer, lab-cp-2's etcd refuses the list (etcd 3.5, no quorum), and lab-cp-3 lists as
/// `third_lists` says (etcd 3.4 answering from its own copy, or refusing as well; as a learner
/// when `third_a_learner`). Keeps each round's places.
struct FirstMasterSilent {
    third_lists: bool,
    third_a_learner: bool,
    rounds: Vec<Vec<String>>,
}

impl FirstMasterSilent {
    fn answer(&self, place: &Place, shell: &str) -> Result<crate::transport::Completed, ExecError> {
        let Place::Host(host) = place else { unreachable!("etcd is asked on a master") };
        let done = |exit: i32, stdout: String, stderr: &str| {
            Ok(crate::transport::Completed { exit: Some(exit), stdout, stderr: stderr.to_string(), duration: Duration::ZERO })
        };
        let member = |id: u32, name: &str, last: u8| {
            format!(
                r#"{{"ID":{id},"name":"{name}","peerURLs":["http://127.0.20.{last}:2380"],"clientURLs":["http://127.0.20.{last}:2379"]}}"#
            )
        };
        match (host.name.as_str(), shell.contains("member list")) {
            ("lab-cp-1", _) => Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".to_string() }),
            ("lab-cp-3", true) if self.third_lists => {
                let members = [member(1, "lab-cp-1", 10), member(2, "lab-cp-2", 11), member(3, "lab-cp-3", 12)];
                done(0, format!(r#"{{"members":[{}]}}"#, members.join(",")), "")
            }
            ("lab-cp-3", true) if self.third_a_learner => done(
                1,
                String::new(),
                "{\"level\":\"warn\",\"error\":\"rpc error: code = Unavailable desc = etcdserver: rpc not supported for learner\"}\nError: context deadline exceeded",
            ),
            (_, true) => done(1, String::new(), "Error: context deadline exceeded"),
            // Its own status, served without quorum: lab-cp-2 a voter that applied the log,
            // lab-cp-3 as `third_a_learner` says, or one that applied nothing.
            (name, false) if shell.contains("endpoint status") => {
                let (learner, applied) = match name {
                    "lab-cp-2" => (false, 9),
                    _ if self.third_a_learner => (true, 9),
                    _ => (false, 0),
                };
                let learner = if learner { r#","isLearner":true"# } else { "" };
                done(0, format!(r#"[{{"Endpoint":"x","Status":{{"raftAppliedIndex":{applied}{learner}}}}}]"#), "")
            }
            (_, false) => done(0, r#"[{"endpoint":"http://127.0.20.12:2379","health":true}]"#.to_string(), ""),
        }
    }
}

impl Transport for FirstMasterSilent {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<crate::transport::Completed, ExecError> {
        self.answer(place, request.shell)
    }

    fn read_and_run(
        &mut self,
        _reads: &[(crate::target::HostTarget, &str)],
        runs: &[(Place, Request<'_>)],
    ) -> crate::transport::ReadAndRun {
        self.rounds.push(runs.iter().map(|(p, _)| format!("{p:?}")).collect());
        crate::transport::ReadAndRun { read: Vec::new(), ran: runs.iter().map(|(p, r)| self.answer(p, r.shell)).collect() }
    }
}

/// The master the twin would ask does not answer: the other masters it has serving are asked in
/// a second round. One that lists gives the membership; one whose host answers and whose etcd
/// refuses is recorded as refusing (docs/facts.md E9), and not as silent: the first ask's
/// failure is already that.
#[test]
fn the_member_list_is_asked_of_the_other_masters_when_the_first_does_not_answer() {
    let t = loopback();
    let mut c = Cluster::initial(&t);
    for name in ["lab-cp-2", "lab-cp-3"] {
        let n = t.resolve(name).expect(name);
        for set in [&mut c.voters, &mut c.etcd_started, &mut c.control_plane, &mut c.up, &mut c.joined, &mut c.vm_exists] {
            set.set(n, true);
        }
    }
    let etcd_only = Scope { etcd: true, ..Scope::default() };
    let probes = || Probes { etcd: Some(EtcdProbe::plain("http://127.0.0.1:2379")), lb: None, kube: None, guard: Guard::LOOPBACK_ONLY };
    for (third_lists, third_a_learner) in [(true, false), (false, false), (false, true)] {
        let mut etcd = FirstMasterSilent { third_lists, third_a_learner, rounds: Vec::new() };
        let look = observe(&t, &c, &mut etcd, etcd_only, &mut Observer::new(probes())).unwrap();
        assert_eq!(etcd.rounds.len(), 2, "{:?}", etcd.rounds);
        assert!(etcd.rounds[0].iter().any(|p| p.contains("lab-cp-1")), "{:?}", etcd.rounds);
        assert!(etcd.rounds[1].iter().any(|p| p.contains("lab-cp-2")) && etcd.rounds[1].iter().any(|p| p.contains("lab-cp-3")));
        assert!(look.unreachable.iter().any(|(what, _)| what == "etcd via lab-cp-1"), "{:?}", look.unreachable);
        assert!(!look.unreachable.iter().any(|(what, _)| what.contains("lab-cp-2")), "{:?}", look.unreachable);
        let refused: Vec<&str> = look.etcd_refused.iter().map(|(n, _)| n.as_str()).collect();
        let voters: Vec<&str> =
            look.facts.iter().filter(|f| f.field == Field::EtcdVoter && f.seen == Seen::Yes).map(|f| f.node.as_str()).collect();
        if third_lists {
            assert_eq!(refused, ["lab-cp-2"]);
            assert_eq!(voters, ["lab-cp-1", "lab-cp-2", "lab-cp-3"], "lab-cp-3's list");
        } else {
            assert_eq!(refused, ["lab-cp-2", "lab-cp-3"]);
            // No list came; lab-cp-2's own status says it is a voter that applied the log, and
            // lab-cp-3 is a learner (its refusal's words, once) or says nothing that counts.
            assert_eq!(voters, ["lab-cp-2"], "{:?}", look.facts);
            let learners: Vec<(&str, Seen)> = look
                .facts
                .iter()
                .filter(|f| f.field == Field::EtcdLearner && f.seen == Seen::Yes)
                .map(|f| (f.node.as_str(), f.seen))
                .collect();
            assert_eq!(learners, if third_a_learner { vec![("lab-cp-3", Seen::Yes)] } else { vec![] }, "{:?}", look.facts);
            assert_eq!(crate::observe::voters_seen(&t, &look), plan_model::topology::NodeSet::of(t.resolve("lab-cp-2").unwrap()));
        }
    }
}
