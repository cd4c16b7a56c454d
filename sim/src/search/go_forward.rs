//! Going forward after a halt: the machines down for good written off, and the rest of the plan
//! run without them ([`plan_model::plan::Plan::going_on_without`]), as far as it goes.

use super::{run_candidate, Candidate, Cost};
use crate::recovery::{self, RecoveryKind};
use crate::run::StoppedAt;
use plan_model::action::{self, Action, RefusalKind};
use plan_model::cluster::Cluster;
use plan_model::observe;
use plan_model::plan::Plan;
use plan_model::scenario::LbKind;
use plan_model::topology::{NodeSet, Topology};
use std::sync::Arc;

/// The write-off a go-forward starts with (what the executor carries out at the halt before it
/// resumes): the etcd members of the machines down for good removed, as holding removes them;
/// their backends out of the load balancer's pool and their hosts out of the config stack, as a
/// master's undo takes them out; then each machine written off (its Node object deleted), so
/// nothing of the rest of the plan waits for a machine that will not come back. Where the first
/// master is written off and a VIP is there to serve (an LB frontend runs, or kube-vip's), what
/// still names it moves to the VIP before the machines are written off (the operator's kubectl
/// deletes their Node objects through it): the consumers' kubeconfigs, the kubelets that name it
/// (before `ControlPlaneKubeletLocalMode`, a joined master's too: docs/facts.md K1) and
/// kube-proxy's, the edits the cut-over makes.
pub fn write_off_actions(c: &Cluster, t: &Topology) -> Vec<Action> {
    let gone = recovery::to_write_off(c);
    let mut actions = recovery::hold_actions(c);
    recovery::push_out_of_pool(c, gone, &mut actions);
    actions.extend(gone.and(c.stack_hosts.or(c.stack_hosts_declared)).iter().map(Action::ConfigStackRemoveHost));
    let vip_there = c.lb_running.frontend || t.scenario.load_balancer.kind == LbKind::KubeVip;
    if gone.contains(t.existing_master()) && vip_there {
        let left = t.consumers_mask() & !c.consumers_vip;
        if left != 0 {
            actions.push(Action::FlipConsumersOf(left));
        }
        let naming_it = c.joined.and(c.up).minus(gone).minus(c.kubelet_vip).minus(c.kubelet_local);
        actions.extend(naming_it.iter().map(Action::FlipKubelet));
        if !c.kube_proxy_vip {
            actions.push(Action::PointKubeProxyAtVip);
        }
    }
    actions.extend(gone.iter().map(Action::WriteOff));
    actions
}

/// The rest of the plan run from a step boundary on the plan without the machines written off,
/// up to the first action the model refuses (a host down is passed over, as every recovery
/// passes it over): the boundary's step run, then the rest from the next boundary. Go-forwards
/// from different halts meet at the same boundaries in the same states: a caller that remembers
/// each boundary's rest ([`GoingOn::rest`]) runs each step from such a state once, and the
/// rests share what follows.
#[derive(Debug)]
pub(crate) struct Continuation {
    /// The boundary's step: the actions applied.
    step_actions: Vec<Action>,
    /// Consumer-seconds without the API while the rest runs (this step and every later one).
    pub downtime_s: u32,
    /// Model transitions applied by the rest (this step and every later one).
    pub transitions: u32,
    /// The boundary's step stops the rest: the step, and why.
    stops_here: Option<StoppedAt>,
    after: After,
}

/// What follows a boundary's step in a rest: the rest from the next boundary, or, after the
/// plan's last step or a stop, the state the rest ends in. Only the last step of a rest keeps a
/// state (a memory keeps hundreds of thousands of rests, most of them linked to the next).
#[derive(Debug)]
enum After {
    Next(Arc<Continuation>),
    End(Box<Cluster>),
}

/// A boundary's step run, before it is linked to what follows it.
pub(crate) struct StepRun {
    actions: Vec<Action>,
    end: Cluster,
    downtime_s: u32,
    transitions: u32,
    stops_here: Option<StoppedAt>,
}

impl StepRun {
    /// Step `step` of `plan_without` run from `state`, up to the first action the model refuses
    /// other than on a host that is down.
    pub(crate) fn of(t: &Topology, plan_without: &Plan, step: usize, state: &Cluster) -> StepRun {
        let s = &plan_without.steps[step];
        let mut run = Progress::from(*state);
        run.actions.reserve_exact(s.actions.len());
        for &a in &s.actions {
            if let Some(why) = go_on(t, &mut run, a) {
                run.stops_at = Some(StoppedAt { step: s.id.clone(), why });
                break;
            }
        }
        StepRun { actions: run.actions, end: run.end, downtime_s: run.downtime_s, transitions: run.transitions, stops_here: run.stops_at }
    }

    /// The step did not stop the rest: the next boundary is reached.
    pub(crate) fn goes_past_step(&self) -> bool {
        self.stops_here.is_none()
    }

    /// The state the step leaves.
    pub(crate) fn end(&self) -> &Cluster {
        &self.end
    }

    /// The step followed by `next`, the rest from the next boundary in the state it leaves.
    pub(crate) fn then(self, next: Arc<Continuation>) -> Continuation {
        Continuation {
            step_actions: self.actions,
            downtime_s: self.downtime_s + next.downtime_s,
            transitions: self.transitions + next.transitions,
            stops_here: self.stops_here,
            after: After::Next(next),
        }
    }

    /// The step as the last of its rest (the plan's last step, or a stop).
    pub(crate) fn last(self) -> Continuation {
        Continuation {
            step_actions: self.actions,
            downtime_s: self.downtime_s,
            transitions: self.transitions,
            stops_here: self.stops_here,
            after: After::End(Box::new(self.end)),
        }
    }
}

impl Continuation {
    /// At the end of the plan: nothing left to run from `state`.
    pub(crate) fn at_end(state: Cluster) -> Continuation {
        Continuation { step_actions: Vec::new(), downtime_s: 0, transitions: 0, stops_here: None, after: After::End(Box::new(state)) }
    }

    /// This step's rest and the rests after it, in order.
    fn steps(&self) -> impl Iterator<Item = &Continuation> {
        std::iter::successors(Some(self), |c| match &c.after {
            After::Next(next) => Some(next.as_ref()),
            After::End(_) => None,
        })
    }

    /// Every action the rest applies, in order, onto the end of `actions`.
    pub(crate) fn push_actions(&self, actions: &mut Vec<Action>) {
        actions.reserve(self.transitions as usize);
        for step in self.steps() {
            actions.extend_from_slice(&step.step_actions);
        }
    }

    /// The last step of the rest.
    fn last(&self) -> &Continuation {
        self.steps().last().unwrap_or(self)
    }

    /// The state the rest ends in.
    pub(crate) fn end(&self) -> &Cluster {
        match &self.last().after {
            After::End(end) => end,
            After::Next(_) => unreachable!("the last step of a rest is followed by nothing"),
        }
    }

    /// The step the rest stops at, and why.
    pub(crate) fn stops_at(&self) -> Option<&StoppedAt> {
        self.last().stops_here.as_ref()
    }
}

/// How far going on got: the state reached, the actions applied, and where it stopped.
struct Progress {
    end: Cluster,
    actions: Vec<Action>,
    /// Consumer-seconds without the API while it ran.
    downtime_s: u32,
    transitions: u32,
    /// The step it stops at, and why.
    stops_at: Option<StoppedAt>,
    /// Consumers without the API in `end`, while no action since changed it.
    down: Option<u32>,
}

impl Progress {
    fn from(end: Cluster) -> Progress {
        Progress { end, actions: Vec::new(), downtime_s: 0, transitions: 0, stops_at: None, down: None }
    }
}

/// Where a ranking reads the plan going on without machines and the rest of it run: worked out
/// on each ask, or remembered by a caller that ranks often (the exploration's memory).
pub(crate) trait GoingOn {
    /// The plan without the machines `gone` ([`super::going_on`]).
    fn plan(&mut self, t: &Topology, plan: &Plan, gone: NodeSet) -> Option<Arc<Plan>>;
    /// [`rest_of_plan`] from step `from` in `state`, on `plan_without` (the plan without what
    /// `state` has written off).
    fn rest(&mut self, t: &Topology, plan_without: &Plan, from: usize, state: &Cluster) -> Arc<Continuation>;
}

/// Works everything out on each ask.
pub(crate) struct Uncached;

impl GoingOn for Uncached {
    fn plan(&mut self, t: &Topology, plan: &Plan, gone: NodeSet) -> Option<Arc<Plan>> {
        super::going_on(t, plan, gone)
    }

    fn rest(&mut self, t: &Topology, plan_without: &Plan, from: usize, state: &Cluster) -> Arc<Continuation> {
        rest_of_plan(t, plan_without, from, state)
    }
}

/// Steps `from` to the end of `plan_without` run from `state`, up to the first action the model
/// refuses other than on a host that is down.
pub(crate) fn rest_of_plan(t: &Topology, plan_without: &Plan, from: usize, state: &Cluster) -> Arc<Continuation> {
    let mut steps = Vec::new();
    let mut at = *state;
    for step in from..plan_without.steps.len() {
        let run = StepRun::of(t, plan_without, step, &at);
        at = *run.end();
        let goes_on = run.goes_past_step();
        steps.push(run);
        if !goes_on {
            break;
        }
    }
    let mut rest: Option<Arc<Continuation>> = None;
    for run in steps.into_iter().rev() {
        rest = Some(Arc::new(match rest {
            Some(next) => run.then(next),
            None => run.last(),
        }));
    }
    rest.unwrap_or_else(|| Arc::new(Continuation::at_end(*state)))
}

/// Applies `a` on the way on: applied, passed over on a host that is down, or refused (why).
fn go_on(t: &Topology, run: &mut Progress, a: Action) -> Option<String> {
    let down = *run.down.get_or_insert_with(|| observe::consumers_reachability(&run.end, t).filter(|r| r.is_down()).count() as u32);
    match action::apply_in_place_unworded(&mut run.end, t, a) {
        Ok(()) => {
            // A verification changes nothing: what was down stays down.
            if !matches!(a, Action::Verify(_)) {
                run.down = None;
            }
            run.actions.push(a);
            run.downtime_s += down * a.duration_s();
            run.transitions += 1;
            None
        }
        Err(r) if r.kind == RefusalKind::HostDown => None,
        Err(_) => Some(action::apply(&run.end, t, a).err().map(|r| r.reason).unwrap_or_default()),
    }
}

/// Going forward from a halt in step `step` in state `c`, on `plan_without` (the plan without
/// the machines written off): the write-off ([`write_off_actions`]; a refusal there and it
/// cannot be carried out), then the halted step run again as a re-run runs it (what is done
/// skipped, what a cut join left cleaned up first), then every later step ([`rest_of_plan`],
/// read through `going_on`), up to the first action the model refuses: the executor halts there
/// too, so the candidate ends there, with the step and why in [`Candidate::stops_at`], and is
/// judged on the state it reached.
pub(crate) fn candidate(
    c: &Cluster,
    t: &Topology,
    plan_without: &Plan,
    step: usize,
    going_on: &mut dyn GoingOn,
    judge: &mut dyn FnMut(&Cluster, u32, u32) -> Cost,
) -> Candidate {
    let (write_off, written_off) = run_candidate(c, t, RecoveryKind::GoForward, write_off_actions(c, t), false, judge);
    if !write_off.applicable() {
        return write_off;
    }
    let mut actions = write_off.actions;
    // The halted step again, and what a cut join left cleaned up (a few actions at most).
    actions.reserve(plan_without.steps[step].actions.len() + 4);
    let mut halted =
        Progress { actions, downtime_s: write_off.cost.downtime_s, transitions: write_off.transitions, ..Progress::from(written_off) };
    'step: for &a in &plan_without.steps[step].actions {
        let again = action::already_done(&halted.end, a);
        for act in action::cut_cleanup(&halted.end, a).into_iter().chain((!again).then_some(a)) {
            if let Some(why) = go_on(t, &mut halted, act) {
                halted.stops_at = Some(StoppedAt { step: plan_without.steps[step].id.clone(), why });
                break 'step;
            }
        }
    }
    let rest = match halted.stops_at {
        Some(_) => None,
        None => Some(going_on.rest(t, plan_without, step + 1, &halted.end)),
    };
    let (mut actions, mut state) = (halted.actions, halted.end);
    let (mut downtime_s, mut transitions, mut stops_at) = (halted.downtime_s, halted.transitions, halted.stops_at);
    if let Some(rest) = rest {
        rest.push_actions(&mut actions);
        state = *rest.end();
        downtime_s += rest.downtime_s;
        transitions += rest.transitions;
        stops_at = rest.stops_at().cloned();
    }
    let cost = judge(&state, downtime_s, state.clock_s.saturating_sub(c.clock_s));
    Candidate { kind: RecoveryKind::GoForward, actions, refused: None, refused_at: None, stops_at, documented: false, cost, transitions }
}
