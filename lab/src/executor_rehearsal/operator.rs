//! The person at the lab's terminal: confirms every phase, strikes the fault at its point, makes
//! the by-hand edits and carries out the recoveries the executor leaves to the operator.

use super::kubelet::KubeletStandIn;
use super::lock;
use crate::executor_fault::{Blow, Strike, StrikeAt};
use crate::executor_lab::{self, ByHand, CLOCK_OFFSET};
use crate::fidelity::Observed;
use crate::host::{self, FixtureHosts};
use crate::probe::Probe;
use crate::process::Signal;
use plan_exec::invocation::{Invocation, Work};
use plan_exec::runner::{BetweenSteps, Operator, Recovery};
use plan_exec::target::Place;
use plan_exec::transport::Completed;
use plan_model::action::Action;
use plan_model::hand::{Change, HandTask, RepoEdit};
use plan_model::plan::{Phase, Step};
use plan_model::topology::{NodeIx, Topology};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

fn clock_offset_s(root: &Path) -> u64 {
    std::fs::read_to_string(root.join(CLOCK_OFFSET)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// The person at the lab's terminal: confirms every phase, makes the by-hand edits, and lets the
/// kubelet stand-in look after every command.
pub(super) struct LabOperator<'a> {
    pub(super) t: &'a Topology,
    pub(super) hosts: &'a FixtureHosts,
    pub(super) kubelet: &'a Mutex<KubeletStandIn>,
    pub(super) repo: PathBuf,
    /// What the worst case restores ([`crate::executor_lab::LabPaths::backup_before`]).
    pub(super) backup: PathBuf,
    pub(super) probe: &'a Probe,
    /// The host of the last shell command: where a by-hand edit of a host's file is made.
    pub(super) last_host: Option<String>,
    pub(super) no_counterpart: Vec<String>,
    /// The fault to strike during the run, if any, and whether it struck.
    pub(super) strike: Option<Strike>,
    pub(super) struck: bool,
    /// The recovery kind the lab picks at the halt instead of the executor's best (`--choose`).
    pub(super) choose: Option<&'static str>,
    /// The step and index of the invocation running.
    pub(super) current: (String, usize),
    /// The recovery the runner asked to carry out (after a halt under a fault).
    pub(super) recovery: Option<Recovery>,
    /// `etcdctl member remove` the lab ran for real, and etcd's answer.
    pub(super) removals: Vec<(NodeIx, Option<Result<(), String>>)>,
    /// The servers HAProxy has in its pools right after an `lb-reload` reset it (`show stat`).
    pub(super) reset_pool: Option<Observed>,
    /// The steps after whose commands the executor's look, waiting for what does not answer, lets
    /// a fault that clears clear: those from where the twin's run has it over while the plan goes
    /// on ([`crate::executor_fault::healed_going_on`]).
    pub(super) settles_clear: Vec<String>,
}

impl LabOperator<'_> {
    fn note(&self, what: String) {
        lock(self.kubelet).actions.push(what);
    }

    fn strike_now(&mut self, step: &Step, at: &StrikeAt) {
        let Some(strike) = self.strike.clone() else { return };
        if self.struck || strike.step_id != step.id || strike.at != *at {
            return;
        }
        self.struck = true;
        // A rebooting host stays down, and a partition lasts, FAULT_CLEARS_AFTER_MS and until
        // the executor has seen it: the executor waits for them as for real ones.
        let why = format!("the fault at {}", step.id);
        match strike.blow {
            Blow::Crash { victim, boots_again } => lock(self.kubelet).strike(self.hosts, victim, boots_again, &why),
            Blow::HypervisorDown { hypervisor, boots_again } => {
                lock(self.kubelet).strike_hypervisor(self.hosts, usize::from(hypervisor), boots_again, &why);
            }
            Blow::Freeze { victim } => {
                // The partition heals after the lab's reboot time, as a host that reboots comes
                // back, once the executor has seen it: it waits for the member as for the host.
                let mut k = lock(self.kubelet);
                k.freeze(self.hosts, victim, Signal::Stop, &why);
                k.struck_quorum = Some(k.quorum_now());
                k.clears_after(None, Some(victim));
            }
            Blow::ClockJump { seconds } => {
                let offset = clock_offset_s(self.hosts.root()) + u64::from(seconds);
                let written = host::write_file(&self.hosts.root().join(CLOCK_OFFSET), &format!("{offset}\n"));
                self.note(format!(
                    "{why}: the lab's clock jumps {} (the operator away){}",
                    plan_model::plan::format_duration(seconds),
                    written.err().map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
            Blow::LbReload => {
                let deployed = super::rig::deploy_lb(self.t, self.hosts, &self.repo);
                self.reset_pool = Some(match executor_lab::lb_backends(self.t, self.hosts).unwrap_or_else(|| Ok(Vec::new())) {
                    Ok(servers) => Observed::named_nodes(self.t, servers.iter().map(|s| s.name.as_str())),
                    Err(e) => Observed::Unanswered(format!("no answer: {e}")),
                });
                let lb = &self.t.scenario.load_balancer;
                let what = match lb.kind {
                    plan_model::scenario::LbKind::Haproxy => "the infra repo's haproxy.cfg installed and HAProxy reloaded on",
                    _ => "the bootstrap script re-run on",
                };
                self.note(format!(
                    "{why}: {what} {} (reset to the declared state){}",
                    lb.name,
                    deployed.err().map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        }
    }

    /// The by-hand work the runner asks for, done by the lab's operator where it can: a recovery
    /// action for real, the rest as a standing lab's by-hand work ([`super::standing::by_hand`]) on
    /// the host of the last shell command.
    fn carry_out_by_hand(&mut self, step: &Step, instruction: &str, task: &HandTask) -> bool {
        if let HandTask::Recovery(action) = task {
            return self.recover(*action);
        }
        match super::standing::by_hand(self.hosts.root(), self.last_host.as_deref(), self.t, task) {
            Ok(ByHand::Edited(what)) => {
                self.note(format!("{}: by hand {what}", step.id));
                true
            }
            Ok(ByHand::NoCounterpart) => {
                self.no_counterpart.push(format!("{}: {instruction}", step.id));
                true
            }
            Ok(ByHand::Unreadable(why)) => {
                self.note(format!("{}: by hand, the lab cannot make this edit: {why}", step.id));
                false
            }
            Err(e) => {
                self.note(format!("{}: by hand failed: {e}", step.id));
                false
            }
        }
    }

    fn recover(&mut self, action: Action) -> bool {
        let t = self.t;
        let mut k = lock(self.kubelet);
        match action {
            Action::EtcdMemberRemove(node) => {
                let answer = k.etcd.member_remove(t, node).unwrap_or_else(|e| Some(Err(e.to_string())));
                // No member left (a `kubeadm reset` before it removed it): nothing to remove, done,
                // as the twin takes it; the fidelity rows compare whether one was left.
                k.actions.push(match &answer {
                    Some(Ok(())) => format!("recovery: etcdctl member remove {}: removed", t.name(node)),
                    None => format!("recovery: etcdctl member remove {}: no member left, nothing to remove", t.name(node)),
                    Some(Err(why)) => format!("recovery: etcdctl member remove {}: etcd refused: {why}", t.name(node)),
                });
                self.removals.push((node, answer.clone()));
                !matches!(answer, Some(Err(_)))
            }
            Action::DestroyVm(node) => {
                if k.crashed.contains(node) {
                    k.actions.push(format!("recovery: destroy VM {}: its host is down already and stays down", t.name(node)));
                } else {
                    k.crash(self.hosts, node, "recovery: destroy VM");
                }
                true
            }
            // A go-forward's write-off deletes the Node object too; its host, down for good,
            // stays down (its disk is the operator's to wipe before it ever boots again).
            Action::DeleteNode(node) | Action::WriteOff(node) => {
                k.registered = k.registered.without(node);
                let name = t.name(node);
                k.actions.push(match action {
                    Action::WriteOff(_) => {
                        format!("recovery: write off {name}: kubectl delete node, the Node object is gone; its host stays down")
                    }
                    _ => format!("recovery: kubectl delete node {name}: the Node object is gone"),
                });
                true
            }
            Action::RestoreSnapshot(node) => {
                let answer = k.etcd.restore_snapshot(node, &self.backup).unwrap_or_else(|e| Err(e.to_string()));
                k.actions.push(match &answer {
                    Ok(()) => {
                        format!("recovery: etcdctl snapshot restore on {}: a cluster of one from the backup, writes commit", t.name(node))
                    }
                    Err(why) => format!("recovery: etcdctl snapshot restore on {}: {why}", t.name(node)),
                });
                answer.is_ok()
            }
            Action::ForceNewCluster(node) => {
                // The lab's own member, or the one the join started inside the host.
                let forced = match k.etcd.force_new_cluster(node) {
                    Ok(false) => k.force_new_cluster_joined(self.hosts, node),
                    other => other,
                };
                let what = match &forced {
                    Ok(true) => "a cluster of one, writes commit".to_string(),
                    Ok(false) => "the lab runs no member there".to_string(),
                    Err(e) => e.to_string(),
                };
                k.actions.push(format!("recovery: etcd --force-new-cluster on {}: {what}", t.name(node)));
                matches!(forced, Ok(true))
            }
            // The forward edit of the DNS source is a described edit on the lab (its names resolve
            // from files): the recovery's is the same, naming the records it puts back.
            Action::RestoreStaleDnsRecords => {
                let s = &t.scenario;
                let records: Vec<String> =
                    s.dns.records.iter().filter(|r| r.stale).map(|r| format!("restore stale '{} IN A {}'", r.name, r.address)).collect();
                let edit = RepoEdit::new(&s.dns.source, Change::Described(records.join(", ")));
                let answer = executor_lab::carry_out(&self.repo, &[edit]);
                let done = matches!(answer, ByHand::Edited(_) | ByHand::NoCounterpart);
                k.actions.push(format!("recovery: {}: {answer:?}", action.describe(t)));
                done
            }
            // The undo of 4.1's by-hand edits, by hand too: each consumer's file names its own
            // server again where it names the VIP (one that never left it is taken as done).
            Action::RevertConsumers => {
                let s = &t.scenario;
                let vip = s.control_plane_endpoint.vip_url();
                let edits: Vec<RepoEdit> = s
                    .consumers
                    .iter()
                    .map(|c| RepoEdit {
                        line: c.line,
                        ..RepoEdit::new(&c.path, Change::Replace { from: vip.clone(), to: c.server.clone() })
                    })
                    .collect();
                let answer = executor_lab::carry_out(&self.repo, &edits);
                let done = matches!(answer, ByHand::Edited(_) | ByHand::NoCounterpart);
                k.actions.push(format!("recovery: {}: {answer:?}", action.describe(t)));
                done
            }
            other => {
                k.actions.push(format!("recovery: {} is not rehearsed on the lab", other.describe(t)));
                false
            }
        }
    }
}

impl Operator for LabOperator<'_> {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }

    fn confirm_recovery(&mut self, recovery: &Recovery) -> bool {
        // Without a fault the rehearsal reports a halt and does not roll back; under a fault it
        // carries out the twin's recovery, as an operator would.
        if self.strike.is_none() {
            return false;
        }
        let by = match self.choose {
            Some(kind) => format!("picked by the lab as operator (--choose {kind})"),
            None => "chosen by the executor".to_string(),
        };
        self.note(format!("recovery {by}: {} ({})", recovery.describe(), recovery.descriptions.join("; ")));
        self.recovery = Some(recovery.clone());
        true
    }

    fn waiting(&mut self, _step: &Step, silent: &[String], _up_to: Duration) {
        // The executor saw the fault's machine not answering: a fault that clears may clear now.
        lock(self.kubelet).executor_waits_for(silent);
    }

    fn settling(&mut self, step: &Step, silent: &[String], up_to: Duration) {
        // The same, seen while a step's result settles, where the twin's run has the fault over
        // by then without a halt: a real reboot outlasts the executor's look after a step (20 s
        // on real hosts), so elsewhere the executor halts and waits, as the twin does.
        let mut kubelet = lock(self.kubelet);
        if self.settles_clear.contains(&step.id) {
            kubelet.executor_waits_for(silent);
        } else {
            // The plan's own reboot still ends once waited for; a fault is held past the look.
            kubelet.reboots_waited_for(silent);
            let look = up_to + Duration::from_millis(super::LAB_REBOOT_MS);
            kubelet.unseen_held_until(std::time::Instant::now() + look);
        }
    }

    fn step_begins(&mut self, step: &Step) -> BetweenSteps {
        self.probe.on_step(&step.id);
        let struck_before = self.struck;
        self.strike_now(step, &StrikeAt::StepBegins);
        // A fault struck now is something done to the hosts since the last look: the executor
        // looks afresh, as it would have looked just after the fault struck.
        if self.struck && !struck_before {
            BetweenSteps::Touched
        } else {
            BetweenSteps::Untouched
        }
    }

    fn by_hand(&mut self, step: &Step, instruction: &str, task: &HandTask) -> bool {
        let done = self.carry_out_by_hand(step, instruction, task);
        // A point right after the by-hand work (the pool declared, not yet deployed) is a point
        // the fault may strike at, as after a command.
        if done && self.current.0 == step.id {
            self.strike_now(step, &StrikeAt::AfterInvocation(self.current.1));
        }
        done
    }

    fn starting(&mut self, step: &Step, index: usize, invocation: &Invocation, _eta_s: u32) {
        self.probe.on_step(&step.id);
        self.current = (step.id.clone(), index);
        if let Work::Shell { place: Place::Host(host), .. } = &invocation.work {
            self.last_host = Some(host.name.clone());
        }
    }

    fn finished(&mut self, step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {
        // A reboot the command asked for has its host down before a fault strikes after it,
        // however late the kubelet stand-in's next look comes on a loaded machine.
        lock(self.kubelet).reboots_requested(self.hosts);
        if self.current.0 == step.id {
            self.strike_now(step, &StrikeAt::AfterInvocation(self.current.1));
        }
        let mut kubelet = lock(self.kubelet);
        // A command of a step that changes the cluster in the twin (a join's etcd started, a
        // member promoted or removed) is a change the last look gives its second to settle; a
        // step that only verifies is not.
        if step.changes_state() {
            kubelet.changed_now();
        }
        let result = kubelet.sync(self.hosts);
        drop(kubelet);
        if let Err(e) = result {
            self.note(format!("{}: kubelet stand-in failed: {e}", step.id));
        }
    }
}
