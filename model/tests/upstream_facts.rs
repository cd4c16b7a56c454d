//! The upstream facts of docs/facts.md, each as a consequence the model derives, on scenarios at
//! different Kubernetes versions (1.34, 1.33, 1.31, 1.28) with other names, addresses and sizes.

use plan_model::action::{self, Action, Check};
use plan_model::cluster::Cluster;
use plan_model::observe::{self, Endpoint, NotReady};
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::{NodeIx, Topology};
use plan_model::validate::parse_scenario;

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

fn homelab() -> Topology {
    topology(include_str!("../../scenarios/homelab-rightsized.yaml"))
}

fn five_masters() -> Topology {
    topology(include_str!("../../scenarios/five-masters.yaml"))
}

fn kubernetes_1_31() -> Topology {
    topology(include_str!("../../scenarios/two-hypervisors.yaml"))
}

/// The no-fault state right before step `id` (every earlier step's actions applied).
fn before(t: &Topology, plan: &Plan, id: &str) -> Cluster {
    let mut c = Cluster::initial(t);
    for step in plan.steps.iter().take_while(|s| s.id != id) {
        for a in &step.actions {
            c = action::apply(&c, t, *a).unwrap_or_else(|r| panic!("step {} {a:?} refused: {r}", step.id));
        }
    }
    c
}

fn end(t: &Topology, plan: &Plan) -> Cluster {
    before(t, plan, "no such step")
}

fn new_master(t: &Topology, k: usize) -> NodeIx {
    t.new_masters().nth(k).expect("the scenario adds that many masters")
}

/// Step ids of the `k`-th new master's phase (`2.5`, `3.5`, `3b.5`, ...).
fn join_step(k: usize) -> String {
    format!("{}.5", planner::master_phase(k))
}

#[test]
fn from_1_33_a_joining_master_s_kubelet_names_its_own_apiserver() {
    for t in [homelab(), five_masters()] {
        assert!(t.kubelet_local_mode, "{} runs {:?}", t.scenario.name, t.version);
        let plan = planner::generate(&t);
        let c = end(&t, &plan);
        for m in t.new_masters() {
            assert_eq!(observe::kubelet_endpoint(&c, &t, m), Endpoint::Direct(m), "{}", t.name(m));
        }
        // The plan verifies it and flips nobody's master kubelet to the VIP.
        let flips: Vec<&str> = plan
            .steps
            .iter()
            .filter(|s| {
                s.actions.iter().any(|a| matches!(a, Action::FlipKubelet(x) if *x != t.existing_master() && !t.workers_set().contains(*x)))
            })
            .map(|s| s.id.as_str())
            .collect();
        assert!(flips.is_empty(), "{}: masters flipped in {flips:?}", t.scenario.name);
        assert!(Check::KubeletsHighlyAvailable.evaluate(&c, &t).is_ok());
    }
}

#[test]
fn before_1_33_a_joining_master_s_kubelet_names_the_first_master_until_the_plan_flips_it() {
    let t = kubernetes_1_31();
    assert!(!t.kubelet_local_mode);
    let plan = planner::generate(&t);
    let m0 = t.existing_master();
    let c = before(&t, &plan, "4.4");
    for m in t.new_masters() {
        assert_eq!(observe::kubelet_endpoint(&c, &t, m), Endpoint::Direct(m0), "cluster-info names the first master");
    }
    assert!(Check::KubeletsHighlyAvailable.evaluate(&c, &t).is_err());
    let c = end(&t, &plan);
    for m in t.new_masters() {
        assert_eq!(observe::kubelet_endpoint(&c, &t, m), Endpoint::Vip, "4.4 flipped {}", t.name(m));
    }
}

#[test]
fn the_join_discovers_through_the_first_master_not_the_vip() {
    // Five masters: three voters when the fourth joins, so quorum and the VIP survive the first
    // master's loss; the printed join command still names the first master.
    let t = five_masters();
    let plan = planner::generate(&t);
    let c = before(&t, &plan, &join_step(2));
    let m0 = t.existing_master();
    let joining = new_master(&t, 2);
    let mut down = c;
    down.up = c.up.without(m0);
    assert!(observe::quorum(&down).holds());
    assert!(observe::reach(&down, &t, Endpoint::Vip, observe::ClientNeeds { oidc: false }).is_ok(), "the VIP answers");
    let refusal = action::apply(&down, &t, Action::EtcdMemberAdd(joining)).expect_err("discovery needs the first master");
    assert!(refusal.reason.contains("discovery"), "{refusal}");
    assert!(action::apply(&c, &t, Action::EtcdMemberAdd(joining)).is_ok(), "with the first master up it joins");
}

#[test]
fn check_etcd_refuses_a_join_while_any_member_is_down() {
    let t = five_masters();
    let plan = planner::generate(&t);
    let c = before(&t, &plan, &join_step(2));
    let mut down = c;
    down.up = c.up.without(new_master(&t, 0));
    assert!(observe::quorum(&down).holds(), "two of three voters: quorum holds");
    let refusal = action::apply(&down, &t, Action::EtcdMemberAdd(new_master(&t, 2))).expect_err("check-etcd asks every member");
    assert!(refusal.reason.contains("check-etcd"), "{refusal}");
}

#[test]
fn a_learner_s_apiserver_is_not_ready() {
    let t = homelab();
    let plan = planner::generate(&t);
    let mut c = end(&t, &plan);
    let m2 = new_master(&t, 0);
    assert!(observe::apiserver_ready(&c, m2).is_ok());
    c.voters = c.voters.without(m2);
    c.learners = c.learners.with(m2);
    assert_eq!(observe::apiserver_ready(&c, m2), Err(NotReady::LocalEtcdLearner));
    assert!(!observe::healthy_backends(&c, &t).contains(m2), "/readyz fails: the LB drops it");
}

#[test]
fn kube_apiserver_serves_a_new_pair_without_a_restart_and_keeps_the_old_while_it_is_away() {
    for t in [homelab(), kubernetes_1_31()] {
        let plan = planner::generate(&t);
        let m0 = t.existing_master();
        let phase0: Vec<Action> = plan.steps.iter().filter(|s| s.phase == "0").flat_map(|s| s.actions.iter().copied()).collect();
        assert!(!phase0.iter().any(|a| matches!(a, Action::RestartApiserver(_))), "phase 0 restarts nothing");
        let c = before(&t, &plan, "0.3");
        let aside = action::apply(&c, &t, Action::MoveCertAside(m0)).expect("moved");
        assert!(observe::apiserver_ready(&aside, m0).is_ok(), "the last good pair stays served");
        let generated = action::apply(&aside, &t, Action::GenerateCert(m0)).expect("generated");
        assert!(generated.served_vip.contains(m0), "served once it is on disk");
        let restored = action::apply(&generated, &t, Action::RestoreCert(m0)).expect("restored");
        assert!(!restored.served_vip.contains(m0), "a rollback of the pair is served without a restart too");
    }
}

#[test]
fn the_certs_phase_reuses_an_existing_pair_whatever_its_sans() {
    let t = homelab();
    let plan = planner::generate(&t);
    let c = before(&t, &plan, "0.3");
    let reused = action::apply(&c, &t, Action::GenerateCert(t.existing_master())).expect("kubeadm reuses the pair");
    assert!(!reused.cert_vip.contains(t.existing_master()), "the SANs stay as they were");
}

#[test]
fn a_half_finished_join_needs_a_reset_before_it_runs_again() {
    for t in [homelab(), kubernetes_1_31()] {
        let plan = planner::generate(&t);
        let m2 = new_master(&t, 0);
        let c = before(&t, &plan, "2.5");
        let added = action::apply(&c, &t, Action::EtcdMemberAdd(m2)).expect("added");
        assert!(!action::already_done(&added, Action::EtcdMemberAdd(m2)), "a resume does not skip half a join");
        let again = action::apply(&added, &t, Action::EtcdMemberAdd(m2)).expect_err("preflight finds the first attempt's files");
        assert!(again.reason.contains("kubeadm reset"), "{again}");
        let reset = action::apply(&added, &t, Action::KubeadmReset(m2)).expect("reset");
        assert!(action::apply(&reset, &t, Action::EtcdMemberAdd(m2)).is_ok(), "{}: after the reset it joins", t.scenario.name);
    }
}

#[test]
fn kubeadm_reset_leaves_the_node_object_until_it_is_deleted() {
    let t = five_masters();
    let plan = planner::generate(&t);
    let m2 = new_master(&t, 0);
    let c = before(&t, &plan, &format!("{}.6", planner::master_phase(0)));
    assert!(Check::ClusterHealthy.evaluate(&c, &t).is_ok());
    let reset = action::apply(&c, &t, Action::KubeadmReset(m2)).expect("reset");
    assert!(reset.stale_nodes.contains(m2));
    let why = Check::ClusterHealthy.evaluate(&reset, &t).expect_err("the Node is NotReady");
    assert!(why.contains(t.name(m2)), "{why}");
    let deleted = action::apply(&reset, &t, Action::DeleteNode(m2)).expect("kubectl delete node");
    assert!(Check::ClusterHealthy.evaluate(&deleted, &t).is_ok());
}

#[test]
fn an_older_kubeadm_joins_with_a_warning_and_fails_acceptance() {
    let t = homelab();
    let plan = planner::generate(&t);
    let m2 = new_master(&t, 0);
    let mut c = before(&t, &plan, "2.5");
    c.old_kubeadm = c.old_kubeadm.with(m2);
    for a in [Action::EtcdMemberAdd(m2), Action::EtcdStart(m2), Action::EtcdPromote(m2), Action::ControlPlaneUp(m2)] {
        c = action::apply(&c, &t, a).unwrap_or_else(|r| panic!("{a:?}: {r}"));
    }
    assert!(c.control_plane.contains(m2), "KubernetesVersionCheck only warns");
    let mut finished = end(&t, &plan);
    finished.old_kubeadm = finished.old_kubeadm.with(m2);
    let why = Check::Acceptance.evaluate(&finished, &t).expect_err("the skew is reported");
    assert!(why.contains("kubeadm and kubelet 1.32"), "{why}");
}

#[test]
fn kube_proxy_names_the_first_master_until_the_plan_moves_it() {
    for t in [homelab(), five_masters(), kubernetes_1_31()] {
        let plan = planner::generate(&t);
        let c = before(&t, &plan, "4.7");
        assert_eq!(observe::kube_proxy_endpoint(&c, &t), Endpoint::Direct(t.existing_master()));
        let mut lost = end(&t, &plan);
        assert_eq!(observe::kube_proxy_endpoint(&lost, &t), Endpoint::Vip);
        lost.up = lost.up.without(t.existing_master());
        assert!(observe::kube_proxy_reach(&lost, &t).is_ok(), "{}: kube-proxy survives the first master", t.scenario.name);
    }
}
