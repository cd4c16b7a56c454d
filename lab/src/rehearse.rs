//! A rehearsal: the twin's plan walked on a lab, etcd's part performed for real, the fault
//! injected for real at the same point, and each observation set beside the twin's prediction.
//!
//! The walk is the twin's executor loop ([`plan_sim::step`]) with a lab underneath, and its
//! recoveries are the twin's policy ([`plan_sim::policy::recover`]) carried out here: every action
//! is applied to the model; the actions that touch etcd (member add as learner or voter, start,
//! promote, remove, `kubeadm reset`, force-new-cluster, snapshot restore, shutdown and boot of a master) also run
//! against real etcd, and real etcd's answer decides whether the walk goes on. Where the two
//! disagree the walk follows the lab, so its recoveries and outcome are the lab's own; the
//! independent prediction is a plain [`Engine`] run of the same schedule.
//!
//! Beside etcd, the control plane follows the walk's state ([`crate::control_plane`]): serving
//! certs with the SANs the model says, an HTTPS apiserver stand-in per running apiserver whose
//! `/readyz` is its etcd's real health, HAProxy at the VIP with the scenario's check and the
//! model's running pool, rewritten at each LB deploy. The checks the lab can make for real (VIP
//! listening, backends UP, TLS and `/readyz` through the VIP, an apiserver ready) are made for
//! real and decide, as etcd's answers do; a probe through the VIP measures downtime all along.
//!
//! Caveat: this does not go through `plan execute` (no SSH, no kubeadm); kubelets, consumers, DNS
//! and the hypervisor are the model's alone, and time (TTLs, reboot durations) is the model's
//! clock, not waited out.

use crate::control_plane::ControlPlane;
use crate::error::LabError;
use crate::etcd::{Membership, Real};
use crate::lab::{twin_data_note, CommittedData, Lab, QuorumProbe};
use crate::probe::Probe;
use crate::process::Signal;
use plan_model::action::{self, Action, Check, Refusal, RefusalKind};
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use plan_model::observe;
use plan_model::plan::Plan;
use plan_model::plan::Step;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use plan_sim::policy::Executor;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Engine, EventKind, Halt, Injection, Outcome, Recording};
use plan_sim::search::Candidate;
use plan_sim::step::{self, Place, Position};
use std::time::Instant;

mod backup;
mod vip;

use crate::fidelity::{node_names as names, Cell, Ending, Observed};
pub use crate::fidelity::{render, Evidence, FidelityReport, FidelityRow, Figures, Verdict};

/// Whether the lab can inject `fault` for real.
///
/// # Errors
/// [`LabError::NotRehearsable`] for faults the lab has no real counterpart for yet, or a node
/// that is not a master.
pub fn check_fault(t: &Topology, fault: Fault) -> Result<(), LabError> {
    let node = match fault {
        Fault::NodeDown { node, .. } | Fault::Partition { node, .. } => node,
        Fault::LbReload => return Ok(()),
        other => {
            return Err(LabError::NotRehearsable {
                what: other.kind().as_str().to_string(),
                why: "the walk injects only crash and reboot (SIGKILL of the master's etcd), partition (SIGSTOP) and lb-reload (HAProxy reset to the declared pool); through the executor (`plan rehearse` without --walk) operator-away too".to_string(),
            })
        }
    };
    if !t.target_masters().contains(node) {
        return Err(LabError::NotRehearsable {
            what: fault.describe(t),
            why: format!("{} is not a master: the lab runs only the masters' etcd", t.name(node)),
        });
    }
    Ok(())
}

/// Whether the walk can rehearse `t` with `injection`, asked before its lab starts: the load
/// balancer is one the lab replicates, and the fault one it injects for real ([`check_fault`]).
///
/// # Errors
/// [`LabError::NotRehearsable`].
pub fn check_rehearsable(t: &Topology, injection: Option<Injection>) -> Result<(), LabError> {
    // One HAProxy at the VIP stands for a load balancer machine; a VIP that moves between
    // masters (VRRP, kube-vip's lease) has no replica here yet.
    let lb = &t.scenario.load_balancer;
    if lb.kind.on_masters() {
        return Err(LabError::NotRehearsable {
            what: format!("load balancer kind {}", lb.kind.as_str()),
            why: "the lab replicates a load balancer machine (pfsense-bootstrap, haproxy); keepalived and kube-vip are model-only"
                .to_string(),
        });
    }
    match injection {
        Some(i) => check_fault(t, i.fault),
        None => Ok(()),
    }
}

/// What the lab does for an action, when it does anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabOp {
    Add(NodeIx),
    Start(NodeIx),
    Promote(NodeIx),
    Remove(NodeIx),
    Reset(NodeIx),
    ForceNew(NodeIx),
    Shutdown(NodeIx),
    Boot(NodeIx),
    Destroy(NodeIx),
    Restore(NodeIx),
}

fn lab_op(t: &Topology, a: Action) -> Option<LabOp> {
    let op = match a {
        Action::EtcdMemberAdd(x) => LabOp::Add(x),
        Action::EtcdStart(x) => LabOp::Start(x),
        Action::EtcdPromote(x) => LabOp::Promote(x),
        Action::EtcdMemberRemove(x) => LabOp::Remove(x),
        Action::KubeadmReset(x) => LabOp::Reset(x),
        Action::ForceNewCluster(x) => LabOp::ForceNew(x),
        Action::Shutdown(x) => LabOp::Shutdown(x),
        Action::Boot(x) => LabOp::Boot(x),
        Action::DestroyVm(x) => LabOp::Destroy(x),
        Action::RestoreSnapshot(x) => LabOp::Restore(x),
        _ => return None,
    };
    a.node().filter(|n| t.target_masters().contains(*n)).map(|_| op)
}

/// The walk: the shadow state (the model, its etcd membership corrected from the lab), the lab,
/// and the table so far.
struct Walk<'a> {
    t: &'a Topology,
    plan: &'a Plan,
    lab: &'a mut Lab,
    cp: &'a mut ControlPlane,
    /// The client through the VIP; taken at the end for its record.
    probe: Option<Probe>,
    twin_vip: vip::TwinVip,
    c: Cluster,
    pending: Vec<(Fault, u32)>,
    rows: Vec<FidelityRow>,
    recoveries: Vec<RecoveryKind>,
    figures: Figures,
    /// When the last event (action or fault) on the lab finished.
    last_event: Instant,
    /// Nodes a fault took down (not the plan's own shutdowns).
    struck: NodeSet,
}

impl<'a> Walk<'a> {
    /// Stamps the probe's following answers with `step`.
    fn on_step(&self, step: &str) {
        if let Some(probe) = &self.probe {
            probe.on_step(step);
        }
    }

    /// The row of one observation: the verdict is the values'.
    fn row(&mut self, step: &str, observation: impl Into<String>, twin: impl Into<Cell>, lab: impl Into<Cell>, evidence: Evidence) {
        self.rows.push(FidelityRow::new(self.t, step, observation, twin, lab, evidence));
    }

    /// What the lab did at `step` (a fault struck or over, a halt), beside the twin's word for it.
    fn event(&mut self, step: &str, what: &str, twin: String, lab: String) {
        self.rows.push(FidelityRow::event(step, what, twin, lab));
    }

    /// The lab's membership as voters and learners; `Err` when no running voter answers.
    fn lab_membership(&self) -> Result<Real<(NodeSet, NodeSet)>, LabError> {
        Ok(self.lab.members()?.map(|members| {
            let mut voters = NodeSet::EMPTY;
            let mut learners = NodeSet::EMPTY;
            for m in members {
                let Some(host) = m.peer_urls.iter().find_map(|u| self.lab.layout().by_peer_url(u)) else { continue };
                match m.membership() {
                    Membership::Voter => voters = voters.with(host.ix()),
                    Membership::Learner => learners = learners.with(host.ix()),
                }
            }
            (voters, learners)
        }))
    }

    fn observe_members(&mut self, step: &str, when: &str, twin: (NodeSet, NodeSet)) -> Result<(), LabError> {
        let lab = match self.lab_membership()? {
            Ok((voters, learners)) => Observed::Members { voters, learners },
            Err(refused) => Observed::Unanswered(format!("no member answers: {refused}")),
        };
        let twin = Observed::Members { voters: twin.0, learners: twin.1 };
        self.row(step, format!("etcd members {when}"), twin, lab, Evidence::Real);
        Ok(())
    }

    fn observe_quorum(&mut self, step: &str, when: &str, twin: observe::QuorumView) -> Result<QuorumProbe, LabError> {
        let since_event_ms = self.last_event.elapsed().as_millis() as u64;
        let probe = self.lab.quorum_probe()?;
        if let Some(first) = probe.first_refusal_ms {
            let at = since_event_ms + first;
            if probe.holds {
                self.figures.write_outage_ms = Some(self.figures.write_outage_ms.unwrap_or(0).max(since_event_ms + probe.elapsed_ms));
            } else if self.figures.quorum_loss_detected_ms.is_none() {
                self.figures.quorum_loss_detected_ms = Some(at);
            }
        }
        let how = match (&probe.refused, probe.first_refusal_ms) {
            (None, None) => format!("a write committed in {} ms", probe.elapsed_ms),
            (None, Some(_)) => format!("writes timed out until {} ms: leader election", probe.elapsed_ms),
            (Some(why), _) => format!("writes refused for {} ms: {why}", probe.elapsed_ms),
        };
        let (twin, lab) = (Observed::Yes(twin.holds()).with(twin.to_string()), Observed::Yes(probe.holds).with(how));
        self.row(step, format!("quorum {when}"), twin, lab, Evidence::Real);
        Ok(probe)
    }

    /// After a real etcd action: if the lab's membership is not what the twin predicted, say so
    /// and follow the lab.
    fn follow_lab(&mut self, step: &str, what: &str) -> Result<(), LabError> {
        let Ok((voters, learners)) = self.lab_membership()? else { return Ok(()) };
        if (voters, learners) != (self.c.voters, self.c.learners) {
            let twin = Observed::Members { voters: self.c.voters, learners: self.c.learners };
            self.row(step, format!("etcd members after {what}"), twin, Observed::Members { voters, learners }, Evidence::Real);
            self.c.voters = voters;
            self.c.learners = learners;
        }
        Ok(())
    }

    /// Performs `op` on the lab: real etcd's answer.
    fn perform(&mut self, op: LabOp) -> Result<Real<()>, LabError> {
        self.figures.etcd_operations += 1;
        let lab = &mut *self.lab;
        let answer = match op {
            LabOp::Add(x) => lab.member_add(x, if self.t.learner_mode { Membership::Learner } else { Membership::Voter })?,
            LabOp::Start(x) => lab.member_start(x)?,
            LabOp::Promote(x) => lab.member_promote(x)?,
            LabOp::Remove(x) => lab.member_remove(x)?,
            LabOp::Reset(x) => lab.kubeadm_reset(x)?,
            LabOp::ForceNew(x) => lab.force_new_cluster(x)?,
            LabOp::Shutdown(x) => {
                let host = lab.host(x)?.clone();
                lab.signal_etcd(&host, Signal::Term)?;
                Ok(())
            }
            LabOp::Boot(x) => lab.restart(x)?.map(|_| ()),
            LabOp::Destroy(x) => {
                let host = lab.host(x)?.clone();
                lab.signal_etcd(&host, Signal::Kill)?;
                lab.wipe(&host)?;
                Ok(())
            }
            LabOp::Restore(x) => lab.snapshot_restore(x)?.map(|_| ()),
        };
        self.last_event = Instant::now();
        Ok(answer)
    }

    /// Applies one action to the shadow and, when it touches etcd, to the lab.
    fn apply(&mut self, a: Action, step: &str) -> Result<Result<(), Refusal>, LabError> {
        self.on_step(step);
        let before = self.c;
        let applied = self.apply_to_lab(a, step)?;
        if applied.is_ok() {
            self.account_vip(&before, a, step);
            let restart = match a {
                Action::RestartApiserver(x) | Action::ControlPlaneUp(x) | Action::Boot(x) => Some(x),
                Action::ApplyConfigStack => before.stack_hosts_declared.minus(before.stack_hosts).iter().next(),
                _ => None,
            };
            self.sync_control_plane(Some(a), restart)?;
        }
        Ok(applied)
    }

    /// A check the lab makes for real: its verdict decides, as etcd's answers do.
    fn apply_check(&mut self, a: Action, real: Real<()>, twin: Result<Cluster, Refusal>) -> Result<(), Refusal> {
        match (twin, real) {
            (Ok(next), Ok(())) => {
                self.c = next;
                Ok(())
            }
            // The lab passed what the twin refused: go on from reality (a check changes nothing).
            (Err(_), Ok(())) => {
                self.c.clock_s = self.c.clock_s.saturating_add(a.duration_s());
                Ok(())
            }
            (Err(refusal), Err(_)) => Err(refusal),
            (Ok(_), Err(refused)) => Err(Refusal {
                kind: RefusalKind::CheckFailed,
                reason: format!("check failed on the lab: {}: {refused}", a.describe(self.t)),
            }),
        }
    }

    fn apply_to_lab(&mut self, a: Action, step: &str) -> Result<Result<(), Refusal>, LabError> {
        let t = self.t;
        let twin = action::apply(&self.c, t, a);
        if a == Action::Verify(Check::BackupFresh) {
            let real = self.check_backup(step, &twin)?;
            return Ok(self.apply_check(a, real, twin));
        }
        if let Action::Verify(check) = a {
            if let Some(real) = self.real_check(check, step)? {
                return Ok(self.apply_check(a, real, twin));
            }
        }
        let Some(op) = lab_op(t, a) else {
            return Ok(twin.map(|next| self.c = next));
        };
        let what = a.describe(t);
        let shows_row = !matches!(op, LabOp::Destroy(_)) && !matches!(op, LabOp::Promote(x) if !self.c.learners.contains(x));
        // The lab runs the real command unless the twin refuses for a reason the lab has no real
        // part in (a host down, a kubeadm check, an expired credential).
        if let Err(refusal) = &twin {
            if refusal.kind != RefusalKind::NoQuorum {
                if shows_row {
                    // The lab's value is the model's refusal, repeated: a stand-in, not agreement.
                    let lab = Observed::answer(&twin).with(format!("not run: {}; the lab repeats the model", kind_text(refusal.kind)));
                    self.row(step, what, Observed::answer(&twin), lab, Evidence::StandIn);
                }
                return Ok(twin.map(|_| ()));
            }
        }
        if let LabOp::Restore(x) = op {
            return self.restore(x, a, twin, step);
        }
        let before = self.c;
        let real = self.perform(op)?;
        // `kubeadm reset` is taken either way; what differs is whether etcd removed the member.
        let (twin_cell, lab_cell): (Cell, Cell) = match (op, &twin) {
            (LabOp::Reset(x), Ok(next)) if next.members().contains(x) => {
                (Observed::MemberRemoved(false).with("no quorum to remove it"), reset_seen(&real))
            }
            (LabOp::Reset(_), Ok(_)) => (Observed::MemberRemoved(true).into(), reset_seen(&real)),
            _ => (Observed::answer(&twin).into(), Observed::answer(&real).into()),
        };
        if shows_row {
            self.row(step, what.clone(), twin_cell, lab_cell, Evidence::Real);
        }
        let next = match (twin, real) {
            (Ok(next), Ok(())) => next,
            // Real etcd took what the twin refused: go on from reality.
            (Err(_), Ok(())) => Cluster { clock_s: self.c.clock_s.saturating_add(a.duration_s()), ..self.c },
            (twin, Err(refused)) => {
                let kind = twin.err().map(|r| r.kind).unwrap_or(RefusalKind::Precondition);
                return Ok(Err(Refusal { kind, reason: format!("{what}: {refused}") }));
            }
        };
        self.c = next;
        self.follow_lab(step, &what)?;
        let changed = (before.voters, before.learners, before.up.and(before.etcd_started))
            != (self.c.voters, self.c.learners, self.c.up.and(self.c.etcd_started));
        if shows_row && changed && !matches!(op, LabOp::Reset(_) | LabOp::Destroy(_)) {
            let q = observe::quorum(&self.c);
            self.observe_quorum(step, &format!("after {}", short(op, t)), q)?;
        }
        Ok(Ok(()))
    }

    fn strike(&mut self, fault: Fault, step: &str) -> Result<(), LabError> {
        let t = self.t;
        self.c = fault.strike(&self.c, t);
        if fault == Fault::LbReload {
            return self.strike_lb_reload(fault, step);
        }
        let (node, signal) = match fault {
            Fault::NodeDown { node, .. } => {
                self.struck = self.struck.with(node);
                (node, Signal::Kill)
            }
            Fault::Partition { node, .. } => (node, Signal::Stop),
            _ => unreachable!("check_fault admits only node faults"),
        };
        self.on_step(step);
        if signal == Signal::Kill {
            self.cp.crash(node);
        }
        let host = self.lab.host(node)?.clone();
        let sent = self.lab.signal_etcd(&host, signal)?;
        self.last_event = Instant::now();
        self.sync_control_plane(None, None)?;
        let lab = match sent {
            Some(pid) => format!("{} to etcd of {} (pid {pid})", signal.name(), host.name),
            None => format!("etcd of {} was not running: nothing to signal", host.name),
        };
        self.event(step, "fault injected", fault.describe(t), lab);
        if let Some(lasts) = fault.lasts_s() {
            self.pending.push((fault, self.c.clock_s.saturating_add(lasts)));
        }
        self.observe_members(step, "after the fault", (self.c.voters, self.c.learners))?;
        let q = observe::quorum(&self.c);
        self.observe_quorum(step, "after the fault", q)?;
        let c = self.c;
        self.observe_control_plane(step, "after the fault", &c)?;
        Ok(())
    }

    /// The LB's bootstrap script runs on its own (a pfSense reload): HAProxy is reset to the
    /// declared pool, restarted from scratch when the scenario resets to its declared state.
    fn strike_lb_reload(&mut self, fault: Fault, step: &str) -> Result<(), LabError> {
        self.on_step(step);
        let rewrites = self.cp.lb_rewrites;
        self.last_event = Instant::now();
        self.sync_control_plane(Some(Action::DeployLb), None)?;
        let pool = self.c.lb_running;
        let lab = if self.cp.lb_rewrites > rewrites {
            format!("HAProxy reset to the declared pool ({}), rewrite {}", names(self.t, pool.pool), self.cp.lb_rewrites)
        } else if pool.frontend {
            "HAProxy (re)started with the declared pool".to_string()
        } else {
            "no frontend declared: nothing for HAProxy to serve".to_string()
        };
        self.event(step, "fault injected", fault.describe(self.t), lab);
        let c = self.c;
        self.observe_control_plane(step, "after the fault", &c)?;
        Ok(())
    }

    fn heal(&mut self, fault: Fault, step: &str) -> Result<(), LabError> {
        self.c = fault.heal(&self.c, self.t);
        let lab = match fault {
            Fault::NodeDown { node, .. } => match self.lab.restart(node)? {
                Ok(true) => format!("etcd of {} started again from its data", self.t.name(node)),
                Ok(false) => format!("{} back; no etcd data to start from", self.t.name(node)),
                Err(why) => format!("etcd of {} did not come back: {why}", self.t.name(node)),
            },
            Fault::Partition { node, .. } => {
                let host = self.lab.host(node)?.clone();
                self.lab.signal_etcd(&host, Signal::Cont)?;
                format!("SIGCONT to etcd of {}", host.name)
            }
            _ => String::new(),
        };
        self.last_event = Instant::now();
        let restart = match fault {
            Fault::NodeDown { node, .. } => Some(node),
            _ => None,
        };
        self.sync_control_plane(None, restart)?;
        self.event(step, "fault over", format!("fault over: {}", fault.describe(self.t)), lab);
        let q = observe::quorum(&self.c);
        self.observe_quorum(step, "after the fault is over", q)?;
        let c = self.c;
        self.observe_control_plane(step, "after the fault is over", &c)?;
        Ok(())
    }

    fn heal_due(&mut self, step: &str) -> Result<(), LabError> {
        while let Some(i) = self.pending.iter().position(|(_, at)| *at <= self.c.clock_s) {
            let (fault, _) = self.pending.remove(i);
            self.heal(fault, step)?;
        }
        Ok(())
    }

    /// The model's clock jumps to the end of every temporary fault; the lab does not wait.
    fn wait_for_pending(&mut self, step: &str) -> Result<(), LabError> {
        let until = self.pending.iter().map(|(_, at)| *at).max().unwrap_or(self.c.clock_s);
        self.c.clock_s = until.max(self.c.clock_s);
        self.heal_due(step)
    }

    /// The twin's executor loop over the plan ([`step::run_to_end`]), with at most one
    /// injection.
    fn run(&mut self, injection: Option<Injection>) -> Result<Outcome, LabError> {
        let schedule: Vec<Injection> = injection.into_iter().collect();
        step::run_to_end(self, self.t, self.plan, Position::default(), &schedule)
    }
}

/// The walk runs the twin's loop with the lab underneath: a step's actions as recovery actions
/// are, a fault struck for real.
impl Place for Walk<'_> {
    fn strike(&mut self, fault: Fault, step: &str) -> Result<(), LabError> {
        Walk::strike(self, fault, step)
    }

    fn heal_due(&mut self, step: &str) -> Result<(), LabError> {
        Walk::heal_due(self, step)
    }

    fn act(&mut self, a: Action, step: &str, _kind: EventKind) -> Result<Result<(), Refusal>, LabError> {
        Walk::apply(self, a, step)
    }

    /// The model's clock moves on by the step's time beyond its actions, as the twin's; the lab
    /// does not wait it out.
    fn step_done(&mut self, s: &Step) -> Result<(), LabError> {
        self.c.clock_s = self.c.clock_s.saturating_add(step::rest_of_step_s(s));
        Ok(())
    }

    fn halting(&mut self, step: &str, halt: &Halt) -> Result<(), LabError> {
        self.event(step, "the executor halts", "(see outcome)".to_string(), format!("halt: {halt}"));
        Ok(())
    }
}

/// The walk carries a recovery action out on real etcd and on its model copy, as it does a step's
/// action; the timeline is the fidelity table, so notes are not kept.
impl Executor for Walk<'_> {
    type Error = LabError;

    fn cluster(&self) -> &Cluster {
        &self.c
    }

    fn struck(&self) -> NodeSet {
        self.struck
    }

    fn fault_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn wait_for_pending(&mut self, step: &str) -> Result<(), LabError> {
        Walk::wait_for_pending(self, step)
    }

    fn apply(&mut self, action: Action, step: &str) -> Result<Result<(), Refusal>, LabError> {
        Walk::apply(self, action, step)
    }

    fn took(&mut self, kind: RecoveryKind) {
        self.recoveries.push(kind);
    }

    fn note(&mut self, _step: &str, _kind: EventKind, _what: String) {}

    /// A candidate the twin ranked as refused by etcd for want of quorum (a rollback's `member
    /// remove`): real etcd is asked the same, and its answer is a row beside the twin's.
    fn weighed(&mut self, step: &str, ranking: &[Candidate]) -> Result<(), LabError> {
        let mut asked: Vec<Action> = Vec::new();
        for candidate in ranking {
            let Some(action @ Action::EtcdMemberRemove(_)) = candidate.refused_at else { continue };
            if asked.contains(&action) || action::apply(&self.c, self.t, action).map_err(|r| r.kind) != Err(RefusalKind::NoQuorum) {
                continue;
            }
            asked.push(action);
            let _ = Walk::apply(self, action, step)?;
        }
        Ok(())
    }
}

/// What etcd did with the member of a node `kubeadm reset` ran on.
fn reset_seen(real: &Real<()>) -> Cell {
    match real {
        Ok(()) => Observed::MemberRemoved(true).into(),
        Err(why) => Observed::MemberRemoved(false).with(format!("etcd: {why}")),
    }
}

fn kind_text(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Precondition => "a precondition the lab does not model",
        RefusalKind::HostDown => "the host is down",
        RefusalKind::NoQuorum => "no quorum",
        RefusalKind::Expired => "a credential expired",
        RefusalKind::CheckFailed => "a verification failed",
    }
}

fn short(op: LabOp, t: &Topology) -> String {
    let (verb, x) = match op {
        LabOp::Add(x) => ("member add", x),
        LabOp::Start(x) => ("start", x),
        LabOp::Promote(x) => ("promote", x),
        LabOp::Remove(x) => ("member remove", x),
        LabOp::Reset(x) => ("reset", x),
        LabOp::ForceNew(x) => ("force-new-cluster", x),
        LabOp::Shutdown(x) => ("shutdown", x),
        LabOp::Boot(x) => ("boot", x),
        LabOp::Destroy(x) => ("destroy", x),
        LabOp::Restore(x) => ("restore", x),
    };
    format!("{verb} {}", t.name(x))
}

/// Rehearses `plan` on `lab` (freshly up: the scenario's "before" control plane) with at most
/// one fault, and compares every observation with the twin.
///
/// # Errors
/// A fault the lab cannot inject ([`check_fault`]), or the lab failing underneath (a process
/// that does not start, etcdctl missing). Disagreements are not errors: they are in the report.
pub fn rehearse(t: &Topology, plan: &Plan, lab: &mut Lab, injection: Option<Injection>) -> Result<FidelityReport, LabError> {
    check_rehearsable(t, injection)?;
    let twin_start = Instant::now();
    let schedule: Vec<Injection> = injection.into_iter().collect();
    let prediction = Engine::new(t, plan, Recording::default()).run(&schedule);
    let twin_ms = twin_start.elapsed().as_millis() as u64;

    let mut cp = ControlPlane::new(t, lab.layout(), lab.dir())?;
    cp.sync(&Cluster::initial(t), None, None)?;
    let probe = Probe::start(cp.client().clone(), cp.vip_address(), cp.vip());
    let start = Instant::now();
    let mut walk = Walk {
        t,
        plan,
        lab,
        cp: &mut cp,
        probe: Some(probe),
        twin_vip: vip::TwinVip::default(),
        c: Cluster::initial(t),
        pending: Vec::new(),
        rows: Vec::new(),
        recoveries: Vec::new(),
        figures: Figures { twin_ms, ..Figures::default() },
        last_event: Instant::now(),
        struck: NodeSet::EMPTY,
    };
    let c0 = walk.c;
    walk.observe_members("start", "before the migration", (c0.voters, c0.learners))?;
    walk.observe_quorum("start", "before the migration", observe::quorum(&c0))?;
    walk.observe_apiservers("start", "before the migration", &c0)?;
    let outcome = walk.run(injection)?;
    walk.on_step("end");

    let end = "end";
    let f = prediction.final_state;
    walk.observe_members(end, "at the end", (f.voters, f.learners))?;
    walk.observe_quorum(end, "at the end", observe::quorum(&f))?;
    walk.observe_control_plane(end, "at the end", &f)?;
    let seeds = walk.lab.state().seed_keys;
    let keys_after = walk.lab.backup().map(|b| b.keys_after).unwrap_or(0);
    let data = |held| Observed::Data { held, seed_keys: seeds, keys_after };
    let twin_data = data(CommittedData::expected(f.etcd_data, seeds, keys_after)).with(twin_data_note(f.etcd_data));
    let lab_data = match walk.lab.committed_data()? {
        Ok(held) => data(held),
        Err(why) => Observed::Unanswered(format!("no member answers: {why}")),
    };
    walk.row(end, "committed data", twin_data, lab_data, Evidence::Real);
    let (twin_path, lab_path) = (Observed::Recoveries(prediction.recoveries.clone()), Observed::Recoveries(walk.recoveries.clone()));
    walk.row(end, "recovery path", twin_path, lab_path, Evidence::Real);
    let describe = |r: &[RecoveryKind]| r.iter().map(|k| k.describe()).collect::<Vec<_>>();
    let (twin_recoveries, lab_recoveries) = (describe(&prediction.recoveries), describe(&walk.recoveries));
    let (twin_outcome, lab_outcome) = (prediction.outcome.label(), outcome.label());
    let (twin_end, lab_end) = (Observed::Ending(Ending::Outcome(prediction.outcome.clone())), Observed::Ending(Ending::Outcome(outcome)));
    walk.row(end, "outcome", twin_end, lab_end, Evidence::Real);
    walk.figures.walk_ms = start.elapsed().as_millis() as u64;
    let record = walk.probe.take().map(Probe::finish).unwrap_or_default();
    walk.figures.vip_downtime = Some(walk.downtime_row(&record));
    walk.figures.probe = Some(record);
    walk.figures.lb_rewrites = walk.cp.lb_rewrites;

    Ok(FidelityReport {
        scenario: t.scenario.name.clone(),
        learner_mode: t.learner_mode,
        fault: injection.map(|i| i.fault.describe(t)),
        at: injection.and_then(|i| plan.steps.get(i.at.step as usize).map(|s| format!("{}@{}", s.id, i.at.action))),
        rows: walk.rows,
        twin_outcome,
        lab_outcome,
        twin_recoveries,
        lab_recoveries,
        figures: walk.figures,
    })
}
