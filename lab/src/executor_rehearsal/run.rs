//! The run: the executor's runner over the lab with the lab as its operator, and under a fault
//! what follows a halt (the executor's recovery, then `plan execute --resume` where it goes on).

use super::operator::LabOperator;
use super::rig::{FaultRun, Rig};
use super::{exec_error, lock, COMMAND_TIMEOUT_S, LAB_HOST_WAIT_CLEARING_MS, LAB_HOST_WAIT_MS, LAB_SETTLE_MS, QUORUM_WRITE_TIMEOUT_MS};
use crate::error::LabError;
use crate::executor_etcd::STRIKE_DIR;
use crate::executor_fault::{Blow, Strike, StrikeAt};
use crate::executor_lab;
use crate::fidelity::{Evidence, FidelityRow, Observed};
use crate::host;
use plan_exec::etcd::{EtcdProbe, EtcdctlTimeouts};
use plan_exec::guard::Guard;
use plan_exec::haproxy::LbProbe;
use plan_exec::journal::{Event, Journal, Record};
use plan_exec::kubernetes::KubeconfigSource;
use plan_exec::observe::Probes;
use plan_exec::runner::{Outcome, Pick, Recovery, RollbackOutcome, RunOptions, Runner};
use plan_exec::ssh::{OpensshTransport, SshOptions};
use plan_exec::transport::{Dispatch, Workstation};
use plan_exec::workstation::WorkstationHost;
use plan_exec::ExecError;
use plan_model::observe as derive;
use plan_model::topology::NodeIx;
use plan_sim::recovery::RecoveryKind;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the executor did on the lab, its recovery included.
pub(super) struct Run {
    pub(super) outcome: Outcome,
    /// The executor's recovery (`plan recover`) after a halt under a fault, when it ran one.
    pub(super) rollback: Option<RollbackOutcome>,
    /// Rows read at the halt (quorum), before anything recovered.
    pub(super) at_halt: Vec<FidelityRow>,
    /// `member remove` the lab tried for the phase's rollback that the twin ranked below a quorum
    /// recovery, and the removals the recovery made: etcd's answers.
    pub(super) tried: Vec<(NodeIx, Result<(), String>)>,
    pub(super) removals: Vec<(NodeIx, Option<Result<(), String>>)>,
    /// HAProxy's pools right after an `lb-reload` reset them.
    pub(super) reset_pool: Option<crate::fidelity::Observed>,
    /// Whether a write committed right after a fault that clears struck.
    pub(super) struck_quorum: Option<crate::fidelity::Cell>,
    /// Times the executor waited for hosts that did not answer before a step, and they answered
    /// again and the step ran: the twin's wait-and-retry, done by the executor itself.
    pub(super) waited: usize,
    pub(super) recovery_done: Option<Recovery>,
    pub(super) run_ms: u64,
    pub(super) no_counterpart: Vec<String>,
}

/// What the lab did at a halt under a fault.
#[derive(Default)]
struct AtHalt {
    rows: Vec<FidelityRow>,
    rollback: Option<Result<RollbackOutcome, ExecError>>,
    tried: Vec<(NodeIx, Result<(), String>)>,
    /// The executor's recovery was carried out and the hosts matched the twin after it.
    carried_out: bool,
}

impl Run {
    /// Runs the rig's steps through the executor, then under a fault what follows its halt.
    ///
    /// # Errors
    /// The executor could not run (its journal, its transport), or the lab could not carry out
    /// the recovery.
    pub(super) fn through(rig: &Rig) -> Result<Run, LabError> {
        let control_dir = rig.root().join("state/ssh");
        let mut transport = transport(rig, &control_dir)?;
        let mut journal = Journal::open(&rig.root().join("state")).map_err(|e| exec_error("open the journal", e))?;
        let mut operator = operator(rig);
        std::fs::create_dir_all(rig.root().join(STRIKE_DIR)).map_err(|e| LabError::io("the strike directory", e))?;
        if let Some(FaultRun {
            strike: Strike { at: StrikeAt::InJoin { host, after }, blow: Blow::Crash { victim, boots_again }, .. },
            ..
        }) = &rig.fault
        {
            let (t, strikes) = (&rig.t, rig.root().join(STRIKE_DIR));
            if *boots_again {
                host::write_file(&strikes.join(format!("reboots-{}", t.name(*victim))), "")?;
            }
            host::write_file(&strikes.join(format!("at-{}-{after}", t.name(*host))), t.name(*victim))?;
        }
        let options = options(rig);
        let started = Instant::now();
        let mut runner = Runner::new(&rig.t, &rig.sliced, &mut transport, &mut journal, &mut operator, options.clone());
        // The runner's twin starts where the whole plan stands before the slice, as the lab does.
        runner.prediction = rig.prediction.clone();
        let mut outcome = runner.run();
        stopped_by_the_operator(&outcome)?;
        let halt = match &outcome {
            Ok(Outcome::Halted(halt)) => at_halt(rig, halt, &mut runner)?,
            _ => AtHalt::default(),
        };
        drop(runner);
        // A recovery that goes on (wait and run the step again, the renewal, the write-off of a
        // go-forward) is followed by the resume; the one carried out, which a new look at the
        // hosts may have made another. After a write-off the resume follows the plan without the
        // machines, predicted from the state the journal holds (`plan execute --resume`).
        let goes_on = matches!(
            operator.recovery.as_ref().map(|r| &r.kind),
            Some(RecoveryKind::WaitAndRetry | RecoveryKind::Renew | RecoveryKind::GoForward)
        );
        if halt.carried_out && goes_on {
            let going_on = plan_exec::runner::plan_to_run(&rig.t, &rig.sliced, &journal).map_err(|e| exec_error("the plan going on", e))?;
            let plan = going_on.as_ref().unwrap_or(&rig.sliced);
            let mut resumed =
                Runner::new(&rig.t, plan, &mut transport, &mut journal, &mut operator, RunOptions { resume: true, ..options });
            if going_on.is_none() {
                resumed.prediction = rig.prediction.clone();
            }
            outcome = resumed.run();
            stopped_by_the_operator(&outcome)?;
        }
        // After a wait-and-retry the resume's look waits for what has not cleared yet (a VIP whose
        // backends HAProxy has not yet checked UP again): that is the recovery's own wait.
        let waited_by_the_recovery =
            halt.carried_out && matches!(operator.recovery.as_ref().map(|r| &r.kind), Some(RecoveryKind::WaitAndRetry));
        let waited = waits_that_went_on(&journal.records, rig.fault.as_ref().map(|f| f.strike.step_id.as_str()), waited_by_the_recovery);
        for (step, hosts, ms) in &waited {
            lock(&rig.kubelet).actions.push(format!(
                "the executor waited {ms} ms before {step} for what did not answer ({hosts}): it answered again, the step ran"
            ));
        }
        let run_ms = started.elapsed().as_millis() as u64;
        drop(transport);
        rig.hosts.close_masters(&control_dir.join("hosts"));
        rig.hosts.close_masters(&control_dir.join("workstation"));
        Ok(Run {
            outcome: outcome.map_err(|e| exec_error("run the slice", e))?,
            rollback: halt.rollback.transpose().map_err(|e| exec_error("roll back", e))?,
            at_halt: halt.rows,
            tried: halt.tried,
            removals: operator.removals,
            reset_pool: operator.reset_pool,
            struck_quorum: lock(&rig.kubelet).struck_quorum.take(),
            waited: waited.len(),
            recovery_done: operator.recovery,
            run_ms,
            no_counterpart: operator.no_counterpart,
        })
    }
}

/// The executor's transport on the rig, as `plan execute --workstation` builds it against a
/// standing lab: every host over SSH under the loopback guard, the workstation's commands on the
/// workstation's host, the infra repo's among them held to the rule for local commands and cut
/// off from the network there ([`plan_exec::transport::Dispatch`]).
fn transport(rig: &Rig, control_dir: &Path) -> Result<Dispatch<OpensshTransport>, LabError> {
    let guard = Guard::LOOPBACK_ONLY;
    let remote = OpensshTransport::new(SshOptions { config: Some(rig.hosts.ssh_config()), control_dir: control_dir.join("hosts") }, guard)
        .map_err(|e| exec_error("start the SSH transport", e))?;
    let host = WorkstationHost::parse(&format!("{}@{}", executor_lab::LAB_USER, rig.workstation))
        .map_err(|e| exec_error("name the workstation's host", ExecError::Input(e)))?;
    Ok(Dispatch { remote, local: Workstation::Host { host, guard } })
}

fn operator(rig: &Rig) -> LabOperator<'_> {
    LabOperator {
        t: &rig.t,
        hosts: &rig.hosts,
        kubelet: &rig.kubelet,
        repo: rig.paths.infra_repo.clone(),
        backup: rig.paths.backup_before(),
        probe: &rig.probe,
        last_host: None,
        no_counterpart: Vec::new(),
        strike: rig.fault.as_ref().map(|f| f.strike.clone()),
        struck: false,
        choose: rig.fault.as_ref().and_then(|f| f.choose),
        current: (String::new(), 0),
        recovery: None,
        removals: Vec::new(),
        reset_pool: None,
        settles_clear: match rig.fault.as_ref().and_then(|f| f.healed_going_on.as_ref()) {
            Some(from) => rig.sliced.steps.iter().skip_while(|s| &s.id != from).map(|s| s.id.clone()).collect(),
            None => Vec::new(),
        },
    }
}

/// Ctrl-C or SIGTERM to `plan rehearse` (which installs the handler): the runner stopped after
/// the command that ran, and the rehearsal ends there; the lab stops as on any error.
fn stopped_by_the_operator(outcome: &Result<Outcome, plan_exec::ExecError>) -> Result<(), LabError> {
    match outcome {
        Ok(Outcome::Halted(halt)) if plan_exec::interrupt::asked(Some(plan_exec::interrupt::flag())) => {
            Err(LabError::Interrupted { step: halt.step.clone() })
        }
        _ => Ok(()),
    }
}

fn options(rig: &Rig) -> RunOptions {
    let guard = Guard::LOOPBACK_ONLY;
    // A host that does not answer is waited for as `plan execute` does, for the lab's reboot
    // time scaled as the twin's (LAB_HOST_WAIT_MS), or well past the fault's own time where it
    // clears by itself (LAB_HOST_WAIT_CLEARING_MS). The run stops, as `plan execute` does, when
    // `plan rehearse` is interrupted.
    let mut options = RunOptions::new(
        Duration::from_secs(COMMAND_TIMEOUT_S),
        Probes {
            // kubeadm's local endpoint, as on real hosts: the master asked answers from its own
            // member (the lab's etcdctl shim dials that host's member, in plain http). A list of
            // every member's URL let etcdctl ask any of them, a member that had just booted again
            // on half-written data among them, whose list lacked the others. etcdctl bounded as
            // the lab's own (its etcd elects in 500 ms, not etcd's 1 s): a look at a cluster that
            // lost quorum takes 2 s, not 5.
            etcd: Some(EtcdProbe {
                endpoint: plan_exec::etcd::KUBEADM_ETCD_ENDPOINT.to_string(),
                pki: None,
                timeouts: EtcdctlTimeouts {
                    dial: Duration::from_millis(crate::etcd::DIAL_TIMEOUT_MS),
                    command: Duration::from_millis(crate::etcd::COMMAND_TIMEOUT_MS),
                },
            }),
            // The LB host's own files, as it sees them (pfSense's in /tmp, a Linux box's in
            // /etc/haproxy and /run/haproxy, private to that host).
            lb: Some({
                let (config, socket) = executor_lab::lb_files(&rig.t);
                LbProbe { config: config.to_string(), stats_socket: Some(socket.to_string()) }
            }),
            // The operator's kubeconfig, the infra repo's: it moves to the VIP at 4.1.
            kube: rig.paths.kubeconfig(&rig.t).map(KubeconfigSource::File),
            guard,
        },
    );
    options.stop = Some(plan_exec::interrupt::flag());
    let clears = rig.fault.as_ref().is_some_and(|f| f.strike.blow.clears());
    options.host_wait = Duration::from_millis(if clears { LAB_HOST_WAIT_CLEARING_MS } else { LAB_HOST_WAIT_MS });
    // A look every second within the wait (a third of 30 s would be 5 s): a host back after its
    // 3 s is seen within a second.
    options.host_poll = Some(Duration::from_secs(1));
    options.settle = Duration::from_millis(LAB_SETTLE_MS);
    // A plan the twin refuses without any fault (an edited one) is one `plan check` rejects:
    // the executor runs it as on `--override-check`, its real commands failing where they fail.
    let prediction = &rig.prediction;
    options.check_passed = prediction.refusals.is_empty() && prediction.failed_checks.is_empty();
    options
}

/// Under a fault, a halt is followed by the executor's recovery (`plan recover`), carried out by
/// the lab as operator. When the twin's policy first tries the phase's rollback and the executor
/// skips it (it saw quorum lost), the lab tries that rollback's `member remove` for real: real
/// etcd must refuse it as the twin does. Without a fault, a halt is the outcome.
fn at_halt(rig: &Rig, halt: &plan_exec::runner::Halt, runner: &mut Runner<'_>) -> Result<AtHalt, LabError> {
    let Some(FaultRun { strike, at_strike, choose, .. }) = &rig.fault else { return Ok(AtHalt::default()) };
    let t = &rig.t;
    let mut done = AtHalt::default();
    // A fault that clears may have cleared by the halt (the executor waits for it): its quorum
    // was read right after it struck instead (`struck_quorum`).
    if !strike.blow.clears() {
        let quorum = lock(&rig.kubelet).etcd.quorum(QUORUM_WRITE_TIMEOUT_MS)?;
        let twin_quorum = derive::quorum(at_strike);
        let lab_says = match &quorum {
            Ok(()) => Observed::Yes(true).into(),
            Err(why) => Observed::Yes(false).with(why.to_string()),
        };
        let twin_says = Observed::Yes(twin_quorum.holds()).with(twin_quorum.to_string());
        done.rows.push(FidelityRow::new(t, halt.step.clone(), "quorum at the halt (a write commits)", twin_says, lab_says, Evidence::Real));
        // The VIP as clients see it at the halt, once its frontend runs: which backends the
        // scenario's health check keeps UP, and whether `/readyz` answers through them.
        if at_strike.lb_running.frontend {
            done.rows.extend(super::rows::vip_rows(t, &rig.hosts, &rig.client, at_strike, &halt.step, " at the halt")?);
        }
    }
    // The twin ranks the phase's rollback below a quorum recovery when etcd would refuse its
    // `member remove`: the lab asks real etcd the same question before the recovery.
    let rollback_refused = matches!(halt.recovery.kind, RecoveryKind::QuorumRecovery);
    // What the executor proposes, beside what the twin (and so the lab, as operator) does.
    lock(&rig.kubelet).actions.push(format!(
        "the executor proposes at the halt: {} ({})",
        halt.recovery.describe(),
        if halt.recovery.descriptions.is_empty() { "nothing to do".to_string() } else { halt.recovery.descriptions.join("; ") }
    ));
    let victim = strike.blow.victim().filter(|v| at_strike.members().contains(*v));
    if let (true, Some(victim)) = (rollback_refused, victim) {
        let name = t.name(victim);
        let answer = lock(&rig.kubelet).etcd.member_remove(t, victim)?.unwrap_or_else(|| Err(format!("{name} is no member")));
        lock(&rig.kubelet).actions.push(format!(
            "the phase's rollback, ranked below a quorum recovery, tried by the lab: etcdctl member remove {}: {}",
            name,
            answer.as_ref().map_or_else(|why| format!("etcd refused: {why}"), |()| "removed".to_string())
        ));
        done.tried.push((victim, answer));
    }
    // The operator carries out what the executor proposes (`plan recover`). One that goes on
    // (what did not answer answers again within the executor's wait: wait and run the step
    // again; kubeadm's words for an expired credential: the renewal) is followed by the resume.
    done.rollback = Some(runner.recover(choose.map_or(Pick::Best, Pick::Kind)));
    done.carried_out = matches!(done.rollback, Some(Ok(RollbackOutcome::Done { .. })));
    // A recovery that failed says why in the lab's actions, with what differed after it.
    if let Some(Ok(RollbackOutcome::Failed { reason, drift, .. })) = &done.rollback {
        let mut k = lock(&rig.kubelet);
        k.actions.push(format!("the recovery failed: {reason}"));
        k.actions.extend(drift.iter().map(|d| format!("  after the recovery: {d}")));
    }
    Ok(done)
}

/// The executor's waits before a step that let it run, from its journal: a look before the step
/// where something did not answer (a host, an etcd member: `plan_exec::observe::is_silent`), then
/// a look after waiting where nothing differs; only from the step the fault strikes on (`from`), so
/// a wait of no fault's is not put on the fault's recovery path; not the resumed run's first look
/// where `resume_is_the_recovery` (a wait-and-retry carried out at the halt does nothing itself:
/// the resume waits for the fault to clear, and that is the recovery on the path, not a second
/// one). Each as (the step, what did not answer, how long it waited in ms).
fn waits_that_went_on(records: &[Record], from: Option<&str>, resume_is_the_recovery: bool) -> Vec<(String, String, u64)> {
    let Some(from) = from else { return Vec::new() };
    let mut steps: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut silent_since: Option<(&str, Vec<&str>, u64)> = None;
    // The resumed run's first look is still to come.
    let mut recoverys_look = false;
    for record in records {
        match &record.event {
            Event::RunStarted { steps: listed, resume, .. } => {
                steps.clone_from(listed);
                recoverys_look = *resume && resume_is_the_recovery;
            }
            Event::Observed { when, .. } if (when == "before" || when == "resume") && std::mem::take(&mut recoverys_look) => {
                silent_since = None;
            }
            Event::Observed { step, when, drift } if when == "before" || when == "resume" => {
                let at = |id: &str| steps.iter().position(|s| s == id);
                let at_or_after_the_fault = matches!((at(step), at(from)), (Some(k), Some(f)) if k >= f);
                let mut hosts: Vec<&str> = Vec::new();
                for d in drift.iter().filter(|d| plan_exec::observe::is_silent(d) && at_or_after_the_fault) {
                    if !hosts.contains(&d.node.as_str()) {
                        hosts.push(&d.node);
                    }
                }
                silent_since = (!hosts.is_empty()).then_some((step.as_str(), hosts, record.at_ms));
            }
            Event::Observed { step, when, drift } if when == "after-waiting" => {
                if let Some((before, hosts, since)) = silent_since.take() {
                    if before == step && drift.is_empty() {
                        out.push((step.clone(), hosts.join(", "), record.at_ms.saturating_sub(since)));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_exec::observe::Drift;

    fn record(at_ms: u64, event: Event) -> Record {
        Record { v: 1, at_ms, event }
    }

    fn observed(step: &str, when: &str, drift: Vec<Drift>) -> Event {
        Event::Observed { step: step.to_string(), when: when.to_string(), drift }
    }

    fn silent(node: &str) -> Drift {
        plan_exec::observe::unreachable(node, "")
    }

    fn run_started(steps: &[&str], resume: bool) -> Event {
        Event::RunStarted {
            scenario: String::new(),
            plan_digest: String::new(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            check: "pass".to_string(),
            override_check: None,
            resume,
            pid: 1,
        }
    }

    #[test]
    fn only_a_wait_from_the_faults_step_on_that_ended_clean_is_the_executors_wait_and_retry() {
        let records = vec![
            record(0, run_started(&["3.4", "3.5", "3.6", "3.7"], false)),
            // Before the fault: a wait of no fault's.
            record(10, observed("3.4", "before", vec![silent("kubernetes API")])),
            record(20, observed("3.4", "after-waiting", vec![])),
            // The fault's step: waited for and clean.
            record(100, observed("3.5", "before", vec![silent("k8s-master-2"), silent("k8s-master-2"), silent("kubernetes API")])),
            record(3100, observed("3.5", "after-waiting", vec![])),
            // Waited in vain: taken as dead, no wait-and-retry.
            record(4000, observed("3.6", "before", vec![silent("k8s-master-3")])),
            record(7000, observed("3.6", "after-waiting", vec![silent("k8s-master-3")])),
            // A clean look with nothing waited for.
            record(8000, observed("3.7", "before", vec![])),
        ];
        let waits = waits_that_went_on(&records, Some("3.5"), false);
        assert_eq!(waits, vec![("3.5".to_string(), "k8s-master-2, kubernetes API".to_string(), 3000)]);
        assert!(waits_that_went_on(&records, None, false).is_empty(), "no fault, no fault's wait");
    }

    /// The resume after a wait-and-retry at the halt waits for the VIP that HAProxy has not yet
    /// checked UP again: the recovery's own wait, not a second wait-and-retry; after another
    /// recovery (a renewal, a go-forward) such a wait is the executor's own.
    #[test]
    fn the_resumes_wait_after_a_wait_and_retry_is_that_recovery() {
        let records = vec![
            record(0, run_started(&["6.1", "6.2"], false)),
            record(10, observed("6.1", "before", vec![])),
            record(8000, run_started(&["6.1", "6.2"], true)),
            record(9000, observed("6.1", "before", vec![silent("kubernetes API")])),
            record(10300, observed("6.1", "after-waiting", vec![])),
            record(20000, observed("6.2", "before", vec![silent("k8s-master-2")])),
            record(21000, observed("6.2", "after-waiting", vec![])),
        ];
        let later = ("6.2".to_string(), "k8s-master-2".to_string(), 1000);
        assert_eq!(waits_that_went_on(&records, Some("6.1"), true), vec![later.clone()]);
        let resumed = ("6.1".to_string(), "kubernetes API".to_string(), 1300);
        assert_eq!(waits_that_went_on(&records, Some("6.1"), false), vec![resumed, later.clone()]);
        // The same where the halted step was begun and not ended: its look is journalled `resume`.
        let interrupted: Vec<Record> = records
            .iter()
            .map(|r| match &r.event {
                Event::Observed { step, when, drift } if r.at_ms == 9000 && when == "before" => {
                    record(r.at_ms, observed(step, "resume", drift.clone()))
                }
                _ => record(r.at_ms, r.event.clone()),
            })
            .collect();
        assert_eq!(waits_that_went_on(&interrupted, Some("6.1"), true), vec![later]);
    }
}
