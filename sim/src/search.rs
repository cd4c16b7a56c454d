//! Recovery chosen by search: every candidate recovery is run in the model to its end and the
//! candidates are ranked by what they leave behind, never taken in a fixed order.
//!
//! The ranking, most important first: committed data kept; safety invariants; the end state's
//! availability (etcd quorum, consumers that reach the API, nodes Ready, the other availability
//! invariants); half-done work left behind (members that do not run, a master VM that is not a
//! control plane, pool and stack entries of no master, Node objects without a kubelet); the
//! client-visible downtime the recovery itself causes; its time.

use crate::recovery::{self, PhaseKind, RecoveryKind};
use plan_model::action::{self, Action, RefusalKind};
use plan_model::cluster::{Cluster, EtcdData};
use plan_model::invariant::{self, InvariantClass, INVARIANTS};
use plan_model::observe;
use plan_model::plan::{Plan, Recovers};
use plan_model::topology::{NodeSet, Topology};
use serde::Serialize;
use std::sync::Arc;

mod go_forward;
pub use go_forward::write_off_actions;
pub(crate) use go_forward::{Continuation, GoingOn, StepRun};

/// What a recovery costs, judged on the state it ends in and on the way there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Seconds of committed writes lost (a snapshot restore).
    pub data_lost_s: u32,
    /// Safety invariants broken at the end (shared by every candidate ending in a state judged
    /// alike, not copied for each).
    pub safety_broken: Arc<[&'static str]>,
    pub quorum_lost: bool,
    /// Consumers that do not reach the API at the end.
    pub consumers_down: u32,
    /// Running nodes NotReady at the end.
    pub nodes_not_ready: u32,
    /// Availability invariants broken at the end.
    pub availability_broken: Arc<[&'static str]>,
    /// Half-done work left behind (see the module's documentation).
    pub leftovers: u32,
    /// Consumer-seconds without the API while the recovery runs.
    pub downtime_s: u32,
    pub duration_s: u32,
}

impl Cost {
    /// What the recovery leaves, most important first: data, safety, availability.
    fn outcome_key(&self) -> (u32, usize, bool, u32, u32, usize) {
        (
            self.data_lost_s,
            self.safety_broken.len(),
            self.quorum_lost,
            self.consumers_down,
            self.nodes_not_ready,
            self.availability_broken.len(),
        )
    }

    /// The ranking key after the outcome: lower is better, compared field by field.
    fn tail_key(&self) -> (u32, u32, u32) {
        (self.leftovers, self.downtime_s, self.duration_s)
    }

    /// Whether `self` leaves a strictly worse cluster than `other`: it loses data, breaks safety
    /// or leaves less available (leftovers, downtime and time aside).
    pub fn worse_outcome_than(&self, other: &Cost) -> bool {
        self.outcome_key() > other.outcome_key()
    }

    /// Nothing left to improve on: every write kept, no safety or availability invariant broken,
    /// every consumer and node served (no recovery leaves a better cluster).
    fn leaves_nothing_broken(&self) -> bool {
        self.outcome_key() == (0, 0, false, 0, 0, 0)
    }

    /// Every committed write kept, etcd with quorum, and the API up for every consumer.
    pub fn keeps_api_and_data(&self) -> bool {
        self.data_lost_s == 0 && !self.quorum_lost && self.consumers_down == 0
    }

    /// `data kept, API up for every consumer, 2 nodes NotReady, 3 leftovers, 2 min`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        parts.push(if self.data_lost_s > 0 {
            format!("{} of writes lost", plan_model::plan::format_duration(self.data_lost_s))
        } else {
            "data kept".to_string()
        });
        if !self.safety_broken.is_empty() {
            parts.push(format!("breaks {}", self.safety_broken.join(", ")));
        }
        if self.quorum_lost {
            parts.push("no etcd quorum".to_string());
        }
        parts.push(if self.consumers_down == 0 {
            "API up for every consumer".to_string()
        } else {
            format!("API down for {} consumer(s)", self.consumers_down)
        });
        if self.nodes_not_ready > 0 {
            parts.push(format!("{} node(s) NotReady", self.nodes_not_ready));
        }
        let others: Vec<&str> =
            self.availability_broken.iter().copied().filter(|n| !matches!(*n, "etcd-quorum" | "api-reachable" | "nodes-ready")).collect();
        if !others.is_empty() {
            parts.push(format!("breaks {}", others.join(", ")));
        }
        if self.leftovers > 0 {
            parts.push(format!("{} leftover(s)", self.leftovers));
        }
        if self.downtime_s > 0 {
            parts.push(format!("{} consumer-seconds down while it runs", self.downtime_s));
        }
        parts.push(plan_model::plan::format_duration(self.duration_s));
        parts.join(", ")
    }
}

/// One recovery the twin could take, run to its end in the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub kind: RecoveryKind,
    pub actions: Vec<Action>,
    /// Why the recovery cannot be carried out here (a command it needs would be refused).
    pub refused: Option<String>,
    /// The action that would be refused.
    pub refused_at: Option<Action>,
    /// A go-forward that cannot reach the plan's end: the step it stops at, and why (the
    /// executor halts there too). `None` for every other kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops_at: Option<crate::run::StoppedAt>,
    /// The recovery the plan documents for this halt (the phase's rollback; holding after the
    /// cut-over).
    pub documented: bool,
    pub cost: Cost,
    /// Model transitions the twin applied to run it.
    #[serde(skip)]
    pub transitions: u32,
}

impl Candidate {
    pub fn applicable(&self) -> bool {
        self.refused.is_none()
    }

    /// The state the recovery ends in, weighed from `from` (the executor checks the hosts
    /// against it): its actions applied again from there, as the twin ran them, a machine that
    /// is down passed over and the first other refusal where it stopped. The model is
    /// deterministic, so this is the state the run ended in; a ranking keeps no copy of it (the
    /// exploration keeps hundreds of thousands of candidates and reads none of their ends).
    pub fn end(&self, from: &Cluster, t: &Topology) -> Cluster {
        let mut state = *from;
        for &a in &self.actions {
            match action::apply_in_place_unworded(&mut state, t, a) {
                Err(r) if r.kind != RefusalKind::HostDown => break,
                _ => {}
            }
        }
        state
    }
}

/// Every candidate recovery from `c` after a halt in step `step`, best first; the ones that
/// cannot be carried out come last, with why.
pub fn rank(c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> Vec<Candidate> {
    rank_in(c, t, plan, step, recovery::phase_kind(plan, &plan.steps[step].phase))
}

/// [`rank`] in a phase of `kind` (what [`recovery::phase_kind`] says of the step's phase), for
/// a caller that ranks often and classified the phases once.
pub fn rank_in(c: &Cluster, t: &Topology, plan: &Plan, step: usize, kind: PhaseKind) -> Vec<Candidate> {
    rank_judging(c, t, plan, step, kind, &mut go_forward::Uncached, &mut |end, downtime_s, duration_s| {
        judge(end, t).cost(downtime_s, duration_s)
    })
}

/// The plan going on without the machines `gone` ([`Plan::going_on_without`], every step
/// pruned: a go-forward reads the steps from the halted one on); `None` where an operation
/// left does not fit (no go-forward then).
pub fn going_on(t: &Topology, plan: &Plan, gone: NodeSet) -> Option<Arc<Plan>> {
    plan.going_on_without(t, 0, gone).ok().map(Arc::new)
}

/// [`rank_in`], the state each candidate ends in judged by `judge` (which gives what
/// [`judge`] gives, costed with the recovery's downtime and time: a caller that ranks often may
/// remember judgments by state), and the plan going on without machines read from `going_on`
/// and the rest of the plan run from a step boundary (such a caller may remember those too).
pub(crate) fn rank_judging(
    c: &Cluster,
    t: &Topology,
    plan: &Plan,
    step: usize,
    kind: PhaseKind,
    going_on: &mut dyn GoingOn,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> Vec<Candidate> {
    let ranking = rank_by_phase(c, t, plan, step, kind, Reading::Whole, judge);
    match go_forward_in(c, t, plan, step, kind, None, going_on, judge) {
        Some(going_on) => ranked_with(ranking, going_on),
        None => ranking,
    }
}

/// Which of a halt's candidates a ranking runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Every one: the executor at a halt and `plan simulate` show them all.
    Whole,
    /// Those that can be what the exploration's run reads of the ranking (the best that can be
    /// carried out and the documented one, [`crate::memo`]): a worst case that can be neither
    /// is not run.
    BestAndDocumented,
}

/// The candidates that read the halted step `step` for its phase alone (every one but going
/// forward), ranked: a caller that ranks often shares them between the steps of a phase. Read
/// for the best and the documented one only (`reading`), the worst case is left out where it
/// can be neither ([`worst_case_beaten`]): it is the longest of them to run (a snapshot restore
/// and every new master undone), some three quarters of the transitions a ranking applies.
pub(crate) fn rank_by_phase(
    c: &Cluster,
    t: &Topology,
    plan: &Plan,
    step: usize,
    kind: PhaseKind,
    reading: Reading,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> Vec<Candidate> {
    let phase = &plan.steps[step].phase;
    // Rollback, hold, quorum recovery; the worst case after them.
    let mut options: Vec<(RecoveryKind, Vec<Action>)> = Vec::with_capacity(3);
    if kind != PhaseKind::After {
        options.push((RecoveryKind::Rollback { phase: phase.clone() }, recovery::rollback_with_dead_members(c, t, kind)));
    }
    options.push((RecoveryKind::Hold, recovery::hold_actions(c)));
    if let Some(survivor) = recovery::survivor(c) {
        if recovery::quorum_lost(c) {
            options.push((RecoveryKind::QuorumRecovery, recovery::quorum_recovery_with_rollback(c, t, survivor, kind)));
        }
    }
    let documented = documented_for(c, t, kind, phase, plan);
    // Every candidate starts from `c`: the consumers it leaves without the API are asked once.
    let down_in_c = consumers_down(c, t);
    let mut run = |kind: RecoveryKind, actions: Vec<Action>| {
        let documented = kind == documented;
        run_candidate_knowing(c, Some(down_in_c), t, kind, actions, documented, judge).0
    };
    let mut candidates: Vec<Candidate> = Vec::with_capacity(options.len() + 1);
    for (kind, actions) in options {
        candidates.push(run(kind, actions));
    }
    let weighed = reading == Reading::Whole || !worst_case_beaten(&candidates, c, t);
    if let Some(actions) = recovery::worst_case_actions(c, t).filter(|_| weighed) {
        let mut candidate = run(RecoveryKind::WorstCase, actions);
        if candidate.refused.is_none() {
            candidate.refused = recovery::worst_case_refusal(c, t);
        }
        candidates.push(candidate);
    }
    sort_ranked(&mut candidates);
    candidates
}

/// Whether the worst case from `c` can be neither the best of a ranking that holds `others` nor
/// the documented recovery: it is never documented ([`documented_for`]), and it restores etcd
/// from a snapshot, so it loses writes (a restore on a machine that is up, judged as at least a
/// second lost) where it can be carried out at all; a candidate that can be carried out and
/// keeps every write ranks ahead of it. Where no VM snapshot was taken it cannot be carried
/// out ([`recovery::worst_case_refusal`]) and ranks behind every one that can.
fn worst_case_beaten(others: &[Candidate], c: &Cluster, t: &Topology) -> bool {
    recovery::worst_case_refusal(c, t).is_some() || others.iter().any(|o| o.applicable() && o.cost.data_lost_s == 0)
}

/// Going forward from a halt in step `step` in state `c` where a machine is down for good
/// ([`go_forward`]), documented where the plan documents it; `None` where none is down. A caller
/// that reads only the best and the documented candidate of the ranking passes the best of the
/// others (`against`): going forward is then not run, and `None`, where it can be neither
/// ([`go_forward_beaten`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn go_forward_in(
    c: &Cluster,
    t: &Topology,
    plan: &Plan,
    step: usize,
    kind: PhaseKind,
    against: Option<&Candidate>,
    going_on: &mut dyn GoingOn,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> Option<Candidate> {
    let gone = recovery::to_write_off(c);
    // Against a documented recovery that leaves nothing broken, the plan going on is not read.
    if gone.is_empty() || against.is_some_and(documented_and_whole) {
        return None;
    }
    let plan_without = going_on.plan(t, plan, gone.or(c.written_off))?;
    if against.is_some_and(|best| go_forward_beaten(best, c, t, &plan_without, step)) {
        return None;
    }
    let mut candidate = go_forward::candidate(c, t, &plan_without, step, going_on, judge);
    candidate.documented = documented_for(c, t, kind, &plan.steps[step].phase, plan) == RecoveryKind::GoForward;
    Some(candidate)
}

/// Whether going forward from a halt in step `step` in state `c`, on `plan_without`, can be
/// neither the best nor the documented recovery of a ranking whose best of the other candidates
/// is `best`. It cannot where `best` can be carried out, is the documented one (so going forward
/// is not: the plan documents one recovery for a halt, [`documented_for`]) and leaves no more
/// broken than going forward must leave: at best going forward ties with it then, and among
/// equals the documented one ranks first. What going forward must leave: the writes `c` has
/// lost (none comes back) and the safety invariants `c` breaks that no action repairs unless it
/// destroys a VM ([`invariant::safety_broken_while_no_vm_goes`]), where none of its actions
/// does (the write-off and a cut join's cleanup never do; the plan's steps from the halted one
/// on are read); its availability may be whole.
fn go_forward_beaten(best: &Candidate, c: &Cluster, t: &Topology, plan_without: &Plan, step: usize) -> bool {
    if !(best.applicable() && best.documented) {
        return false;
    }
    if documented_and_whole(best) {
        return true;
    }
    let destroys_vm = plan_without.steps[step..].iter().flat_map(|s| &s.actions).any(|a| matches!(a, Action::DestroyVm(_)));
    let broken_for_good = if destroys_vm { 0 } else { invariant::safety_broken_while_no_vm_goes(c, t).count_ones() as usize };
    (data_lost_s(c.etcd_data), broken_for_good, false, 0, 0, 0) >= best.cost.outcome_key()
}

/// A recovery that can be carried out, is documented and leaves nothing broken: no other
/// recovery ranks ahead of it.
fn documented_and_whole(best: &Candidate) -> bool {
    best.applicable() && best.documented && best.cost.leaves_nothing_broken()
}

/// `ranking` with `candidate` in its place, as if ranked with them ([`sort_ranked`] is stable,
/// and `candidate` comes after them among equals).
pub(crate) fn ranked_with(mut ranking: Vec<Candidate>, candidate: Candidate) -> Vec<Candidate> {
    ranking.push(candidate);
    sort_ranked(&mut ranking);
    ranking
}

/// Best first: the ones that can be carried out; then by what they leave; among recoveries that
/// leave the same cluster, the documented one; then the fewest leftovers, the least downtime,
/// the shortest. Stable: among equals, the order they were weighed in.
fn sort_ranked(candidates: &mut [Candidate]) {
    candidates.sort_by_key(|c| (!c.applicable(), c.cost.outcome_key(), !c.documented, c.cost.tail_key()));
}

/// What renews a control-plane join's credentials: the certs uploaded again (a new certificate
/// key and `kubeadm-certs` Secret) and a new join token, the plan's own commands for them.
pub const RENEWAL: [Action; 2] = [Action::UploadCerts, Action::CreateToken];

/// The renewal of the join credentials, run in the model from `c`, where the halted step `step`
/// joins a master and a credential it needs has outlived its TTL in `c`
/// ([`action::join_credentials`] refuses it as expired); `None` otherwise. Both the twin's
/// policy and the executor at a halt take it before the search: nothing else lets the join go
/// on, and it changes nothing a consumer sees.
pub fn renewal(c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> Option<Candidate> {
    let joins = plan.steps[step].actions.iter().any(|a| matches!(a, Action::EtcdMemberAdd(_)));
    let expired = matches!(action::join_credentials(c, t), Err(r) if r.kind == RefusalKind::Expired);
    if !(joins && expired) {
        return None;
    }
    let judge = &mut |end: &Cluster, downtime_s, duration_s| judge(end, t).cost(downtime_s, duration_s);
    Some(run_candidate(c, t, RecoveryKind::Renew, RENEWAL.to_vec(), crate::collect::renews_certs(plan), judge).0)
}

/// Waiting for a fault that cleared, then running the halted step `step` again from `c`, in the
/// model as a re-run does: actions found done are skipped, what a cut join left is cleaned up
/// first. The executor offers it first where the hosts that did not answer at the halt answer
/// again (the twin's policy waits for a temporary fault before any search): it is judged by the
/// state the step leaves, and cannot be carried out where the model refuses the step from `c`.
/// Carrying it out runs nothing: the step runs again at the resume. It stops at a refusal of any
/// kind, a machine down included, and the refused action is the last of its actions: applied
/// again by [`Candidate::end`], which passes a machine down over, it changes nothing more.
pub fn retry(c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> Candidate {
    let mut actions = Vec::new();
    let mut state = *c;
    let mut refusal = None;
    let mut downtime_s = 0u32;
    'step: for &a in &plan.steps[step].actions {
        if action::already_done(&state, a) {
            continue;
        }
        // Unlike an undo, a step run again needs every host it acts on: a refusal of any kind,
        // a host down included, means it cannot go on.
        for act in action::cut_cleanup(&state, a).into_iter().chain([a]) {
            let down = observe::consumers_reachability(&state, t).filter(|r| r.is_down()).count() as u32;
            actions.push(act);
            if let Err(r) = action::apply_in_place(&mut state, t, act) {
                refusal = Some((r.reason, act));
                break 'step;
            }
            downtime_s += down * act.duration_s();
        }
    }
    let cost = judge(&state, t).cost(downtime_s, state.clock_s.saturating_sub(c.clock_s));
    let (refused, refused_at) = refusal.map_or((None, None), |(why, at)| (Some(why), Some(at)));
    Candidate {
        kind: RecoveryKind::WaitAndRetry,
        transitions: actions.len() as u32,
        actions,
        refused,
        refused_at,
        stops_at: None,
        documented: false,
        cost,
    }
}

/// Every recovery the executor weighs at a halt in step `step` from `c`, best first: the
/// renewal of expired join credentials ([`renewal`]) where it applies, then [`rank`].
pub fn recoveries(c: &Cluster, t: &Topology, plan: &Plan, step: usize) -> Vec<Candidate> {
    let mut ranked = rank(c, t, plan, step);
    if let Some(renewal) = renewal(c, t, plan, step) {
        put_first(&mut ranked, renewal);
    }
    ranked
}

/// Puts `first` (a recovery the policy takes before any search: the renewal, the wait) ahead of
/// the ranking `ranked`; one that cannot be carried out goes first among those that cannot.
pub fn put_first(ranked: &mut Vec<Candidate>, first: Candidate) {
    let at = if first.applicable() { 0 } else { ranked.iter().position(|c| !c.applicable()).unwrap_or(ranked.len()) };
    ranked.insert(at, first);
}

/// What the plan documents for a halt in state `c`, by the `when` of its rollback procedures in
/// `plan`: quorum lost with a voter left is the quorum recovery's case, where the plan has one;
/// the first master down for good while the VIP still has a healthy backend is a fault the VIP
/// absorbs, so where the plan has `RF` the phase's rollback (which points everyone back at that
/// master) is not for it: going on without it, or, once it is written off, from the cut-over on,
/// holding. A plan without `RF` keeps the source plan's rule: `R4` for every fault of the
/// cut-over (which the check then reports beaten where the master is lost). Otherwise the
/// phase's rollback, and after the cut-over holding.
pub fn documented_for(c: &Cluster, t: &Topology, kind: PhaseKind, phase: &str, plan: &Plan) -> RecoveryKind {
    if plan.documents(Recovers::QuorumRecovery) && recovery::quorum_lost(c) && recovery::survivor(c).is_some() {
        return RecoveryKind::QuorumRecovery;
    }
    let m0 = t.existing_master();
    let absorbed = !c.up.contains(m0) && observe::vip_serves(c, t);
    if absorbed && plan.documents(Recovers::GoForward) && recovery::to_write_off(c).contains(m0) {
        return RecoveryKind::GoForward;
    }
    match kind {
        PhaseKind::After => RecoveryKind::Hold,
        // RF's case once the master is written off (or gone): hold. A plan without RF has the
        // source plan's rollback section, where R4 covers every fault after the cut-over.
        PhaseKind::Cutover if absorbed && plan.documents(Recovers::GoForward) => RecoveryKind::Hold,
        _ => RecoveryKind::Rollback { phase: phase.to_string() },
    }
}

/// The candidate the plan itself documents for a halt.
pub fn documented(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().find(|c| c.documented)
}

/// Runs `actions` from `c` as the executor would: an action on a host that is down is skipped
/// (nothing to undo there until it returns), any other refusal makes the candidate inapplicable.
pub(crate) fn run_candidate(
    c: &Cluster,
    t: &Topology,
    kind: RecoveryKind,
    actions: Vec<Action>,
    documented: bool,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> (Candidate, Cluster) {
    run_candidate_knowing(c, None, t, kind, actions, documented, judge)
}

/// [`run_candidate`], with the consumers without the API in `c` where the caller knows them
/// (`down_in_c`: the candidates of a halt all start from its state); with the state it ends in.
fn run_candidate_knowing(
    c: &Cluster,
    down_in_c: Option<u32>,
    t: &Topology,
    kind: RecoveryKind,
    actions: Vec<Action>,
    documented: bool,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> (Candidate, Cluster) {
    let mut state = *c;
    let mut refused = None;
    let mut refused_at = None;
    let mut downtime_s = 0u32;
    let mut transitions = 0u32;
    let mut known = down_in_c;
    for a in &actions {
        // Known for `c` only: the first action is asked of `c`.
        let down = known.take().unwrap_or_else(|| consumers_down(&state, t));
        // Unworded: a skip on a host down needs no words, a refusal is worded from the state
        // it left as it was.
        match action::apply_in_place_unworded(&mut state, t, *a) {
            Ok(()) => {
                downtime_s += down * a.duration_s();
                transitions += 1;
            }
            Err(r) if r.kind == RefusalKind::HostDown => {}
            Err(_) => {
                refused = action::apply(&state, t, *a).err().map(|r| r.reason);
                refused_at = Some(*a);
                break;
            }
        }
    }
    let cost = judge(&state, downtime_s, state.clock_s.saturating_sub(c.clock_s));
    (Candidate { kind, actions, refused, refused_at, stops_at: None, documented, cost, transitions }, state)
}

/// Consumers that do not reach the API at all in `c` (a recovery's downtime counts them).
fn consumers_down(c: &Cluster, t: &Topology) -> u32 {
    observe::consumers_reachability(c, t).filter(|r| r.is_down()).count() as u32
}

/// What a state a recovery ends in is worth, whatever the way there: a [`Cost`] without the
/// downtime and time of the recovery. None of it reads a time (the data lost is the state's own
/// figure), so states that differ only in their clock and timestamps are judged alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    data_lost_s: u32,
    safety_broken: Arc<[&'static str]>,
    quorum_lost: bool,
    consumers_down: u32,
    nodes_not_ready: u32,
    availability_broken: Arc<[&'static str]>,
    leftovers: u32,
}

impl Judged {
    /// What a recovery that ends here after `downtime_s` consumer-seconds down and `duration_s`
    /// costs.
    pub(crate) fn cost(&self, downtime_s: u32, duration_s: u32) -> Cost {
        Cost {
            data_lost_s: self.data_lost_s,
            safety_broken: self.safety_broken.clone(),
            quorum_lost: self.quorum_lost,
            consumers_down: self.consumers_down,
            nodes_not_ready: self.nodes_not_ready,
            availability_broken: self.availability_broken.clone(),
            leftovers: self.leftovers,
            downtime_s,
            duration_s,
        }
    }
}

/// The state `end` judged: data, safety, availability, leftovers.
pub(crate) fn judge(end: &Cluster, t: &Topology) -> Judged {
    let broken = |class: InvariantClass, answered: &dyn Fn(&str) -> Option<bool>| -> Arc<[&'static str]> {
        INVARIANTS
            .iter()
            .filter(|i| i.class == class)
            .filter(|i| match answered(i.name) {
                Some(broken) => {
                    debug_assert_eq!(broken, (i.broken)(end, t), "{} as the judgment's figures answer it", i.name);
                    broken
                }
                None => (i.broken)(end, t),
            })
            .map(|i| i.name)
            .collect()
    };
    let quorum_lost = !observe::quorum(end).holds();
    let consumers_down = observe::consumers_reachability(end, t).filter(|r| !r.is_ok()).count() as u32;
    // Each running node's reachability asked once, for the count and for `nodes-ready`.
    let (mut nodes_not_ready, mut node_down) = (0u32, false);
    for n in end.joined.and(end.up).iter() {
        let reachability = observe::node_reachability(end, t, n);
        nodes_not_ready += u32::from(!reachability.is_ok());
        node_down |= reachability.is_down();
    }
    // The availability invariants these figures answer are read from them, not judged again
    // (each asks the consumers' or the nodes' reachability of the same state).
    let answered = |name: &str| match name {
        "etcd-quorum" => Some(quorum_lost),
        "api-reachable" => Some(consumers_down > 0),
        "nodes-ready" => Some(!end.stale_nodes.is_empty() || node_down),
        _ => None,
    };
    Judged {
        data_lost_s: data_lost_s(end.etcd_data),
        safety_broken: broken(InvariantClass::Safety, &|_| None),
        quorum_lost,
        consumers_down,
        nodes_not_ready,
        availability_broken: broken(InvariantClass::Availability, &answered),
        leftovers: leftovers(end, t),
    }
}

/// The seconds of writes a state's etcd data has lost, as a cost counts them: a restore counts
/// as at least one second lost, even from a snapshot taken that second.
fn data_lost_s(data: EtcdData) -> u32 {
    match data {
        EtcdData::RestoredFromSnapshot { lost_s } => lost_s.max(1),
        EtcdData::Intact => 0,
    }
}

/// Half-done work a state holds: etcd members that do not run, learners, new-master VMs that
/// are not control planes, pool and config-stack entries of no control plane, Node objects
/// without a kubelet.
fn leftovers(c: &Cluster, t: &Topology) -> u32 {
    let masters = c.control_plane;
    let new_vms = t.new_masters().filter(|m| c.vm_exists.contains(*m)).fold(plan_model::topology::NodeSet::EMPTY, |s, m| s.with(m));
    c.members().minus(observe::live_members(c)).len()
        + c.learners.len()
        + new_vms.minus(masters).len()
        + c.lb_declared.pool.minus(masters).len()
        + c.lb_running.pool.minus(masters).len()
        + c.stack_hosts.minus(masters).len()
        + c.stale_nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranking_puts_data_before_availability_before_leftovers_before_time() {
        let base = Cost {
            data_lost_s: 0,
            safety_broken: Arc::from([]),
            quorum_lost: false,
            consumers_down: 0,
            nodes_not_ready: 0,
            availability_broken: Arc::from([]),
            leftovers: 0,
            downtime_s: 0,
            duration_s: 60,
        };
        let slower = Cost { duration_s: 600, ..base.clone() };
        let messier = Cost { leftovers: 2, duration_s: 1, ..base.clone() };
        let down = Cost { consumers_down: 1, leftovers: 0, duration_s: 1, ..base.clone() };
        let lossy = Cost { data_lost_s: 30, ..base.clone() };
        let key = |c: &Cost| (c.outcome_key(), c.tail_key());
        assert!(key(&base) < key(&slower) && key(&slower) < key(&messier) && key(&messier) < key(&down) && key(&down) < key(&lossy));
        assert!(down.worse_outcome_than(&base) && lossy.worse_outcome_than(&down));
        assert!(!slower.worse_outcome_than(&base) && !messier.worse_outcome_than(&base), "time and leftovers are not outcomes");
    }

    /// Going forward is passed over against a documented recovery that leaves only what going
    /// forward must leave too (the homelab's hypervisor over-committed by the new masters' VMs),
    /// and weighed again once a step of the plan going on destroys a VM (which may end the
    /// over-commitment): on every boundary after the VMs are created, every machine that goes
    /// down for good.
    #[test]
    fn going_forward_is_weighed_where_a_step_destroys_a_vm() {
        use plan_model::fault::Fault;
        let crate::testing::PlannedScenario { t, plan, boundaries } = crate::testing::three_scenarios().swap_remove(0);
        let (mut passed_over, mut weighed_again) = (0, 0);
        for (step, state) in boundaries {
            for fault in Fault::all(&t).into_iter().filter(|f| matches!(f, Fault::NodeDown { lasts_s: None, .. })) {
                let c = fault.strike(&state, &t);
                let kind = recovery::phase_kind(&plan, &plan.steps[step].phase);
                let judge = &mut |end: &Cluster, downtime_s, duration_s| judge(end, &t).cost(downtime_s, duration_s);
                let ranking = rank_by_phase(&c, &t, &plan, step, kind, Reading::BestAndDocumented, judge);
                let Some(best) = ranking.first().filter(|b| b.applicable() && b.documented && !b.cost.leaves_nothing_broken()) else {
                    continue;
                };
                let Some(plan_without) = going_on(&t, &plan, recovery::to_write_off(&c).or(c.written_off)) else { continue };
                if !go_forward_beaten(best, &c, &t, &plan_without, step) {
                    continue;
                }
                passed_over += 1;
                let mut destroying = (*plan_without).clone();
                let last = destroying.steps.len() - 1;
                let vm = t.new_masters().next().expect("a new master");
                destroying.steps[last].actions.push(Action::DestroyVm(vm));
                assert!(!go_forward_beaten(best, &c, &t, &destroying, step), "{} {}", plan.steps[step].id, fault.describe(&t));
                weighed_again += 1;
            }
        }
        assert!(passed_over > 20 && weighed_again == passed_over, "{passed_over} {weighed_again}");
    }

    /// A candidate keeps no copy of the state it ends in: [`Candidate::end`] applies its actions
    /// again. Checked against what the run judged, on every third boundary of the no-fault run
    /// struck by every fault, on three scenarios with other names, sizes and recoveries: the
    /// ranked candidates' ends (going forward and the phase's, refused ones included) are,
    /// whole, the states the ranking handed its judge, one each; and for every candidate weighed
    /// there (the renewal and waiting and running the step again too) the end is judged to the
    /// cost the candidate carries, its clock the recovery's time past the halt.
    #[test]
    fn a_candidates_end_applied_again_is_the_end_it_was_judged_by() {
        use plan_model::fault::Fault;
        for crate::testing::PlannedScenario { t, plan, boundaries } in crate::testing::three_scenarios() {
            let (mut candidates, mut refused, mut went_on) = (0, 0, 0);
            for (step, state) in boundaries {
                for fault in Fault::all(&t) {
                    let c = fault.strike(&state, &t);
                    let mut judged: Vec<Cluster> = Vec::new();
                    let kind = recovery::phase_kind(&plan, &plan.steps[step].phase);
                    let ranked = rank_judging(&c, &t, &plan, step, kind, &mut go_forward::Uncached, &mut |end, downtime_s, duration_s| {
                        judged.push(*end);
                        judge(end, &t).cost(downtime_s, duration_s)
                    });
                    for candidate in &ranked {
                        let end = candidate.end(&c, &t);
                        let at = judged.iter().position(|j| *j == end);
                        let label = format!("{} {} {} {:?}", t.scenario.name, plan.steps[step].id, fault.describe(&t), candidate.kind);
                        assert!(at.is_some(), "{label}: its end is none of the states judged");
                        judged.swap_remove(at.unwrap_or_default());
                    }
                    let mut weighed = recoveries(&c, &t, &plan, step);
                    weighed.push(retry(&c, &t, &plan, step));
                    for candidate in &weighed {
                        let end = candidate.end(&c, &t);
                        let label = format!("{} {} {} {:?}", t.scenario.name, plan.steps[step].id, fault.describe(&t), candidate.kind);
                        let cost = &candidate.cost;
                        assert_eq!(judge(&end, &t).cost(cost.downtime_s, cost.duration_s), *cost, "{label}");
                        assert_eq!(end.clock_s - c.clock_s, cost.duration_s, "{label}");
                        candidates += 1;
                        refused += usize::from(!candidate.applicable());
                        went_on += usize::from(candidate.kind == RecoveryKind::GoForward && candidate.applicable());
                    }
                }
            }
            assert!(candidates > 1000 && refused > 10 && went_on > 10, "{}: {candidates} {refused} {went_on}", t.scenario.name);
        }
    }
}
