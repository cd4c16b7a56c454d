//! A fault during the executor's run on the lab: where it strikes among the executor's commands,
//! the twin's state at that moment, and the outcome of the run and its recovery in the twin's words.
//!
//! The twin places a fault after an action of a step (`2.5@1`: after `etcd member add`); the
//! executor runs commands, and one command may carry several actions (`kubeadm join` adds the
//! member, starts it and promotes it). [`strike_point`] finds the command boundary that is the
//! twin's point, or the point inside the `kubeadm join` shim (after its add, start or promote),
//! and refuses a point the executor's commands do not have.

use crate::error::LabError;
use crate::fidelity::Ending;
use plan_exec::runner::{Outcome, Recovery, RollbackOutcome};
use plan_model::action::{self, Action};
use plan_model::cluster::Cluster;
use plan_model::fault::{Fault, FaultKind};
use plan_model::plan::Plan;
use plan_model::topology::{NodeIx, Topology};
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Injection, Outcome as TwinOutcome};

/// A fault struck during a rehearsal through the executor, and the recovery the lab, as the
/// operator, picks at the halt it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drill {
    pub injection: Injection,
    /// `plan recover --choose KIND` (a [`RecoveryKind::name`]), and the twin pinned to the same
    /// kind ([`plan_sim::run::Engine::choosing`]); `None`: the executor's best, as `plan recover`.
    pub choose: Option<&'static str>,
}

impl From<Injection> for Drill {
    fn from(injection: Injection) -> Drill {
        Drill { injection, choose: None }
    }
}

/// Where the lab strikes, in the executor's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrikeAt {
    /// When the step begins, before the executor observes the hosts for it.
    StepBegins,
    /// Right after the step's invocation with this index finished.
    AfterInvocation(usize),
    /// Inside the `kubeadm join` shim running on `host`, right after its `add`, `start` or `promote`.
    InJoin { host: NodeIx, after: &'static str },
}

/// What the lab does when the fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blow {
    /// The host crashes: for good, or (`boots_again`, a reboot) until the operator waits for it.
    Crash { victim: NodeIx, boots_again: bool },
    /// The victim's etcd is frozen (SIGSTOP): cut off from the other masters (and from everyone)
    /// until the operator waits for the partition to heal (SIGCONT).
    Freeze { victim: NodeIx },
    /// The lab's clock jumps (the operator away): the TTLs kubeadm checks run on it.
    ClockJump { seconds: u32 },
    /// The load balancer is reset to its declared state: the bootstrap script in the infra repo
    /// runs again on the pfSense box, as when someone else re-runs it.
    LbReload,
    /// The hypervisor (by its index in the scenario) fails: its host crashes, and so does every
    /// VM on it; for good, or (`boots_again`, an outage for a while) until the operator waits
    /// for them.
    HypervisorDown { hypervisor: u8, boots_again: bool },
}

impl Blow {
    pub fn victim(self) -> Option<NodeIx> {
        match self {
            Blow::Crash { victim, .. } | Blow::Freeze { victim } => Some(victim),
            Blow::ClockJump { .. } | Blow::LbReload | Blow::HypervisorDown { .. } => None,
        }
    }

    /// The fault clears by itself: the operator can wait for it.
    pub fn clears(self) -> bool {
        matches!(self, Blow::Crash { boots_again: true, .. } | Blow::Freeze { .. } | Blow::HypervisorDown { boots_again: true, .. })
    }
}

/// The fault, what the lab does, and where it strikes.
#[derive(Debug, Clone)]
pub struct Strike {
    pub step: usize,
    pub step_id: String,
    pub at: StrikeAt,
    pub blow: Blow,
}

fn refuse(what: String, why: impl Into<String>) -> LabError {
    LabError::NotRehearsable { what, why: why.into() }
}

/// The executor's counterpart of the twin's point for `injection` in `plan`, run from `start`
/// (the scenario's initial state for a whole plan; where the whole plan stands before a slice).
///
/// # Errors
/// A fault the executor's lab does not inject (it crashes hosts: `crash`), a step out of range,
/// or a point between two actions that one command carries and that is not a `kubeadm join`.
pub fn strike_point(t: &Topology, plan: &Plan, start: &Cluster, injection: Injection) -> Result<Strike, LabError> {
    let blow = match injection.fault {
        Fault::NodeDown { node, lasts_s } => Blow::Crash { victim: node, boots_again: lasts_s.is_some() },
        Fault::Partition { node, .. } => Blow::Freeze { victim: node },
        Fault::OperatorAway { lasts_s } => Blow::ClockJump { seconds: lasts_s },
        Fault::LbReload => Blow::LbReload,
        // The lab's load balancer is a host of its own: one the scenario runs on the hypervisor
        // would stay up on the lab where the twin has it down.
        Fault::HypervisorDown { hypervisor, .. }
            if t.scenario.load_balancer.hypervisor.as_deref() == Some(t.scenario.hypervisors[usize::from(hypervisor)].name.as_str()) =>
        {
            return Err(refuse(
                injection.fault.describe(t),
                "the load balancer runs on that hypervisor, and the lab does not take it down with it",
            ))
        }
        Fault::HypervisorDown { hypervisor, lasts_s } => Blow::HypervisorDown { hypervisor, boots_again: lasts_s.is_some() },
        other => {
            return Err(refuse(
                other.describe(t),
                format!(
                    "the executor's rehearsal injects {}, {} (the host crashes; a reboot boots it again), {} (etcd frozen), {} (the lab's clock jumps), {} (the bootstrap script re-run on the LB) and {} (the hypervisor's host and its VMs crash, for good or until they boot again)",
                    FaultKind::Crash.as_str(),
                    FaultKind::Reboot.as_str(),
                    FaultKind::Partition.as_str(),
                    FaultKind::OperatorAway.as_str(),
                    FaultKind::LbReload.as_str(),
                    FaultKind::HypervisorFailure.as_str()
                ),
            ))
        }
    };
    let i = usize::from(injection.at.step);
    let step = plan.steps.get(i).ok_or_else(|| refuse(format!("step index {i}"), "the plan has no such step"))?;
    let action = usize::from(injection.at.action);
    // As the executor compiles it, within the whole plan: a join's secrets relayed from the
    // steps that wrote them are invocations of its own.
    let compiled = plan_exec::invocation::compile(t, plan).swap_remove(i);
    let invocations = compiled.len();
    // The last invocation of the command the action ends with, where one ends right there.
    let ends_with = step
        .commands_after(t, action)
        .and_then(|done| done.checked_sub(1))
        .and_then(|command| compiled.iter().rposition(|i| i.command == command));
    let at = if action == 0 {
        StrikeAt::StepBegins
    } else if action >= step.actions.len() {
        StrikeAt::AfterInvocation(invocations.saturating_sub(1))
    } else {
        let join = step.operations.iter().any(|o| matches!(o, plan_model::operation::Operation::Join { .. }));
        let host = step.actions.iter().find_map(|a| match a {
            Action::EtcdMemberAdd(n) => Some(*n),
            _ => None,
        });
        match (step.actions[action - 1], join, host, ends_with) {
            (Action::EtcdMemberAdd(_), true, Some(host), _) => StrikeAt::InJoin { host, after: "add" },
            (Action::EtcdStart(_), true, Some(host), _) => StrikeAt::InJoin { host, after: "start" },
            (Action::EtcdPromote(_), true, Some(host), _) => StrikeAt::InJoin { host, after: "promote" },
            (_, _, _, Some(invocation)) => StrikeAt::AfterInvocation(invocation),
            (done, _, _, None) => {
                return Err(refuse(
                    format!("step {}@{action}", step.id),
                    format!(
                        "the executor runs step {} as {invocations} command(s) for its {} actions: no command ends right after {:?}; strike at {0}@0, or at the next step's start (after this one)",
                        step.id,
                        step.actions.len(),
                        done.describe(t),
                    ),
                ))
            }
        }
    };
    if !matches!(blow, Blow::Crash { .. }) && matches!(at, StrikeAt::InJoin { .. }) {
        return Err(refuse(
            format!("{} at {}@{action}", injection.fault.describe(t), step.id),
            format!(
                "through the executor, a partition or a clock jump strikes between commands, not inside kubeadm join: strike at {}@0 or after the step, inside the join it is not rehearsed on the lab (the twin explores it)",
                step.id
            ),
        ));
    }
    if matches!(blow, Blow::Crash { boots_again: true, .. }) && matches!(at, StrikeAt::InJoin { .. }) {
        let what = format!("{} at {}@{action}", injection.fault.describe(t), step.id);
        if !plan_model::observe::quorum(&state_at_strike(t, plan, start, injection)).holds() {
            return Err(refuse(
                what,
                "a reboot inside kubeadm join where the rebooting member costs quorum (a voter added, or promoted, and cut off) is not \
                 rehearsed through the executor: it waits at the halt for that member and goes straight to the quorum recovery where \
                 the twin first waits and runs the step again, and the two do not end alike yet: it is not rehearsed on the lab (the twin explores it)",
            ));
        }
        if !t.kubelet_local_mode {
            return Err(refuse(
                what,
                "a reboot inside kubeadm join without ControlPlaneKubeletLocalMode (before 1.33) is not rehearsed through the executor: \
                 kubeadm registers the node before the member add where the twin's states within the step do not (docs/facts.md K19), \
                 so the executor keeps the step's end as its belief and cannot run the cut join again: it is not rehearsed on the lab (the twin explores it)",
            ));
        }
    }
    Ok(Strike { step: i, step_id: step.id.clone(), at, blow })
}

/// Refuses, before any lab starts, a recovery kind picked for `drill` (`--choose`) that neither
/// side could take at its halt: a fault that clears or a clock jump is waited for or renewed first,
/// by the executor and the twin alike, before any pick; and a kind the twin, pinned to it, never
/// takes after this fault would leave the lab's pick with nothing to compare to.
///
/// # Errors
/// [`LabError::NotRehearsable`] with why.
pub fn check_choice(t: &Topology, plan: &Plan, start: &Cluster, drill: Drill, strike: &Strike) -> Result<(), LabError> {
    let Some(kind) = drill.choose else { return Ok(()) };
    let what = format!("--choose {kind} with {}", drill.injection.fault.describe(t));
    if strike.blow.clears() || matches!(strike.blow, Blow::ClockJump { .. }) {
        return Err(refuse(
            what,
            "a fault that clears (a reboot, a partition) is waited for and a clock jump renewed before any recovery is picked, by the executor and the twin alike: pick with a crash or an lb-reload",
        ));
    }
    let pinned = twin_run(t, plan, start, drill);
    if !pinned.recoveries.iter().any(|r| r.name() == kind) {
        return Err(refuse(
            what,
            format!("the twin, pinned to {kind}, never takes it after this fault (it ends: {})", pinned.outcome.label()),
        ));
    }
    Ok(())
}

/// The twin's run of `plan` from `start` with the drill's fault, its policy pinned to the drill's
/// pick when there is one: what the lab's run is set beside.
pub fn twin_run(t: &Topology, plan: &Plan, start: &Cluster, drill: Drill) -> plan_sim::run::RunResult {
    // With its events: where the fault is over in the twin's run ([`healed_going_on`]).
    let engine = plan_sim::run::Engine::new(t, plan, plan_sim::run::Recording { events: true, downtime: false });
    let engine = match drill.choose {
        Some(kind) => engine.choosing(kind),
        None => engine,
    };
    engine.run_cursor(plan_sim::run::Cursor::start(*start), &[drill.injection], None, None)
}

/// The step in which the twin's run has a fault that clears over while the plan goes on (no
/// halt between the fault and its end: the step's own time let it pass), if it does. The lab lets
/// the executor's look after a step wait such a fault out from that step on; before it, and where
/// the twin halts first, only a wait before a step or at a halt does (the executor's 20 s after a
/// step are far shorter than a reboot; the lab's reboot is shorter still).
pub fn healed_going_on(run: &plan_sim::run::RunResult) -> Option<String> {
    use plan_sim::run::EventKind;
    let struck = run.events.iter().position(|e| e.kind == EventKind::Fault)?;
    for event in &run.events[struck + 1..] {
        match event.kind {
            EventKind::Halt => return None,
            EventKind::Heal => return Some(event.step.clone()),
            _ => {}
        }
    }
    None
}

/// The twin's state the moment the fault strikes: the plan's actions from `start` up to the point
/// (a refused one leaves the state as it was, as in the twin's prediction), then the fault.
pub fn state_at_strike(t: &Topology, plan: &Plan, start: &Cluster, injection: Injection) -> Cluster {
    let (step, after) = (usize::from(injection.at.step), usize::from(injection.at.action));
    let actions = plan.steps.iter().enumerate().take(step + 1).flat_map(|(i, s)| {
        let upto = if i == step { after.min(s.actions.len()) } else { s.actions.len() };
        s.actions[..upto].iter().copied()
    });
    injection.fault.strike(&apply_taken(t, *start, actions), t)
}

/// The twin's state right before the recovery's own `etcdctl member remove` of `node`: `c` (the
/// state at the strike) with the recovery's actions before it carried out (a refused one leaves
/// the state as it was). A `kubeadm reset` before it removes the member already.
pub fn before_member_remove(t: &Topology, c: &Cluster, recovery: &[Action], node: NodeIx) -> Cluster {
    apply_taken(t, *c, recovery.iter().copied().take_while(|a| *a != Action::EtcdMemberRemove(node)))
}

/// `c` after `actions`, a refused one leaving the state as it was.
fn apply_taken(t: &Topology, c: Cluster, actions: impl IntoIterator<Item = Action>) -> Cluster {
    actions.into_iter().fold(c, |c, a| action::apply(&c, t, a).unwrap_or(c))
}

/// `etcdctl member remove` of `node` in the twin's state `c`: taken, or the model's refusal.
pub fn twin_member_remove(t: &Topology, c: &Cluster, node: NodeIx) -> Result<(), String> {
    action::apply(c, t, Action::EtcdMemberRemove(node)).map(|_| ()).map_err(|refusal| refusal.reason)
}

/// The executor's run and recovery in the twin's terms ([`TwinOutcome`]) where it has them, so the
/// two ends compare as values.
pub fn executor_outcome(t: &Topology, outcome: &Outcome, recovery: Option<&Recovery>, rollback: Option<&RollbackOutcome>) -> Ending {
    // A go-forward carried out: the run went on without the machines its write-off took out, to
    // the end of the plan or to the step the executor halted at then.
    if let (Some(Recovery { kind: RecoveryKind::GoForward, expected, .. }), Some(RollbackOutcome::Done { .. })) = (recovery, rollback) {
        let without = expected.written_off.iter().map(|n| t.name(n).to_string()).collect();
        let stopped_at = match outcome {
            Outcome::Halted(halt) => Some(plan_sim::run::StoppedAt { step: halt.step.clone(), why: halt.reason.clone() }),
            _ => None,
        };
        return Ending::Outcome(TwinOutcome::WentOn { without, stopped_at });
    }
    let recovery = recovery.map(|r| &r.kind);
    match (outcome, rollback) {
        (Outcome::Completed, _) => Ending::Outcome(TwinOutcome::Completed),
        (Outcome::Declined { phase }, _) => Ending::Declined { phase: phase.clone() },
        (Outcome::Halted(halt), Some(RollbackOutcome::Done { .. })) => match recovery {
            Some(RecoveryKind::Rollback { phase }) => Ending::Outcome(TwinOutcome::RolledBack { phase: phase.clone() }),
            Some(RecoveryKind::QuorumRecovery) => Ending::Outcome(TwinOutcome::QuorumRecovered),
            Some(RecoveryKind::WorstCase) => Ending::Restored,
            Some(RecoveryKind::Hold) => Ending::Outcome(TwinOutcome::Halted { step: halt.step.clone() }),
            Some(other) => Ending::RecoveredBy(other.clone()),
            None => Ending::HaltedAt(halt.step.clone()),
        },
        (Outcome::Halted(_), Some(RollbackOutcome::Failed { reason, .. })) => Ending::Outcome(TwinOutcome::Stuck { why: reason.clone() }),
        // Nothing ran in the halted step and the hosts are as before it: nothing was undone, the
        // run stands halted there, as when the recovery is declined.
        (Outcome::Halted(halt), Some(RollbackOutcome::Declined | RollbackOutcome::NothingToUndo { .. }) | None) => {
            Ending::HaltedAt(halt.step.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_exec::invocation::Compiler;
    use plan_model::validate::parse_scenario;
    use plan_sim::run::Point;

    fn topology(text: &str) -> Topology {
        Topology::new(&parse_scenario(text).expect("scenario parses"))
    }

    /// `drill` on the whole `plan` from the scenario's start: its strike, then its pick checked.
    fn checked(t: &Topology, plan: &Plan, drill: Drill) -> Result<(), LabError> {
        let start = Cluster::initial(t);
        strike_point(t, plan, &start, drill.injection).and_then(|strike| check_choice(t, plan, &start, drill, &strike))
    }

    fn at(plan: &Plan, id: &str, action: u16) -> Point {
        Point { step: plan.steps.iter().position(|s| s.id == id).expect("step") as u16, action }
    }

    /// Where the twin's run has a reboot over while the plan goes on: after the failover test's
    /// watch (6.1@2) the step's own time lets it pass; after 2.8's deploy (2.8@2) the next check
    /// finds the backend down and the twin halts first, and after a crash for good it never ends.
    #[test]
    fn a_reboot_is_over_going_on_only_where_the_twins_run_lets_the_steps_time_pass() {
        let t = topology(include_str!("../../scenarios/homelab.yaml"));
        let plan = plan_model::planner::generate(&t);
        let m2 = t.resolve("master-2").expect("master-2");
        let healed = |id: &str, action: u16, lasts_s| {
            let injection = Injection { at: at(&plan, id, action), fault: Fault::NodeDown { node: m2, lasts_s } };
            healed_going_on(&twin_run(&t, &plan, &Cluster::initial(&t), Drill { injection, choose: None }))
        };
        assert_eq!(healed("6.1", 2, Some(90)).as_deref(), Some("6.1"));
        assert_eq!(healed("2.8", 2, Some(90)), None);
        assert_eq!(healed("6.1", 2, None), None);
    }

    #[test]
    fn a_fault_after_the_member_add_strikes_inside_the_join_and_others_at_command_boundaries() {
        let t = topology(include_str!("../../scenarios/homelab.yaml"));
        let plan = plan_model::planner::generate(&t);
        let m2 = t.resolve("master-2").expect("master-2");
        let crash = Fault::NodeDown { node: m2, lasts_s: None };
        let struck =
            |fault, id: &str, action| strike_point(&t, &plan, &Cluster::initial(&t), Injection { at: at(&plan, id, action), fault });
        let strike = |id: &str, action: u16| struck(crash, id, action);
        let join = strike("2.5", 1).expect("after the add");
        assert_eq!(
            (join.at, join.blow, join.step_id.as_str()),
            (StrikeAt::InJoin { host: m2, after: "add" }, Blow::Crash { victim: m2, boots_again: false }, "2.5")
        );
        assert_eq!(strike("2.5", 2).expect("after the start").at, StrikeAt::InJoin { host: m2, after: "start" });
        assert_eq!(strike("2.5", 0).expect("at the start").at, StrikeAt::StepBegins);
        let last = plan.steps.iter().find(|s| s.id == "4.1").expect("4.1");
        assert_eq!(strike("4.1", 99).expect("after").at, StrikeAt::AfterInvocation(Compiler::new(&t).step(last).len() - 1));
        // After 2.5's join: its last invocation as the executor runs it, the join itself, after
        // the two secrets relayed from where 2.3 and 2.4 wrote them (the step alone has none).
        let join = plan.steps.iter().position(|s| s.id == "2.5").expect("2.5");
        let invoked = &plan_exec::invocation::compile(&t, &plan)[join];
        assert_eq!((invoked.len(), Compiler::new(&t).step(&plan.steps[join]).len()), (3, 1));
        assert_eq!(strike("2.5", 99).expect("after the join").at, StrikeAt::AfterInvocation(2));
        // 0.2's two actions run as four commands: its patch is the last (upload-config), and the
        // check after it runs none.
        let patch = plan.steps.iter().find(|s| s.id == "0.2").expect("0.2");
        let invoked = Compiler::new(&t).step(patch);
        assert_ne!(invoked.len(), patch.actions.len());
        let upload = invoked.iter().rposition(|i| i.command == 3).expect("the upload");
        assert!(patch.commands[3].run.contains("upload-config"), "{:?}", patch.commands[3]);
        assert_eq!(strike("0.2", 1).expect("after the patch").at, StrikeAt::AfterInvocation(upload));
        // 6.1 runs five commands for its five actions, but not one for one: the shutdown is
        // `sudo reboot`, after the drain; the VIP's watch its own; the boot comes inside
        // `kubectl wait`, where no command ends.
        let failover = plan.steps.iter().find(|s| s.id == "6.1").expect("6.1");
        let invoked = Compiler::new(&t).step(failover);
        assert_eq!((invoked.len(), failover.actions.len()), (5, 5));
        let after = |command: usize| StrikeAt::AfterInvocation(invoked.iter().rposition(|i| i.command == command).expect("a command"));
        assert!(failover.commands[1].run.contains("sudo reboot"), "{:?}", failover.commands[1]);
        assert_eq!(strike("6.1", 1).expect("after the shutdown").at, after(1));
        assert_eq!(strike("6.1", 2).expect("after the watch").at, after(2));
        match strike("6.1", 3) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("no command ends right after"), "{why}"),
            other => panic!("refused: {other:?}"),
        }
        assert_eq!(strike("6.1", 4).expect("after the apiserver is ready").at, after(3));
        let reboot_fault = Fault::NodeDown { node: m2, lasts_s: Some(90) };
        // A reboot inside a learner-mode join strikes there; inside a voter-mode one it is refused.
        let in_join = struck(reboot_fault, "2.5", 1).expect("learner mode");
        assert_eq!(
            (in_join.at, in_join.blow),
            (StrikeAt::InJoin { host: m2, after: "add" }, Blow::Crash { victim: m2, boots_again: true })
        );
        // Refused where the rebooting member costs quorum: a voter added (voter mode), or the
        // learner just promoted (1 of 2 voters up); and where kubeadm registers the node before the
        // add (no kubelet local mode, before 1.33).
        let refused_because = |t: &Topology, plan: &Plan, node: &str, id: &str, action: u16, because: &str| {
            let node = t.resolve(node).expect("the node");
            let reboot = Injection { at: at(plan, id, action), fault: Fault::NodeDown { node, lasts_s: Some(90) } };
            match strike_point(t, plan, &Cluster::initial(t), reboot) {
                Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains(because), "{why}"),
                other => panic!("{id}@{action} refused: {other:?}"),
            }
        };
        let legacy = topology(include_str!("../../scenarios/legacy-1.28.yaml"));
        refused_because(&legacy, &plan_model::planner::generate(&legacy), "cp-2", "2.5", 1, "costs quorum");
        refused_because(&t, &plan, "master-2", "2.5", 3, "costs quorum");
        let three = topology(include_str!("../../scenarios/three-hypervisors.yaml"));
        let three_plan = plan_model::planner::generate(&three);
        let first_join = three_plan.steps.iter().find(|s| s.actions.iter().any(|a| matches!(a, Action::EtcdMemberAdd(_)))).expect("a join");
        let joining = three.new_masters().next().map(|x| three.name(x).to_string()).expect("a new master");
        refused_because(&three, &three_plan, &joining, &first_join.id, 1, "ControlPlaneKubeletLocalMode");
        let reboot = struck(reboot_fault, "3.5", 0).expect("a reboot as 3.5 begins");
        assert_eq!((reboot.at, reboot.blow), (StrikeAt::StepBegins, Blow::Crash { victim: m2, boots_again: true }));
        let away = struck(Fault::OperatorAway { lasts_s: 3 * 3600 }, "2.5", 0).expect("a clock jump as 2.5 begins");
        assert_eq!((away.at, away.blow, away.blow.victim()), (StrikeAt::StepBegins, Blow::ClockJump { seconds: 3 * 3600 }, None));
        let partition = Fault::Partition { node: m2, lasts_s: Some(300) };
        let frozen = struck(partition, "3.5", 0).expect("a partition as 3.5 begins");
        assert!(frozen.blow.clears() && frozen.blow == Blow::Freeze { victim: m2 });
        assert!(matches!(struck(partition, "2.5", 1), Err(LabError::NotRehearsable { .. })));
        let reload = struck(Fault::LbReload, "2.8", 0).expect("a reload as 2.8 begins");
        assert_eq!(
            (reload.at, reload.blow, reload.blow.victim(), reload.blow.clears()),
            (StrikeAt::StepBegins, Blow::LbReload, None, false)
        );
        assert!(matches!(struck(Fault::LbReload, "2.5", 1), Err(LabError::NotRehearsable { .. })), "not inside kubeadm join");
        assert!(matches!(struck(Fault::LbDown { lasts_s: 60 }, "2.5", 0), Err(LabError::NotRehearsable { .. })));
        // A hypervisor fails for good, or for a while: then it clears.
        let for_good = struck(Fault::HypervisorDown { hypervisor: 0, lasts_s: None }, "3.5", 0).expect("for good as 3.5 begins");
        assert_eq!(
            (for_good.at, for_good.blow, for_good.blow.victim(), for_good.blow.clears()),
            (StrikeAt::StepBegins, Blow::HypervisorDown { hypervisor: 0, boots_again: false }, None, false)
        );
        let back = struck(Fault::HypervisorDown { hypervisor: 0, lasts_s: Some(600) }, "3.5", 0).expect("for a while");
        assert_eq!((back.blow, back.blow.clears()), (Blow::HypervisorDown { hypervisor: 0, boots_again: true }, true));
        // Nor one the load balancer runs on: the twin takes it down, the lab's stays up.
        let mut on_lb = parse_scenario(include_str!("../../scenarios/three-hypervisors.yaml")).expect("scenario parses");
        on_lb.load_balancer.hypervisor = Some(on_lb.hypervisors[2].name.clone());
        let on_lb = Topology::new(&on_lb);
        let on_lb_plan = plan_model::planner::generate(&on_lb);
        let fails = |hypervisor| Injection { at: at(&on_lb_plan, "3.6", 0), fault: Fault::HypervisorDown { hypervisor, lasts_s: None } };
        match strike_point(&on_lb, &on_lb_plan, &Cluster::initial(&on_lb), fails(2)) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("the load balancer runs on that hypervisor"), "{why}"),
            other => panic!("refused: {other:?}"),
        }
        assert!(strike_point(&on_lb, &on_lb_plan, &Cluster::initial(&on_lb), fails(1)).is_ok(), "another hypervisor is struck");
    }

    /// A pick the lab and the twin can both take is let through; a pick after a fault that clears,
    /// or of a kind the pinned twin never takes, is refused before any lab starts.
    #[test]
    fn a_recovery_picked_by_kind_is_refused_where_neither_side_could_take_it() {
        let legacy = topology(include_str!("../../scenarios/legacy-1.28.yaml"));
        let plan = plan_model::planner::generate(&legacy);
        let cp2 = legacy.resolve("cp-2").expect("cp-2");
        let drill = |lasts_s, choose| Drill {
            injection: Injection { at: at(&plan, "2.5", 1), fault: Fault::NodeDown { node: cp2, lasts_s } },
            choose,
        };
        let check = |d: Drill| checked(&legacy, &plan, d);
        assert!(check(drill(None, Some("worst-case"))).is_ok());
        assert!(check(drill(None, Some("quorum-recovery"))).is_ok());
        assert!(check(drill(None, None)).is_ok());
        match check(drill(None, Some("resume"))) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("never takes it"), "{why}"),
            other => panic!("refused: {other:?}"),
        }
        let t = topology(include_str!("../../scenarios/homelab.yaml"));
        let homelab = plan_model::planner::generate(&t);
        let m2 = t.resolve("master-2").expect("master-2");
        let reboot = Drill {
            injection: Injection { at: at(&homelab, "3.5", 0), fault: Fault::NodeDown { node: m2, lasts_s: Some(90) } },
            choose: Some("worst-case"),
        };
        match checked(&t, &homelab, reboot) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("a fault that clears"), "{why}"),
            other => panic!("refused: {other:?}"),
        }
        // The first master lost for good after the cut-over: the twin goes forward, and the lab
        // as operator carries out its write-off, as it does holding, picked.
        let m0 = t.existing_master();
        let lost = |choose| Drill {
            injection: Injection { at: at(&homelab, "4.5", 0), fault: Fault::NodeDown { node: m0, lasts_s: None } },
            choose,
        };
        for choose in [None, Some("go-forward"), Some("hold")] {
            assert!(checked(&t, &homelab, lost(choose)).is_ok(), "{choose:?}");
        }
    }

    /// A `kubeadm reset` of an up node before the recovery's own remove takes the member with it
    /// in the twin, as the lab's reset does; a remove that comes first finds the member.
    #[test]
    fn the_twin_before_a_recoverys_member_remove_has_what_the_actions_before_it_left() {
        let t = topology(include_str!("../../scenarios/homelab.yaml"));
        let plan = plan_model::planner::generate(&t);
        let m2 = t.resolve("master-2").expect("master-2");
        let mut c = Cluster::initial(&t);
        'plan: for step in &plan.steps {
            for &a in &step.actions {
                c = action::apply(&c, &t, a).expect("the plan applies up to the add");
                if a == Action::EtcdMemberAdd(m2) {
                    break 'plan;
                }
            }
        }
        assert!(c.members().contains(m2) && c.up.contains(m2));
        let reset_first = [Action::KubeadmReset(m2), Action::EtcdMemberRemove(m2), Action::DestroyVm(m2)];
        assert!(!before_member_remove(&t, &c, &reset_first, m2).members().contains(m2), "reset removed it");
        let remove_first = [Action::EtcdMemberRemove(m2), Action::KubeadmReset(m2)];
        assert!(before_member_remove(&t, &c, &remove_first, m2).members().contains(m2));
    }

    #[test]
    fn the_twin_at_the_strike_refuses_the_member_remove_only_without_learners() {
        for (text, node, refused) in [
            (include_str!("../../scenarios/homelab.yaml"), "master-2", false),
            (include_str!("../../scenarios/legacy-1.28.yaml"), "cp-2", true),
        ] {
            let t = topology(text);
            let plan = plan_model::planner::generate(&t);
            let victim = t.resolve(node).expect("node");
            let injection = Injection { at: at(&plan, "2.5", 1), fault: Fault::NodeDown { node: victim, lasts_s: None } };
            let c = state_at_strike(&t, &plan, &Cluster::initial(&t), injection);
            assert!(!c.up.contains(victim));
            assert!(c.members().contains(victim), "the member add happened");
            assert_eq!(twin_member_remove(&t, &c, victim).is_err(), refused, "{}", t.scenario.name);
        }
    }
}
