//! The recoveries the twin's executor may take, derived from the state it halted in.

use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::observe;
use plan_model::plan::Plan;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use serde::Serialize;

/// What a phase does, for choosing its rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseKind {
    /// Phase 0: kubeadm-config and the apiserver cert.
    Retrofit,
    /// Phase 1: VIP, DNS, LB.
    LoadBalancer,
    /// Phase 1.5: the config stack refactor.
    ConfigStack,
    /// A phase that adds one master.
    Master(NodeIx),
    /// Phase 4: clients and kubelets to the VIP.
    Cutover,
    /// Everything after the cut-over: config changes that leave the control plane as it is.
    After,
}

/// Classifies a phase by what its steps do, never by its id: a phase that creates a VM or
/// adds an etcd member adds that master; otherwise the first of these its actions show: the
/// client and kubelet cut-over, the kubeadm-config and cert retrofit, the VIP/DNS/LB set-up,
/// the config-stack refactor; anything else changes nothing a rollback must undo.
pub fn phase_kind(plan: &Plan, phase: &str) -> PhaseKind {
    let actions = || plan.steps.iter().filter(|s| s.phase == phase).flat_map(|s| s.actions.iter().copied());
    if let Some(x) = actions().find_map(|a| match a {
        Action::CreateVm(x) | Action::EtcdMemberAdd(x) => Some(x),
        _ => None,
    }) {
        return PhaseKind::Master(x);
    }
    let has = |wanted: fn(&Action) -> bool| actions().any(|a| wanted(&a));
    // A phase that moves clients is the cut-over, also where it applies DNS again (a deferred
    // deletion of a stale record re-applies the VIP's record with it).
    if has(|a| matches!(a, Action::FlipConsumersOf(_) | Action::FlipKubelet(_))) {
        PhaseKind::Cutover
    } else if has(|a| matches!(a, Action::PatchKubeadmConfig | Action::GenerateCert(_) | Action::MoveCertAside(_))) {
        PhaseKind::Retrofit
    } else if has(|a| matches!(a, Action::ReserveVip | Action::AddVipDnsRecord | Action::DeclareLbFrontend)) {
        PhaseKind::LoadBalancer
    } else if has(|a| matches!(a, Action::RefactorConfigStack)) {
        PhaseKind::ConfigStack
    } else {
        PhaseKind::After
    }
}

/// Which recovery was taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RecoveryKind {
    /// Waited for a temporary fault to clear, then re-ran the step.
    WaitAndRetry,
    /// Re-uploaded the certs and made a new token (they had expired), then re-ran the step.
    Renew,
    /// The executor crashed and resumed the step from its journal.
    Resume,
    /// The phase's documented rollback.
    Rollback { phase: String },
    /// After the cut-over: remove dead members and stop; nothing to undo.
    Hold,
    /// Write off the machines down for good (their etcd members removed) and go on with the
    /// rest of the plan without them ([`plan_model::plan::Plan::going_on_without`]).
    GoForward,
    /// `etcd --force-new-cluster` on a surviving voter (added by plan: the source has none).
    QuorumRecovery,
    /// The source plan's worst case: restore the newest etcd snapshot.
    WorstCase,
}

/// Every kind's name, as [`RecoveryKind::name`] spells it.
pub const KIND_NAMES: [&str; 8] = ["wait-and-retry", "renew", "resume", "rollback", "hold", "go-forward", "quorum-recovery", "worst-case"];

impl RecoveryKind {
    /// The kind's name, as the JSON's `kind` and `--choose KIND` spell it.
    pub fn name(&self) -> &'static str {
        match self {
            RecoveryKind::WaitAndRetry => "wait-and-retry",
            RecoveryKind::Renew => "renew",
            RecoveryKind::Resume => "resume",
            RecoveryKind::Rollback { .. } => "rollback",
            RecoveryKind::Hold => "hold",
            RecoveryKind::GoForward => "go-forward",
            RecoveryKind::QuorumRecovery => "quorum-recovery",
            RecoveryKind::WorstCase => "worst-case",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RecoveryKind::WaitAndRetry => "wait for the fault to clear, re-run the step".to_string(),
            RecoveryKind::Renew => "re-upload certs and create a new token, re-run the step".to_string(),
            RecoveryKind::Resume => "resume the step from the journal".to_string(),
            RecoveryKind::Rollback { phase } => format!("phase {phase} rollback"),
            RecoveryKind::Hold => "stop, remove dead members, keep the cluster running".to_string(),
            RecoveryKind::GoForward => "write off the machines down for good (members removed, out of the pool, Node objects deleted), go on with the plan without them".to_string(),
            RecoveryKind::QuorumRecovery => "quorum recovery: etcd --force-new-cluster on a surviving voter (RQ)".to_string(),
            RecoveryKind::WorstCase => "worst case: etcd snapshot restore (RW)".to_string(),
        }
    }
}

/// Undoing one new master: reset it, drop its member, take it out of the LB and the stack,
/// destroy it, delete its Node object.
pub fn undo_master(c: &Cluster, x: NodeIx) -> Vec<Action> {
    let mut actions = Vec::new();
    push_undo_master(c, x, &mut actions);
    actions
}

/// [`undo_master`], onto the end of `actions`.
fn push_undo_master(c: &Cluster, x: NodeIx, actions: &mut Vec<Action>) {
    push_undo_masters(c, NodeSet::of(x), actions);
}

/// Every master of `xs` undone, onto the end of `actions`, as [`undo_master`] undoes one, with
/// the load balancer deployed once: each host reset and its member removed, then every backend
/// out of the declared pool and one deploy (before any of them is destroyed, so the LB never
/// sends clients to a machine that is gone; every deploy resets it to the declared state, a
/// bounce each), then each out of the config stack, destroyed and its Node object deleted.
fn push_undo_masters(c: &Cluster, xs: NodeSet, actions: &mut Vec<Action>) {
    for x in xs.iter() {
        if c.up.contains(x)
            && (c.control_plane.contains(x) || c.joined.contains(x) || c.etcd_started.contains(x) || c.members().contains(x))
        {
            actions.push(Action::KubeadmReset(x));
        }
        if c.members().contains(x) {
            actions.push(Action::EtcdMemberRemove(x));
        }
    }
    push_out_of_pool(c, xs, actions);
    for x in xs.iter() {
        if c.stack_hosts.contains(x) {
            actions.push(Action::ConfigStackRemoveHost(x));
        }
        if c.vm_exists.contains(x) {
            actions.push(Action::DestroyVm(x));
        }
        // Neither reset nor a destroyed VM deletes the Node object.
        if c.joined.contains(x) || c.stale_nodes.contains(x) {
            actions.push(Action::DeleteNode(x));
        }
    }
}

/// The machines of `xs` out of the load balancer: each backend out of the declared pool, then
/// one deploy where any of them is in the pool declared or running (a deploy resets the LB to the
/// declared state: once for all of them). A master's undo and a go-forward's write-off take them
/// out so.
pub fn push_out_of_pool(c: &Cluster, xs: NodeSet, actions: &mut Vec<Action>) {
    actions.extend(xs.and(c.lb_declared.pool).iter().map(Action::RemoveLbBackend));
    if !xs.and(c.lb_running.pool.or(c.lb_declared.pool)).is_empty() {
        actions.push(Action::DeployLb);
    }
}

/// The rollback of a phase, as the actions that undo what the state shows it did.
pub fn rollback_actions(c: &Cluster, t: &Topology, kind: PhaseKind) -> Vec<Action> {
    let m0 = t.existing_master();
    let mut actions = Vec::new();
    match kind {
        PhaseKind::Retrofit => {
            if c.cert_backup && (c.cert_vip.contains(m0) || !c.cert_present.contains(m0)) {
                actions.push(Action::RestoreCert(m0));
            }
            // A running apiserver serves the restored pair by itself (dynamic serving certs); one
            // that stopped while the pair was away needs its static pod restarted.
            if c.cert_backup && !c.apiserver_running.contains(m0) {
                actions.push(Action::RestartApiserver(m0));
            }
            if c.kubeadm_endpoint {
                actions.push(Action::RevertKubeadmConfig);
            }
        }
        PhaseKind::LoadBalancer => {
            if c.lb_declared.frontend {
                actions.push(Action::RemoveLbFrontend);
            }
            if c.lb_running.frontend {
                actions.push(Action::DeployLb);
            }
            if c.dns_vip {
                actions.push(Action::RevertDns);
            }
            if c.vip_alias {
                actions.push(Action::ReleaseVip);
            }
        }
        PhaseKind::ConfigStack => {
            if (c.stack_list || c.stack_list_declared) && !t.stack_starts_as_list() {
                actions.push(Action::RevertConfigStack);
            }
        }
        PhaseKind::Master(x) => actions = undo_master(c, x),
        PhaseKind::Cutover => {
            // A consumer reverted to a stale record's name needs the record back first, and
            // its deletion no longer declared (a halt between 4.1.1's edit and its apply leaves
            // the record resolving until the next DNS apply).
            let deleting = !c.dns_stale || c.dns_stale_deletion_declared;
            if c.consumers_vip != 0 && deleting && t.consumers.iter().any(|k| k.stale_record.is_some()) {
                actions.push(Action::RestoreStaleDnsRecords);
            }
            if c.consumers_vip != 0 {
                actions.push(Action::RevertConsumers);
            }
            let existing = t.all_nodes().minus(t.target_masters()).with(m0);
            for n in c.kubelet_vip.and(existing).iter() {
                actions.push(Action::RevertKubelet(n));
            }
        }
        PhaseKind::After => {}
    }
    actions
}

/// Holding: the cluster stays as it is, members whose host is down for good removed (while
/// quorum allows it).
pub fn hold_actions(c: &Cluster) -> Vec<Action> {
    c.members().minus(c.up).iter().map(Action::EtcdMemberRemove).collect()
}

/// The machines a go-forward writes off: every VM that exists, is down and is not written off
/// already (the policy waits for a fault that clears and finishes a planned reboot before it
/// weighs any recovery, so what is still down then is down for good).
pub fn to_write_off(c: &Cluster) -> plan_model::topology::NodeSet {
    c.vm_exists.minus(c.up).minus(c.written_off)
}

/// A started voter that is up, to force a new cluster from (the existing master first).
pub fn survivor(c: &Cluster) -> Option<NodeIx> {
    c.voters.and(c.etcd_started).and(c.up).iter().next()
}

/// The phase's rollback from `c`, as the twin's executor and `plan rollback` both take it:
/// members down for good are removed first (while quorum allows), then the phase is undone from
/// the state that leaves; without quorum no `kubeadm reset` (it would wipe a member that may hold
/// the last copy of the data, and cannot remove the member anyway).
pub fn rollback_with_dead_members(c: &Cluster, t: &Topology, kind: PhaseKind) -> Vec<Action> {
    let mut actions: Vec<Action> = c.members().minus(c.up).iter().map(Action::EtcdMemberRemove).collect();
    let mut after = *c;
    for a in &actions {
        // A removal refused leaves the state as it was; why is not read.
        let _ = plan_model::action::apply_in_place_unworded(&mut after, t, *a);
    }
    actions.extend(rollback_actions(&after, t, kind));
    if quorum_lost(c) {
        actions.retain(|a| !matches!(a, Action::KubeadmReset(_)));
    }
    actions
}

/// The quorum recovery from `c` on `survivor`, then the phase undone from a cluster of one (a
/// master phase's undo is part of the quorum recovery already). Not the cut-over's undo while
/// the first master is down: it would point every client and kubelet back at a machine that does
/// not answer, where the VIP serves from the survivor.
pub fn quorum_recovery_with_rollback(c: &Cluster, t: &Topology, survivor: NodeIx, kind: PhaseKind) -> Vec<Action> {
    let mut actions = quorum_recovery_actions(c, t, survivor);
    let onto_the_lost_master = matches!(kind, PhaseKind::Cutover) && !c.up.contains(t.existing_master());
    if !matches!(kind, PhaseKind::Master(_)) && !onto_the_lost_master {
        let mut after = *c;
        after.voters = NodeSet::of(survivor);
        actions.extend(rollback_actions(&after, t, kind));
    }
    actions
}

/// Quorum recovery from `survivor`, then every other new master undone.
pub fn quorum_recovery_actions(c: &Cluster, t: &Topology, survivor: NodeIx) -> Vec<Action> {
    let mut actions = vec![Action::ForceNewCluster(survivor)];
    // After the forced cluster, the others are no longer members: undo them as such.
    let mut after = *c;
    after.voters = NodeSet::of(survivor);
    after.learners = NodeSet::EMPTY;
    push_undo_masters(&after, t.new_masters().filter(|x| *x != survivor).fold(NodeSet::EMPTY, NodeSet::with), &mut actions);
    actions
}

/// Worst case: restore the newest snapshot on the existing master (or the first master up).
pub fn worst_case_actions(c: &Cluster, t: &Topology) -> Option<Vec<Action>> {
    let m0 = t.existing_master();
    let target = if c.up.contains(m0) { m0 } else { c.control_plane.and(c.up).iter().next()? };
    // Room for every new master's undo (up to seven actions each): one allocation.
    let mut actions = Vec::with_capacity(1 + 7 * t.new_masters().count() + 1);
    actions.push(Action::RestoreSnapshot(target));
    let mut after = *c;
    after.voters = NodeSet::of(target);
    after.learners = NodeSet::EMPTY;
    push_undo_masters(&after, t.new_masters().filter(|x| *x != target).fold(NodeSet::EMPTY, NodeSet::with), &mut actions);
    if !c.apiserver_running.contains(target) && c.cert_present.contains(target) {
        actions.push(Action::RestartApiserver(target));
    }
    Some(actions)
}

/// Why the worst case cannot be carried out where it cannot: the source plan's worst case
/// restores etcd onto the first master *and* rebuilds its VM from the hypervisor snapshot taken
/// before anything changed it (its 0.1); with no snapshot taken there is nothing to rebuild from.
pub fn worst_case_refusal(c: &Cluster, t: &Topology) -> Option<String> {
    if c.vm_snapshot {
        return None;
    }
    let m0 = t.name(t.existing_master());
    Some(format!("no VM snapshot of {m0} has been taken: the worst case rebuilds its VM from one"))
}

/// Whether the state has lost quorum (so membership cannot change).
pub fn quorum_lost(c: &Cluster) -> bool {
    !observe::quorum(c).holds()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::planner;
    use plan_model::validate::parse_scenario;

    #[test]
    fn phases_are_classified_by_their_actions_not_their_ids() {
        let t = Topology::new(&parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the homelab is valid"));
        let mut plan = planner::generate(&t);
        // Renaming every phase must not change what its rollback is.
        for step in &mut plan.steps {
            step.phase = format!("renamed-{}", step.phase);
        }
        let m2 = t.resolve("master-2").expect("k8s-master-2 exists");
        assert_eq!(phase_kind(&plan, "renamed-0"), PhaseKind::Retrofit);
        assert_eq!(phase_kind(&plan, "renamed-1"), PhaseKind::LoadBalancer);
        assert_eq!(phase_kind(&plan, "renamed-1.5"), PhaseKind::ConfigStack);
        assert_eq!(phase_kind(&plan, "renamed-2"), PhaseKind::Master(m2));
        assert_eq!(phase_kind(&plan, "renamed-4"), PhaseKind::Cutover);
        assert_eq!(phase_kind(&plan, "renamed-5"), PhaseKind::After);
        assert_eq!(phase_kind(&plan, "no-such-phase"), PhaseKind::After);
    }

    /// Undoing every new master at once (the quorum recovery's and the worst case's undo) takes
    /// each out of the pool, then deploys the LB once, before any of them is destroyed.
    #[test]
    fn several_masters_undone_deploy_the_lb_once_before_any_is_destroyed() {
        for file in ["homelab.yaml", "five-masters.yaml", "keepalived-five.yaml"] {
            let text = std::fs::read_to_string(format!("{}/../scenarios/{file}", env!("CARGO_MANIFEST_DIR"))).expect("the scenario");
            let t = Topology::new(&parse_scenario(&text).expect("valid"));
            let plan = planner::generate(&t);
            // The cluster just before the cut-over: every new master joined and in the pool.
            let mut c = Cluster::initial(&t);
            for step in plan.steps.iter().take_while(|s| phase_kind(&plan, &s.phase) != PhaseKind::Cutover) {
                for &a in &step.actions {
                    plan_model::action::apply_in_place(&mut c, &t, a).unwrap_or_else(|r| panic!("{file} {}: {a:?}: {}", step.id, r.reason));
                }
            }
            let m0 = t.existing_master();
            let others: Vec<NodeIx> = t.new_masters().collect();
            assert!(others.iter().all(|x| c.lb_declared.pool.contains(*x)), "{file}: every new master in the pool");
            for (what, actions) in
                [("quorum recovery", quorum_recovery_actions(&c, &t, m0)), ("worst case", worst_case_actions(&c, &t).expect("a target"))]
            {
                let at = |want: &dyn Fn(&Action) -> bool| actions.iter().position(want);
                let deploys = actions.iter().filter(|a| **a == Action::DeployLb).count();
                assert_eq!(deploys, 1, "{file} {what}: {actions:?}");
                let deploy = at(&|a| *a == Action::DeployLb).expect("a deploy");
                for &x in &others {
                    let removed =
                        at(&|a| *a == Action::RemoveLbBackend(x)).unwrap_or_else(|| panic!("{file} {what}: {x:?} out of the pool"));
                    let destroyed = at(&|a| *a == Action::DestroyVm(x)).unwrap_or_else(|| panic!("{file} {what}: {x:?} destroyed"));
                    assert!(removed < deploy && deploy < destroyed, "{file} {what}: {actions:?}");
                }
                // And the model takes the whole undo from that state.
                let mut after = c;
                for &a in &actions {
                    plan_model::action::apply_in_place(&mut after, &t, a).unwrap_or_else(|r| panic!("{file} {what}: {a:?}: {}", r.reason));
                }
                assert!(others.iter().all(|x| !after.lb_running.pool.contains(*x) && !after.vm_exists.contains(*x)), "{file} {what}");
            }
        }
    }
}
