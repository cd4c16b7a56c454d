//! The report of a rehearsal through the executor: the fidelity rows, the outcomes side by side,
//! what the lab did, what the probe through the VIP saw.

use super::lock;
use super::rig::{FaultRun, Rig};
use super::rows::{acceptance_rows, cluster_rows, file_rows, not_rehearsed, row, served_rows, step_rows, vip_rows};
use super::run::Run;
use crate::error::LabError;
use crate::executor_etcd::join_notes;
use crate::executor_fault;
use crate::fidelity::{verdict_line, Cell, Ending, Evidence, FidelityRow, Observed, Tally, Verdict};
use crate::probe::ProbeRecord;
use plan_exec::runner::Outcome;
use plan_model::cluster::Cluster;
use plan_model::topology::NodeIx;
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::Outcome as TwinOutcome;
use std::sync::atomic::Ordering;

/// What a rehearsal through the executor found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutorRehearsal {
    pub scenario: String,
    /// The scenario's addresses as the lab moved them onto loopback (`10.0.20.100 -> 127.0.20.100`);
    /// empty for a scenario on loopback already.
    pub moved_to_loopback: Vec<String>,
    /// The loopback range the lab held, `127.N.0.0/16` (0 unless another lab held it): every
    /// address the rows and actions name is in it.
    pub loopback_range: String,
    pub steps: Vec<String>,
    pub rows: Vec<FidelityRow>,
    pub twin_outcome: String,
    pub executor_outcome: String,
    /// What the lab did as operator and kubelet, in order.
    pub lab_actions: Vec<String>,
    /// By-hand instructions nothing on the lab stands for (acknowledged, not carried out).
    pub no_counterpart: Vec<String>,
    /// What the twin says that the lab cannot check: never a row, never counted as agreement.
    pub not_rehearsed: Vec<String>,
    /// What the client through the VIP saw during the run.
    pub probe: ProbeRecord,
    /// Start of the executor's run to its end.
    pub run_ms: u64,
    /// Kubernetes API object requests (nodes, kubeadm-config, cluster-info) the stand-ins answered:
    /// the executor's Kubernetes API observer at work.
    pub api_requests: u64,
}

impl ExecutorRehearsal {
    /// No row disagrees and none is unrehearsed. Stand-in rows and events are not agreement, but
    /// they do not fail the rehearsal.
    pub fn agrees(&self) -> bool {
        !self.rows.iter().any(|r| r.verdict().fails())
    }

    /// The rows that fail the rehearsal: disagreements and what is not rehearsed.
    pub fn disagreements(&self) -> impl Iterator<Item = &FidelityRow> {
        self.rows.iter().filter(|r| r.verdict().fails())
    }

    /// The fidelity table for a person.
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan rehearse (through the executor): scenario {}, {} step(s) run by the executor over SSH on fixture hosts on {}\n",
            self.scenario,
            self.steps.len(),
            self.loopback_range
        );
        if !self.moved_to_loopback.is_empty() {
            out.push_str(&format!("addresses moved onto loopback: {}\n", self.moved_to_loopback.join(", ")));
        }
        out.push_str(&format!("{:<6} {:<60} {:<28} {:<28} {}\n", "step", "observation", "twin", "executor on the lab", ""));
        for row in &self.rows {
            let mark = match row.verdict() {
                Verdict::Agree => "=",
                Verdict::Disagree => "DISAGREE",
                Verdict::StandIn => "~ stand-in",
                Verdict::NotRehearsed => "(not on the lab)",
            };
            out.push_str(&format!("{:<6} {:<60} {:<28} {:<28} {mark}\n", row.step(), row.observation(), row.twin(), row.lab()));
        }
        for action in &self.lab_actions {
            out.push_str(&format!("  lab: {action}\n"));
        }
        for instruction in &self.no_counterpart {
            out.push_str(&format!("  by hand, nothing on the lab stands for it: {instruction}\n"));
        }
        for unchecked in &self.not_rehearsed {
            out.push_str(&format!("  not rehearsed (the twin's word only): {unchecked}\n"));
        }
        let p = &self.probe;
        out.push_str(&format!(
            "client through the VIP: {} requests, {} ready, {} TLS rejected; downtime after it first served: {} ms in {} outage(s){}\n",
            p.requests,
            p.ready,
            p.tls_rejected,
            p.downtime_ms,
            p.outages.len(),
            p.outages.iter().map(|o| format!(" [{} ms in {}]", o.lasted_ms, o.steps.join(","))).collect::<String>()
        ));
        let tally = Tally::of(&self.rows);
        out.push_str(&format!(
            "outcome: twin {}, executor {}; {tally}; executor run {} ms; {} Kubernetes API reads answered by the stand-ins\n",
            self.twin_outcome, self.executor_outcome, self.run_ms, self.api_requests
        ));
        out.push_str(&verdict_line(self.agrees(), tally));
        out
    }

    /// The report of `run` on `rig`: the rows read from the lab, then the lab stopped.
    ///
    /// # Errors
    /// A row the lab could not read (a file, etcd, the stats socket).
    pub(super) fn of(mut rig: Rig, run: Run) -> Result<ExecutorRehearsal, LabError> {
        let probe = rig.probe.stop();
        let final_twin = match &rig.fault {
            Some(FaultRun { twin, .. }) => twin.final_state,
            None => rig.prediction.states.last().copied().unwrap_or(rig.initial),
        };
        let twin_halt = twin_halt(&rig);
        let mut rows = step_rows(&rig.t, &rig.sliced, twin_halt.as_ref(), &run.outcome);
        rows.extend(run.at_halt.iter().cloned());
        let (twin_end, executor_end) = outcomes(&rig, &run, twin_halt.as_ref(), &mut rows);
        // How clients see the cluster once both ended in the same place, and the source plan's
        // acceptance criteria once both completed it: after a halt without a recovery the twin's
        // state is the one its executor believes, which does not model a running apiserver
        // keeping the cert it loaded (see the README).
        let same_end = twin_end.agrees_with(&executor_end) && (rig.fault.is_some() || matches!(run.outcome, Outcome::Completed));
        let not_rehearsed = end_rows(&rig, &final_twin, same_end, &mut rows)?;
        rig.stop_kubelet();
        let (twin_outcome, executor_outcome) = (twin_end.label(), executor_end.label());
        // Where the run stopped on the twin's own refusal, the end repeats the model.
        let evidence = if super::rows::halted_on_the_twins_word(&run.outcome) { Evidence::StandIn } else { Evidence::Real };
        rows.push(FidelityRow::new(&rig.t, "end", "outcome", Observed::Ending(twin_end), Observed::Ending(executor_end), evidence));
        let api_requests = lock(&rig.kubelet).api_requests.load(Ordering::SeqCst) as u64;
        let t = &rig.t;
        let all: Vec<NodeIx> = t.all_nodes().iter().collect();
        let mut lab_actions = join_notes(t, &rig.hosts, &all);
        lab_actions.extend(std::mem::take(&mut lock(&rig.kubelet).actions));
        lab_actions.extend(crate::executor_lab::lb_unit_notes(t, &rig.hosts));
        if let Outcome::Halted(halt) = &run.outcome {
            lab_actions.push(format!("executor halted at {}: {}", halt.step, halt.reason));
            for drift in &halt.drift {
                lab_actions.push(format!("  drift: {drift:?}"));
            }
        }
        Ok(ExecutorRehearsal {
            scenario: t.scenario.name.clone(),
            moved_to_loopback: std::mem::take(&mut rig.moved_to_loopback),
            loopback_range: rig.loopback_range(),
            steps: rig.sliced.steps.iter().map(|s| s.id.clone()).collect(),
            rows,
            twin_outcome,
            executor_outcome,
            lab_actions,
            no_counterpart: run.no_counterpart,
            not_rehearsed,
            probe,
            run_ms: run.run_ms,
            api_requests,
        })
    }
}

/// Where the twin's executor halts: at the fault's detection, or at its first refused command or
/// failed verification (as a failed command halts the real one).
fn twin_halt(rig: &Rig) -> Option<(usize, String)> {
    let sliced = &rig.sliced;
    match &rig.fault {
        // A twin that halted and went on (waited, renewed) halts nowhere in the end.
        Some(FaultRun { twin, .. }) if twin.outcome == plan_sim::run::Outcome::Completed => None,
        // A go-forward halts where the rest of the plan without the machines stops, if it stops.
        Some(FaultRun { twin: plan_sim::run::RunResult { outcome: TwinOutcome::WentOn { stopped_at, .. }, .. }, .. }) => {
            let at = stopped_at.as_ref()?;
            sliced.steps.iter().position(|s| s.id == at.step).map(|i| (i, at.why.clone()))
        }
        Some(FaultRun { twin, .. }) => twin.halted_at.as_ref().and_then(|id| {
            sliced.steps.iter().position(|s| &s.id == id).map(|i| (i, twin.halt.as_ref().map(ToString::to_string).unwrap_or_default()))
        }),
        // Without a fault: the first step whose command the twin refuses or whose verification
        // fails in the state it predicts (a verification's commands fail for real there).
        None => {
            let prediction = &rig.prediction;
            let at = |(id, reason): &(String, String)| sliced.steps.iter().position(|s| &s.id == id).map(|i| (i, reason.clone()));
            prediction.refusals.iter().chain(&prediction.failed_checks).filter_map(at).min_by_key(|(i, _)| *i)
        }
    }
}

/// The twin's end and the executor's; under a fault, the rows of each `member remove` and of the
/// recovery path.
fn outcomes(rig: &Rig, run: &Run, twin_halt: Option<&(usize, String)>, rows: &mut Vec<FidelityRow>) -> (Ending, Ending) {
    let t = &rig.t;
    let Some(FaultRun { strike, twin, at_strike, .. }) = &rig.fault else {
        let twin = match twin_halt {
            Some((i, _)) => Ending::HaltedAt(rig.sliced.steps[*i].id.clone()),
            None => Ending::Outcome(TwinOutcome::Completed),
        };
        return (twin, executor_fault::executor_outcome(t, &run.outcome, None, None));
    };
    // Each a real observation at the fault's step.
    let mut row_at_strike = |observation: String, twin: Cell, lab: Cell| {
        rows.push(FidelityRow::new(t, strike.step_id.clone(), observation, twin, lab, Evidence::Real))
    };
    for (node, answer) in &run.tried {
        let twin_says = Observed::Answer(executor_fault::twin_member_remove(t, at_strike, *node));
        row_at_strike(
            format!("etcdctl member remove {} after the fault", t.name(*node)),
            twin_says.into(),
            Observed::answer(answer).into(),
        );
    }
    // The recovery's own removals, each beside the twin's state right before its own: whether a
    // member of the node is left to remove (a `kubeadm reset` before it removes it), then etcd's
    // answer where one is.
    let recovery = run.recovery_done.as_ref().map(|r| r.actions.as_slice()).unwrap_or_default();
    for (node, answer) in &run.removals {
        let before = executor_fault::before_member_remove(t, at_strike, recovery, *node);
        let name = t.name(*node);
        let twin_member = before.members().contains(*node);
        let observation = format!("{name} an etcd member when the recovery removes it");
        row_at_strike(observation, Observed::Yes(twin_member).into(), Observed::Yes(answer.is_some()).into());
        if let (true, Some(answer)) = (twin_member, answer) {
            let twin_says = Observed::Answer(executor_fault::twin_member_remove(t, &before, *node));
            row_at_strike(format!("etcdctl member remove {name} after the fault"), twin_says.into(), Observed::answer(answer).into());
        }
    }
    // A fault that clears: quorum right after it struck, against the twin's state it leaves.
    if let Some(lab_quorum) = &run.struck_quorum {
        let twin_quorum = plan_model::observe::quorum(at_strike);
        let twin_says = Observed::Yes(twin_quorum.holds()).with(twin_quorum.to_string());
        row_at_strike("quorum right after the fault (a write commits)".to_string(), twin_says, lab_quorum.clone());
    }
    // A reset of the LB: the pool it serves right after, against the twin's state the fault leaves.
    if let Some(lab_pool) = &run.reset_pool {
        let twin_pool = Observed::nodes(at_strike.lb_running.pool).into();
        row_at_strike("the LB's pool right after the reset (HAProxy show stat)".to_string(), twin_pool, lab_pool.clone().into());
    }
    // The lab's path: the executor's own waits that let a step run, then the recovery it carried
    // out.
    let mut lab_path: Vec<RecoveryKind> = Vec::new();
    lab_path.extend(std::iter::repeat_n(RecoveryKind::WaitAndRetry, run.waited));
    lab_path.extend(run.recovery_done.as_ref().map(|r| r.kind.clone()));
    rows.push(row(t, "recovery path".to_string(), Observed::Recoveries(twin.recoveries.clone()), Observed::Recoveries(lab_path)));
    let executor = executor_fault::executor_outcome(t, &run.outcome, run.recovery_done.as_ref(), run.rollback.as_ref());
    (Ending::Outcome(twin.outcome.clone()), executor)
}

/// The rows read at the end, once reboots are over: files, served certs and etcd; the cluster as
/// clients see it when both ended in the same place; the acceptance criteria when both completed
/// without a fault. Returns what the lab cannot check.
fn end_rows(rig: &Rig, final_twin: &Cluster, same_end: bool, rows: &mut Vec<FidelityRow>) -> Result<Vec<String>, LabError> {
    let (t, hosts, initial) = (&rig.t, &rig.hosts, &rig.initial);
    let mut k = lock(&rig.kubelet);
    // The last look: reboots finished, pods and nodes as they stand.
    k.settle(hosts)?;
    let joined: Vec<NodeIx> = t.all_nodes().iter().filter(|&n| initial.joined.or(final_twin.joined).contains(n)).collect();
    let masters: Vec<NodeIx> = t.all_nodes().iter().filter(|&n| initial.control_plane.or(final_twin.control_plane).contains(n)).collect();
    // HAProxy's view is read until it holds still (most of a second): beside the other rows,
    // which read files, the apiservers and etcd and change nothing it checks.
    std::thread::scope(|scope| {
        let vip = same_end.then(|| scope.spawn(|| vip_rows(t, hosts, &rig.client, final_twin, "end", "")));
        rows.extend(file_rows(t, hosts, &joined, &masters, final_twin, rig.root())?);
        rows.extend(served_rows(t, &k, &rig.client, &masters, final_twin)?);
        rows.extend(k.etcd.rows(t, final_twin)?);
        let Some(vip) = vip else { return Ok(Vec::new()) };
        let vip = vip.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        rows.extend(cluster_rows(t, &k, hosts, &joined, final_twin, vip));
        if rig.fault.is_some() {
            return Ok(Vec::new());
        }
        rows.extend(acceptance_rows(t, &k, hosts, &rig.paths, &masters, final_twin)?);
        Ok(not_rehearsed(t, final_twin))
    })
}
