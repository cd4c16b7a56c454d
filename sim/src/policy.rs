//! What the executor does when a run halts: the order it tries recoveries in, written once.
//!
//! The twin ([`crate::run`]) and the lab's rehearsal both follow this policy; each carries the
//! chosen actions out in its own place (the model alone, or real etcd beside the model), so a
//! change to the policy reaches both and the lab keeps testing the policy the twin checks.

use crate::recovery::RecoveryKind;
use crate::run::{EventKind, Halt, Outcome};
use crate::search::{self, Candidate};
use plan_model::action::{Action, Refusal, RefusalKind};
use plan_model::cluster::{Cluster, EtcdData};
use plan_model::plan::Plan;
use plan_model::topology::{NodeSet, Topology};
use std::sync::Arc;

/// Recoveries one run may take before it is declared stuck.
pub const RECOVERIES_MAX: u32 = 4;

/// What the executor does after a halt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Re-run the halted step, skipping the actions already done.
    Retry,
    /// The run is over.
    Stop(Outcome),
}

/// Where recovery actions are carried out: the twin's model, or a lab with the model beside it.
///
/// The policy reads the model state through [`Executor::cluster`] after every action, so an
/// implementation that follows reality (the lab) must correct its model from what it saw.
pub trait Executor {
    /// Why carrying out an action failed underneath (not a refusal: the lab breaking).
    type Error;

    /// The model state now.
    fn cluster(&self) -> &Cluster;
    /// Nodes a fault took down, for good or for a while: unlike a node the plan itself shut
    /// down, the operator cannot just boot them.
    fn struck(&self) -> NodeSet;
    /// Whether a temporary fault is still running.
    fn fault_pending(&self) -> bool;
    /// Waits until every temporary fault is over.
    ///
    /// # Errors
    /// The place underneath failed.
    fn wait_for_pending(&mut self, step: &str) -> Result<(), Self::Error>;
    /// Carries out one recovery action.
    ///
    /// # Errors
    /// The place underneath failed; a refused action is `Ok(Err(refusal))`.
    fn apply(&mut self, action: Action, step: &str) -> Result<Result<(), Refusal>, Self::Error>;
    /// Records that the policy took `kind`.
    fn took(&mut self, kind: RecoveryKind);
    /// Notes a line in the timeline, for a reader of the run.
    fn note(&mut self, step: &str, kind: EventKind, what: String);
    /// The recovery the plan documents for this halt leaves a worse cluster than the one taken.
    fn dominated(&mut self, _dominated: Dominated) {}
    /// Whether notes are kept: where they are not (the exploration), the policy does not build them.
    fn timeline(&self) -> bool {
        true
    }
    /// Every candidate recovery from `c` after a halt in step `step`, best first
    /// ([`search::rank`]); a place that meets the same halt often may remember them.
    fn rank(&mut self, c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> Arc<[Candidate]> {
        search::rank(c, t, plan, step).into()
    }
    /// The candidates the twin weighed at a halt, before it carries out the best: a place with
    /// real parts may ask them the questions the ranking answered (the lab asks real etcd
    /// whether a refused `member remove` is refused).
    ///
    /// # Errors
    /// The place underneath failed.
    fn weighed(&mut self, _step: &str, _ranking: &[Candidate]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The kind of recovery the operator picked for every halt (`plan recover --choose KIND`,
    /// `plan rehearse --choose KIND`), by [`RecoveryKind::name`]: the search's best of that kind
    /// is carried out instead of the best of all. `None`: the best.
    fn chosen(&self) -> Option<&str> {
        None
    }
    /// The halt being recovered from, in words (a place that leaves refusals unworded words
    /// the one it reports here).
    fn halt_words(&self, _t: &Topology, halt: &Halt) -> String {
        halt.to_string()
    }
}

/// A halt where the plan's documented recovery (the phase's rollback, or holding after the
/// cut-over) is beaten by another: it loses data, breaks safety or leaves less available.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dominated {
    pub step: String,
    pub documented: RecoveryKind,
    /// What the documented recovery would leave, in words.
    pub documented_cost: String,
    pub chosen: RecoveryKind,
    pub chosen_cost: String,
    /// The documented recovery cannot be carried out, loses data or leaves the API down (or
    /// etcd without quorum) where the chosen one keeps the data and the API up: a violation.
    pub harms: bool,
}

/// Reality differs from what the plan expects before a step: a machine down, the LB down, a
/// partition. The executor checks this before every step and halts on it.
pub fn drift(c: &Cluster, t: &Topology) -> Option<String> {
    Drift::of(c, NodeSet::EMPTY).map(|d| d.describe(t))
}

/// The machines step `s` shut down to boot them again (a planned reboot, such as the failover
/// test's) that are down now though no fault took them down (`struck`): a re-run of the step (a
/// resume from the journal, a retry once a fault is over) finds them as the step left them, and
/// the step's own boot brings them back.
pub fn rebooting(c: &Cluster, s: &plan_model::plan::Step, struck: NodeSet) -> NodeSet {
    s.actions
        .iter()
        .filter_map(|a| match *a {
            Action::Boot(x) => Some(x),
            _ => None,
        })
        .filter(|&x| c.vm_exists.contains(x) && !c.up.contains(x) && !struck.contains(x))
        .fold(NodeSet::EMPTY, NodeSet::with)
}

/// What differs from the plan's expectation before a step, the first found: [`drift`] without
/// its words, for a caller that halts often and words them once ([`DriftWords`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    Down(plan_model::topology::NodeIx),
    LbDown,
    Partitioned(plan_model::topology::NodeIx),
    HypervisorDown,
}

impl Drift {
    /// The first drift of `c`, where the machines in `rebooting` ([`rebooting`]) are expected
    /// down too.
    pub fn of(c: &Cluster, rebooting: NodeSet) -> Option<Drift> {
        // A machine written off is expected down: the plan goes on without it.
        if let Some(n) = c.vm_exists.minus(c.up).minus(c.written_off).minus(rebooting).iter().next() {
            return Some(Drift::Down(n));
        }
        if !c.lb_up {
            return Some(Drift::LbDown);
        }
        if let Some(n) = c.partitioned.iter().next() {
            return Some(Drift::Partitioned(n));
        }
        if c.hypervisors_down != 0 {
            return Some(Drift::HypervisorDown);
        }
        None
    }

    pub fn describe(self, t: &Topology) -> String {
        match self {
            Drift::Down(n) => format!("{} is down", t.name(n)),
            Drift::LbDown => format!("{} is down", t.scenario.load_balancer.name),
            Drift::Partitioned(n) => format!("{} cannot reach the other masters", t.name(n)),
            Drift::HypervisorDown => "a hypervisor is down".to_string(),
        }
    }
}

/// Every drift of a topology in words, written once: a run halts on drift at most steps a
/// fault reaches, and formatting the same few sentences each time is most of a halt's cost.
#[derive(Debug, Clone)]
pub struct DriftWords {
    /// By node: down, and cut off by a partition. Shared, not copied, by every halt that names
    /// them (some 130,000 at depth 2 on the homelab).
    down: Vec<Arc<str>>,
    partitioned: Vec<Arc<str>>,
    lb_down: Arc<str>,
    hypervisor_down: Arc<str>,
}

impl DriftWords {
    pub fn new(t: &Topology) -> DriftWords {
        let nodes = || (0..t.nodes.len()).map(|i| plan_model::topology::NodeIx(i as u8));
        DriftWords {
            down: nodes().map(|n| Drift::Down(n).describe(t).into()).collect(),
            partitioned: nodes().map(|n| Drift::Partitioned(n).describe(t).into()).collect(),
            lb_down: Drift::LbDown.describe(t).into(),
            hypervisor_down: Drift::HypervisorDown.describe(t).into(),
        }
    }

    /// [`Drift::describe`], read from the table.
    pub fn of(&self, drift: Drift) -> &Arc<str> {
        match drift {
            Drift::Down(n) => &self.down[n.0 as usize],
            Drift::LbDown => &self.lb_down,
            Drift::Partitioned(n) => &self.partitioned[n.0 as usize],
            Drift::HypervisorDown => &self.hypervisor_down,
        }
    }
}

/// Chooses and carries out a recovery after the run halted in step `step` with `halt`; `count`
/// is the recoveries this run has taken so far, and bounds them.
///
/// A temporary fault is waited for and the step re-run; a planned reboot is finished; expired
/// credentials are renewed and the step re-run. Otherwise every candidate recovery (hold, the
/// phase's rollback, quorum recovery, the snapshot restore) is run in the model to its end and
/// the best by [`search::rank`] is carried out; none applicable: stuck.
///
/// # Errors
/// Whatever the executor's place underneath fails with; the policy itself never fails.
pub fn recover<E: Executor>(exec: &mut E, t: &Topology, plan: &Plan, step: usize, halt: &Halt, count: &mut u32) -> Result<Next, E::Error> {
    let id: &str = &plan.steps[step].id;
    *count += 1;
    say(exec, id, EventKind::Halt, || format!("HALT: {halt}"));
    if *count > RECOVERIES_MAX {
        return Ok(Next::Stop(Outcome::Stuck { why: format!("{RECOVERIES_MAX} recoveries did not get past step {id}") }));
    }
    // 1. A temporary fault: wait for it, then re-run the step.
    if exec.fault_pending() {
        exec.took(RecoveryKind::WaitAndRetry);
        exec.wait_for_pending(id)?;
        return Ok(Next::Retry);
    }
    // 1b. A node the step itself shut down (a planned reboot) and no fault touched: finish the
    // reboot before deciding, so it counts as a survivor.
    for x in rebooting(exec.cluster(), &plan.steps[step], exec.struck()).iter() {
        say(exec, id, EventKind::Recovery, || format!("wait for the planned reboot of {}", t.name(x)));
        let _ = exec.apply(Action::Boot(x), id)?;
    }
    // 2. Expired credentials: the renewal (`search::renewal`, which the executor proposes first
    // at such a halt too), then the step again.
    if let Halt::Refused(Refusal { kind: RefusalKind::Expired, .. }) = halt {
        exec.took(RecoveryKind::Renew);
        say(exec, id, EventKind::Recovery, || RecoveryKind::Renew.describe());
        let mut renewed = true;
        for a in search::RENEWAL {
            if exec.apply(a, id)?.is_err() {
                renewed = false;
                break;
            }
        }
        if renewed {
            return Ok(Next::Retry);
        }
    }
    // 3. Recovery by search: every candidate run in the model from here to its end, ranked
    // (crate::search); the best is carried out. If reality refuses it (the lab), the ranking is
    // made again from where it stopped, without the kinds already tried.
    let weighed_from = *exec.cluster();
    let mut ranking = exec.rank(&weighed_from, t, plan, step);
    report_ranking(exec, id, &ranking);
    exec.weighed(id, &ranking)?;
    let mut tried: Vec<RecoveryKind> = Vec::new();
    loop {
        // Ranked again only where the state moved (the lab's answers, a recovery cut short).
        if *exec.cluster() != weighed_from || !tried.is_empty() {
            let now = *exec.cluster();
            ranking = exec.rank(&now, t, plan, step);
        }
        // The ranking is shared (a memory may hold it): the best is read in place, not copied.
        let chosen = exec.chosen();
        let picked = |c: &&Candidate| chosen.is_none_or(|kind| c.kind.name() == kind);
        let Some(best) = ranking.iter().filter(picked).find(|c| c.applicable() && !tried.contains(&c.kind)) else {
            return Ok(Next::Stop(Outcome::Stuck { why: format!("no recovery applies after: {}", exec.halt_words(t, halt)) }));
        };
        exec.took(best.kind.clone());
        say(exec, id, EventKind::Recovery, || format!("{} ({})", best.kind.describe(), best.cost.summary()));
        if run_recovery(exec, t, &best.actions, id)?.is_ok() {
            return Ok(Next::Stop(match &best.kind {
                RecoveryKind::Rollback { phase } => Outcome::RolledBack { phase: phase.clone() },
                RecoveryKind::QuorumRecovery => Outcome::QuorumRecovered,
                RecoveryKind::WorstCase => Outcome::RestoredFromSnapshot {
                    lost_s: match exec.cluster().etcd_data {
                        EtcdData::RestoredFromSnapshot { lost_s } => lost_s,
                        EtcdData::Intact => 0,
                    },
                },
                RecoveryKind::GoForward => Outcome::WentOn {
                    without: crate::recovery::to_write_off(&weighed_from).iter().map(|n| t.name(n).to_string()).collect(),
                    stopped_at: best.stops_at.clone(),
                },
                _ => Outcome::Halted { step: id.to_string() },
            }));
        }
        // Refused part-way (the lab's reality): ranked again without it.
        tried.push(best.kind.clone());
    }
}

/// The ranking as the timeline shows it, and the documented recovery when another one leaves a
/// better cluster.
fn report_ranking<E: Executor>(exec: &mut E, id: &str, ranking: &[Candidate]) {
    say(exec, id, EventKind::Recovery, || {
        let lines: Vec<String> = ranking
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Marked as `plan recover --list` marks it: among equal outcomes it ranks first.
                let documented = if c.documented { " [the plan's documented recovery]" } else { "" };
                match &c.refused {
                    None => format!("{}. {}{documented}: {}", i + 1, c.kind.describe(), c.cost.summary()),
                    Some(why) => format!("{}. {}{documented}: cannot be carried out ({why})", i + 1, c.kind.describe()),
                }
            })
            .collect();
        format!("recoveries ranked: {}", lines.join("; "))
    });
    let best = ranking.iter().find(|c| c.applicable());
    if let (Some(best), Some(documented)) = (best, search::documented(ranking)) {
        if documented.kind != best.kind && (!documented.applicable() || documented.cost.worse_outcome_than(&best.cost)) {
            exec.dominated(Dominated {
                step: id.to_string(),
                documented: documented.kind.clone(),
                documented_cost: documented
                    .refused
                    .clone()
                    .map_or_else(|| documented.cost.summary(), |why| format!("cannot be carried out: {why}")),
                chosen: best.kind.clone(),
                chosen_cost: best.cost.summary(),
                harms: best.cost.keeps_api_and_data() && (!documented.applicable() || !documented.cost.keeps_api_and_data()),
            });
        }
    }
}

/// A line for the timeline, built only where one is kept.
fn say<E: Executor>(exec: &mut E, step: &str, kind: EventKind, what: impl FnOnce() -> String) {
    if exec.timeline() {
        exec.note(step, kind, what());
    }
}

/// Runs recovery actions; an action on a host that is down is skipped (nothing to undo there
/// until it returns). The first other refusal stops them.
fn run_recovery<E: Executor>(exec: &mut E, t: &Topology, actions: &[Action], step: &str) -> Result<Result<(), Refusal>, E::Error> {
    for &a in actions {
        match exec.apply(a, step)? {
            Ok(()) => {}
            Err(refusal) if refusal.kind == RefusalKind::HostDown => {
                say(exec, step, EventKind::Skipped, || format!("skipped {}: {}", a.describe(t), refusal.reason));
            }
            Err(refusal) => {
                say(exec, step, EventKind::Halt, || format!("recovery refused: {}", refusal.reason));
                return Ok(Err(refusal));
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::fault::Fault;
    use plan_model::planner;
    use plan_model::validate::parse_scenario;

    const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");

    fn homelab() -> (Topology, Plan) {
        let t = Topology::new(&parse_scenario(HOMELAB).expect("the embedded scenario is valid"));
        let plan = planner::generate(&t);
        (t, plan)
    }

    /// The lab failing underneath, as far as the policy can tell.
    #[derive(Debug, PartialEq, Eq)]
    struct Underneath;

    /// Carries actions out on the model, as the twin does, and can be made to fail underneath.
    struct ModelOnly<'t> {
        t: &'t Topology,
        c: Cluster,
        fault_pending: bool,
        failing: bool,
        applied: Vec<Action>,
        took: Vec<RecoveryKind>,
    }

    impl<'t> ModelOnly<'t> {
        fn new(t: &'t Topology) -> Self {
            ModelOnly { t, c: Cluster::initial(t), fault_pending: false, failing: false, applied: Vec::new(), took: Vec::new() }
        }
    }

    impl Executor for ModelOnly<'_> {
        type Error = Underneath;

        fn cluster(&self) -> &Cluster {
            &self.c
        }

        fn struck(&self) -> NodeSet {
            NodeSet::EMPTY
        }

        fn fault_pending(&self) -> bool {
            self.fault_pending
        }

        fn wait_for_pending(&mut self, _step: &str) -> Result<(), Underneath> {
            self.fault_pending = false;
            Ok(())
        }

        fn apply(&mut self, action: Action, _step: &str) -> Result<Result<(), Refusal>, Underneath> {
            if self.failing {
                return Err(Underneath);
            }
            self.applied.push(action);
            Ok(plan_model::action::apply(&self.c, self.t, action).map(|next| self.c = next))
        }

        fn took(&mut self, kind: RecoveryKind) {
            self.took.push(kind);
        }

        fn note(&mut self, _step: &str, _kind: EventKind, _what: String) {}
    }

    #[test]
    fn no_drift_before_the_migration() {
        let (t, _) = homelab();
        assert_eq!(drift(&Cluster::initial(&t), &t), None);
    }

    #[test]
    fn a_master_down_is_drift() {
        let (t, _) = homelab();
        let m0 = t.existing_master();
        let c = Fault::NodeDown { node: m0, lasts_s: None }.strike(&Cluster::initial(&t), &t);
        assert_eq!(drift(&c, &t), Some(format!("{} is down", t.name(m0))));
    }

    #[test]
    fn a_temporary_fault_is_waited_for_then_the_step_runs_again() {
        let (t, plan) = homelab();
        let mut exec = ModelOnly { fault_pending: true, ..ModelOnly::new(&t) };
        let next = recover(&mut exec, &t, &plan, 0, &Halt::HalfWay, &mut 0);
        assert_eq!(next, Ok(Next::Retry));
        assert_eq!(exec.took, vec![RecoveryKind::WaitAndRetry]);
        assert!(!exec.fault_pending);
    }

    #[test]
    fn past_its_bound_the_run_is_stuck_without_acting() {
        let (t, plan) = homelab();
        let mut exec = ModelOnly { fault_pending: true, ..ModelOnly::new(&t) };
        let mut count = RECOVERIES_MAX;
        let next = recover(&mut exec, &t, &plan, 0, &Halt::HalfWay, &mut count);
        assert!(matches!(next, Ok(Next::Stop(Outcome::Stuck { .. }))), "{next:?}");
        assert_eq!(count, RECOVERIES_MAX + 1);
        assert!(exec.took.is_empty() && exec.applied.is_empty());
    }

    #[test]
    fn a_halt_before_anything_changed_rolls_the_phase_back_with_nothing_to_undo() {
        let (t, plan) = homelab();
        let mut exec = ModelOnly::new(&t);
        let phase = plan.steps[0].phase.clone();
        let next = recover(&mut exec, &t, &plan, 0, &Halt::HalfWay, &mut 0);
        assert_eq!(next, Ok(Next::Stop(Outcome::RolledBack { phase: phase.clone() })));
        assert_eq!(exec.took, vec![RecoveryKind::Rollback { phase }]);
        assert!(exec.applied.is_empty(), "{:?}", exec.applied);
    }

    #[test]
    fn expired_credentials_are_renewed_then_the_step_runs_again() {
        let (t, plan) = homelab();
        let mut exec = ModelOnly::new(&t);
        let halt = Halt::Refused(Refusal { kind: RefusalKind::Expired, reason: "the token expired".to_string() });
        let next = recover(&mut exec, &t, &plan, 0, &halt, &mut 0);
        assert_eq!(next, Ok(Next::Retry));
        assert_eq!(exec.applied, vec![Action::UploadCerts, Action::CreateToken]);
    }

    #[test]
    fn a_failure_underneath_stops_the_policy() {
        let (t, plan) = homelab();
        let mut exec = ModelOnly { failing: true, ..ModelOnly::new(&t) };
        let halt = Halt::Refused(Refusal { kind: RefusalKind::Expired, reason: "the token expired".to_string() });
        assert_eq!(recover(&mut exec, &t, &plan, 0, &halt, &mut 0), Err(Underneath));
        assert_eq!(exec.took, vec![RecoveryKind::Renew]);
    }
}
