//! The runner: for each step, observe and compare with the twin, run the commands with the
//! journal synced around each, observe again; halt with the twin's recovery on any difference.

use crate::invocation::{Compiler, Invocation, Work};
use crate::journal::{Event, Journal, Progress};
use crate::observe::{self, Drift, Observation, Observer, Probes, Scope};
use crate::predict::Prediction;
use crate::target::Place;
use crate::transport::{Completed, Request, Transport};
use crate::ExecError;
use host_wait::HaltWait;
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::hand::HandTask;
use plan_model::plan::{Phase, Plan, Step};
use plan_model::topology::Topology;
use plan_sim::recovery::RecoveryKind;
use std::time::Duration;

/// Bytes of a command's output kept in the journal (its tail, cut between characters).
pub const OUTPUT_KEPT_BYTES_MAX: usize = 2000;

pub use recover::{Choice, ChoiceCommand, Pick, Proposal, Undo, KIND_NAMES};

/// The person at the terminal, as the runner sees them.
pub trait Operator {
    /// Asked before the first step of each phase; `false` stops the run there.
    fn confirm_phase(&mut self, phase: &Phase, steps: &[&Step]) -> bool;
    /// Asked before running a recovery; `false` stops.
    fn confirm_recovery(&mut self, recovery: &Recovery) -> bool;
    /// A command only a person can carry out: `true` once done.
    fn by_hand(&mut self, step: &Step, instruction: &str, task: &HandTask) -> bool;
    /// Told before every invocation runs (the progress line, the dry-run listing).
    fn starting(&mut self, step: &Step, index: usize, invocation: &Invocation, eta_s: u32);
    /// Told after every invocation ran.
    fn finished(&mut self, step: &Step, invocation: &Invocation, done: &Result<Completed, String>);
    /// Told when a step begins, before the hosts are observed for it (the lab strikes a fault
    /// "at the step's start" here). [`BetweenSteps::Touched`] where the operator did something
    /// to the hosts since the last look, or a person was asked to confirm something (and may
    /// have), so the step is looked at afresh; untouched by default.
    fn step_begins(&mut self, _step: &Step) -> BetweenSteps {
        BetweenSteps::Untouched
    }
    /// Told when by-hand work is taken as done without asking: the operator said so with
    /// `--by-hand-done` at the halt that waited for it. Nothing by default.
    fn done_by_hand(&mut self, _step: &Step, _instruction: &str) {}
    /// Told once when the run starts waiting, for up to `up_to`, for what does not answer
    /// (`silent`: each as `what: why`), before a step or at a halt. Nothing by default.
    fn waiting(&mut self, _step: &Step, _silent: &[String], _up_to: Duration) {}
    /// Told once when, after a step (or a recovery), or before one where only facts that lag
    /// differ, the run looks again for up to `up_to` and finds something that does not answer
    /// (`silent`, as for [`Operator::waiting`]); the run halts if it does not settle. Nothing by
    /// default.
    fn settling(&mut self, _step: &Step, _silent: &[String], _up_to: Duration) {}
}

/// What the operator did to the hosts between the look after a step and the next step's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetweenSteps {
    Untouched,
    /// Something was done to them (the lab struck a fault), or a person answered a question (a
    /// phase's confirmation on a terminal): the look after the last step no longer stands for the
    /// next step's look before it.
    Touched,
}

/// How old the look after a step may be, at most, to stand for the next step's look before it
/// (nothing done and no person asked in between, seeing all the next one would): the same hosts
/// looked at again milliseconds later show the same (a look asks every host, two etcdctl calls,
/// HAProxy and the API: about a tenth of a second, half of what a step of the lab costs).
pub const LOOK_STANDS_FOR_MS: u64 = 1000;

/// One look at the hosts: when it began and what it looked at.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub began: std::time::Instant,
    pub scope: Scope,
}

/// What the runner is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Continue the journalled run.
    pub resume: bool,
    /// With `resume`: run every command of the interrupted step again, those that succeeded
    /// included (after the operator renewed what they copy: a new token, a new certificate key).
    pub rerun_step: bool,
    /// Read the hosts and compare with the twin (off for a dry run: the recorder sees nothing).
    pub observe: bool,
    /// Deadline of each command.
    pub command_timeout: Duration,
    /// What `plan check` said, for the journal.
    pub check_passed: bool,
    /// The reason given to run a plan the check rejects.
    pub override_check: Option<String>,
    /// How the observers reach etcd, the load balancer and the Kubernetes API.
    pub probes: Probes,
    /// How long a host that does not answer before a step is waited for (the twin's reboot
    /// time by default) before it is taken as dead and the run halts; zero: halt at once.
    pub host_wait: Duration,
    /// How often a host wait looks again; `None`: a third of the wait, at most
    /// [`HOST_WAIT_POLL_S`] (the lab, whose waits are for faults of a few seconds, looks every
    /// second).
    pub host_poll: Option<Duration>,
    /// How long what differs after a step (or lags before one) is looked at again before the
    /// run halts on it: [`AFTER_STEP_SETTLE_S`] by default (a kubelet reports Ready, a static pod
    /// comes back, a health check takes a backend back); the lab, whose stand-ins settle within
    /// a second, gives less.
    pub settle: Duration,
    /// Set when the operator asked the run to stop (Ctrl-C, SIGTERM: [`crate::interrupt`]): the
    /// run halts before its next command.
    pub stop: Option<&'static std::sync::atomic::AtomicBool>,
    /// With `resume`: the by-hand work the journal's last halt waited for is done (the operator
    /// did it while the run was halted). That one command is journalled as done by hand, not
    /// asked about; any later one is asked (and halts the run under `--yes`) as ever.
    pub by_hand_done: bool,
}

impl RunOptions {
    /// A fresh run that reads the hosts through `probes`: not a resume, the check passed, no
    /// wait for a silent host, no stop signal, nothing done by hand. Callers change what differs.
    pub fn new(command_timeout: Duration, probes: Probes) -> RunOptions {
        RunOptions {
            resume: false,
            rerun_step: false,
            observe: true,
            command_timeout,
            check_passed: true,
            override_check: None,
            probes,
            host_wait: Duration::ZERO,
            host_poll: None,
            settle: Duration::from_secs(AFTER_STEP_SETTLE_S),
            stop: None,
            by_hand_done: false,
        }
    }
}

/// Seconds between two looks at a host that did not answer, while it is waited for.
pub const HOST_WAIT_POLL_S: u64 = 5;
/// How long drift after a step is looked at again before the run halts on it (a node reports
/// Ready, a static pod restarts, some seconds after the command returned).
pub const AFTER_STEP_SETTLE_S: u64 = 20;
/// How often, meanwhile.
pub const AFTER_STEP_SETTLE_POLL_MS: u64 = 1000;

/// The twin's recovery for a halt, and the commands that carry it out.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub kind: RecoveryKind,
    pub actions: Vec<Action>,
    pub descriptions: Vec<String>,
    pub invocations: Vec<Invocation>,
    /// The state the twin expects once it is done.
    pub expected: Cluster,
    /// Its number in `ranking`; `None`: no candidate can be carried out, so holding with
    /// nothing to do.
    pub candidate: Option<usize>,
    /// Every candidate the twin weighed, numbered best first, with what each would leave
    /// (`plan_sim::search`) or why it cannot be carried out ([`Runner::choices`]).
    pub ranking: Vec<Choice>,
}

impl Recovery {
    pub fn describe(&self) -> String {
        self.kind.describe()
    }

    /// The twin weighed recoveries and none of them can be carried out ([`Recovery::best_of`]
    /// then holds with nothing to do): `plan recover` refuses, and the run stays halted.
    pub fn none_applies(&self) -> bool {
        self.candidate.is_none() && !self.ranking.is_empty()
    }
}

/// Why the run stopped.
#[derive(Debug, Clone)]
pub struct Halt {
    pub step: String,
    pub reason: String,
    pub drift: Vec<Drift>,
    pub recovery: Recovery,
    /// Where the join secrets could not be swept at the halt (empty: none left, or none made).
    pub secrets_left: Vec<String>,
    /// The halt waits for by-hand work: the index of that command in the step
    /// (`--resume --by-hand-done` confirms it).
    pub by_hand: Option<usize>,
    /// The run stopped before the step because the twin refuses the step in the state it
    /// predicts: nothing of it ran, and nothing the hosts showed said so.
    pub predicted: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Completed,
    /// The operator declined a phase before it started: nothing of it ran.
    Declined {
        phase: String,
    },
    Halted(Box<Halt>),
}

/// How a rollback ended.
#[derive(Debug, Clone)]
pub enum RollbackOutcome {
    /// The recovery ran and the hosts match the twin; `reopened` are pending again.
    Done {
        step: String,
        recovery: String,
        /// Its number in the twin's ranking (`None`: nothing was weighed; it held).
        candidate: Option<usize>,
        reopened: Vec<String>,
    },
    /// No command of the halted step ran and the hosts are as the twin expects before it:
    /// nothing was proposed, run or journalled.
    NothingToUndo {
        step: String,
    },
    Declined,
    Failed {
        step: String,
        reason: String,
        drift: Vec<Drift>,
    },
}

/// The plan a run in `journal` follows: `plan`, or where a go-forward wrote machines off, `plan`
/// going on without them from the halted step on (`None`: `plan` itself). Whatever builds a
/// [`Runner`] over a journal builds it over this plan.
///
/// # Errors
/// The journal names a step or machine the plan's scenario lacks, or an operation left does
/// not fit the scenario.
pub fn plan_to_run(t: &Topology, plan: &Plan, journal: &Journal) -> Result<Option<Plan>, ExecError> {
    let write_offs = Progress::from_records(&journal.records).write_offs;
    if write_offs.is_empty() {
        return Ok(None);
    }
    // Each write-off pruned the plan the run followed then, from its step on.
    let mut going_on = plan.clone();
    for written_off in &write_offs {
        let Some(from) = plan.steps.iter().position(|s| s.id == written_off.from()) else {
            return Err(ExecError::Input(format!("the journal wrote machines off at step {}, which the plan lacks", written_off.from())));
        };
        let mut gone = plan_model::topology::NodeSet::EMPTY;
        for name in &written_off.nodes {
            let node = t
                .nodes
                .iter()
                .position(|n| &n.name == name)
                .ok_or_else(|| ExecError::Input(format!("the journal wrote off {name}, which the scenario does not name")))?;
            gone = gone.with(plan_model::topology::NodeIx(node as u8));
        }
        going_on = going_on
            .going_on_without(t, from, gone)
            .map_err(|e| ExecError::Input(format!("the plan going on without {}: {e}", written_off.nodes.join(", "))))?;
    }
    Ok(Some(going_on))
}

/// A fingerprint of the plan (step ids and commands), so a resume runs the plan it started.
pub fn plan_digest(plan: &Plan) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for step in &plan.steps {
        for byte in step.id.bytes().chain([0]).chain(step.commands.iter().flat_map(|c| c.run.bytes().chain([0]))) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Runs one plan on one topology through one transport.
pub struct Runner<'a> {
    pub t: &'a Topology,
    pub plan: &'a Plan,
    pub transport: &'a mut dyn Transport,
    pub journal: &'a mut Journal,
    pub operator: &'a mut dyn Operator,
    pub options: RunOptions,
    pub prediction: Prediction,
    /// The invocations of each step.
    pub compiled: Vec<Vec<Invocation>>,
    pub observer: Observer,
    /// The last look at the hosts (the look after a step may stand for the next one's before).
    pub latest_look: Option<Look>,
    /// The machine the workstation's commands run on when not this one: the transport's
    /// (`--workstation`), for which every invocation is compiled.
    pub workstation: Option<crate::workstation::WorkstationHost>,
    /// The members the last look at a halt saw as voters (a member list, or a member's own
    /// status): a quorum recovery may start from one ([`Runner::choices`]).
    pub voters_seen: plan_model::topology::NodeSet,
}

impl<'a> Runner<'a> {
    pub fn new(
        t: &'a Topology,
        plan: &'a Plan,
        transport: &'a mut dyn Transport,
        journal: &'a mut Journal,
        operator: &'a mut dyn Operator,
        options: RunOptions,
    ) -> Self {
        let workstation = transport.workstation().cloned();
        let compiled = crate::invocation::compile_on(t, plan, workstation.as_ref());
        let observer = Observer::new(options.probes.clone());
        // A run that went on without machines written off is predicted from the twin's state
        // after the write-off ([`plan_to_run`] gives the plan it follows then), when it is
        // resumed or recovered; a fresh run starts from the scenario, whatever was journalled.
        let progress = if options.resume { Progress::from_records(&journal.records) } else { Progress::default() };
        let written_off = progress.written_off().and_then(|w| {
            let at = |id: &str| plan.steps.iter().position(|s| s.id == id);
            Some((at(&w.step)?, at(w.from())?, w.state))
        });
        let prediction = match written_off {
            Some((halted, from, state)) if from == halted + 1 => Prediction::going_on_after(t, plan, halted, state),
            Some((_, from, state)) => Prediction::going_on(t, plan, from, state),
            None => Prediction::new(t, plan),
        };
        let voters_seen = plan_model::topology::NodeSet::EMPTY;
        Runner {
            t,
            plan,
            transport,
            journal,
            operator,
            options,
            prediction,
            compiled,
            observer,
            latest_look: None,
            workstation,
            voters_seen,
        }
    }

    /// A compiler for this run's workstation: what it compiles runs where the plan's does.
    pub(crate) fn compiler(&self) -> Compiler<'a> {
        Compiler::on(self.t, self.workstation.clone())
    }

    /// What is observed around step `i`: what it changes in the twin and what it verifies, and
    /// the whole cluster's membership, load balancer and API (drift anywhere halts the run).
    fn scope(&self, i: usize) -> Scope {
        let (before, after) = (self.prediction.before(i), self.prediction.after(i));
        Scope::of_step(before, after, &self.plan.steps[i].actions).or(Scope::whole(before)).or(Scope::whole(after))
    }

    fn observe_now(&mut self, state: &Cluster, scope: Scope) -> Result<Option<Observation>, ExecError> {
        if !self.options.observe {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        let observation = observe::observe(self.t, state, self.transport, scope, &mut self.observer)?;
        tracing::info!(ms = began.elapsed().as_millis() as u64, etcd = scope.etcd, lb = scope.lb, kube = scope.kube, "observed");
        self.latest_look = Some(Look { began, scope });
        Ok(Some(observation))
    }

    /// The drift after a step, looked at again for up to [`RunOptions::settle`] while there is
    /// some: a kubelet reports its node Ready, a static pod comes back, a few seconds after the
    /// command that caused it returned; the twin holds only where things settle.
    fn settled_drift(&mut self, i: usize, after: &Cluster, scope: Scope, first: Observation) -> Result<Vec<Drift>, ExecError> {
        let drift = observe::drift(self.t, &first, &[after]);
        self.settle(i, after, &[after], scope, drift)
    }

    /// `drift` against `allowed`, looked at again for up to [`RunOptions::settle`] while there is
    /// some (`expected` scopes the looks), in step `i`. What does not answer meanwhile is told
    /// to the operator once ([`Operator::settling`]); a stop the operator asks for ends the looks.
    fn settle(
        &mut self,
        i: usize,
        expected: &Cluster,
        allowed: &[&Cluster],
        scope: Scope,
        mut drift: Vec<Drift>,
    ) -> Result<Vec<Drift>, ExecError> {
        let deadline = std::time::Instant::now() + self.options.settle;
        let mut told = false;
        while !drift.is_empty() && std::time::Instant::now() < deadline && !crate::interrupt::asked(self.options.stop) {
            let silent = host_wait::silent(&drift);
            if !told && !silent.is_empty() {
                told = true;
                let step = self.plan.steps[i].clone();
                let what: Vec<String> = silent.iter().map(|d| format!("{}: {}", d.node, d.evidence)).collect();
                self.operator.settling(&step, &what, deadline.saturating_duration_since(std::time::Instant::now()));
            }
            self.pause_until((std::time::Instant::now() + Duration::from_millis(AFTER_STEP_SETTLE_POLL_MS)).min(deadline));
            let Some(observation) = self.observe_now(expected, scope)? else { break };
            drift = observe::drift(self.t, &observation, allowed);
        }
        Ok(drift)
    }

    /// What is checked before step `i` runs (`interrupted`: a resume finds it begun): the hosts
    /// observed against the twin's state before it (any state the step passes through, when
    /// interrupted), waited for while silent, and the twin's own verdict on the step's
    /// verifications; the halt, where one of them stops the run.
    ///
    /// # Errors
    /// The journal cannot be written, or the guard refused a destination.
    fn before_step(&mut self, i: usize, interrupted: bool, scope: Scope, reused: bool) -> Result<Option<Outcome>, ExecError> {
        let id = &self.plan.steps[i].id;
        let before = *self.prediction.before(i);
        if reused {
            // The look after the step before, a moment ago, found the hosts as the twin has them
            // after it at once: its state before this step.
            self.journal.append(Event::Observed { step: id.clone(), when: "before-reused".to_string(), drift: Vec::new() })?;
        } else if let Some(observation) = self.observe_now(&before, scope)? {
            // An interrupted step may have done part of its work: each fact may be as in any
            // state the step's actions pass through, nothing else.
            let within = if interrupted { self.prediction.within(self.t, self.plan, i) } else { vec![before] };
            let allowed: Vec<&Cluster> = within.iter().collect();
            let mut drift = observe::drift(self.t, &observation, &allowed);
            let when = if interrupted { "resume" } else { "before" };
            self.journal.append(Event::Observed { step: id.clone(), when: when.to_string(), drift: drift.clone() })?;
            if !host_wait::silent(&drift).is_empty() {
                drift = self.wait_while_silent(i, &before, &allowed, observation, true)?.1;
            } else if !drift.is_empty() && drift.iter().all(observe::lags) {
                // Only facts that lag (a health check, a Ready condition) differ: given the time
                // they are given after a step before the run halts on them. A backend marked DOWN
                // for one check on a loaded machine is not a halt (the lab: six rehearsals at
                // once, HAProxy's `fall 2` at 100 ms marked a master DOWN between two steps).
                drift = self.settle(i, &before, &allowed, scope, drift)?;
                // One clean look is not enough for a fact that flaps (a backend failing every
                // other check): the step runs only if a second look a moment later agrees.
                if drift.is_empty() && !crate::interrupt::asked(self.options.stop) {
                    self.pause_until(std::time::Instant::now() + Duration::from_millis(AFTER_STEP_SETTLE_POLL_MS));
                    if let Some(again) = self.observe_now(&before, scope)? {
                        drift = observe::drift(self.t, &again, &allowed);
                    }
                }
                self.journal.append(Event::Observed { step: id.clone(), when: "after-settling".to_string(), drift: drift.clone() })?;
            }
            if !drift.is_empty() {
                tracing::warn!(drifts = drift.len(), "drift before the step");
                return self.halt(i, "reality differs from the twin before the step".to_string(), drift, interrupted).map(Some);
            }
        }
        // What the twin itself refuses here is not run: the plan going on without a master
        // written off stops where a step needs it (a join's discovery through it, the acceptance
        // criteria that want it), as the twin's does, also on `--override-check`. Otherwise a
        // plan the check rejected runs on `--override-check`, its failures the operator's call.
        let going_on = self.options.resume && Progress::from_records(&self.journal.records).written_off().is_some();
        if let Some(why) = self.prediction.refused(id).filter(|_| self.options.check_passed || going_on) {
            let reason = format!("the twin refuses step {id} in the state it predicts: {why}");
            return self.halt_with(i, reason, vec![], interrupted, HaltSeen { predicted: true, ..HaltSeen::default() }).map(Some);
        }
        Ok(None)
    }

    /// Runs one invocation through the transport.
    fn execute(&mut self, step: &str, invocation: &Invocation) -> Result<Completed, ExecError> {
        let timeout = self.options.command_timeout;
        match &invocation.work {
            Work::Shell { place, shell } => {
                self.transport.run(place, &Request { step, shell, stdin: None, secret: invocation.secret, timeout })
            }
            Work::Upload { host, local, remote, from } => {
                let bytes = match from {
                    // A dry run reads nothing.
                    _ if !self.options.observe => Vec::new(),
                    None => std::fs::read(local).map_err(|e| ExecError::Local { reason: format!("{local}: {e}") })?,
                    Some(workstation) => match self.read_on_workstation(step, workstation, local, invocation.secret)? {
                        Ok(bytes) => bytes,
                        Err(failed) => return Ok(failed),
                    },
                };
                let shell = format!("cat > {}", crate::transport::quote(remote));
                self.transport.run(
                    &Place::Host(host.clone()),
                    &Request { step, shell: &shell, stdin: Some(&bytes), secret: invocation.secret, timeout },
                )
            }
            Work::Relay { from, to, path } => {
                let read = format!("sudo cat {}", crate::transport::quote(path));
                let got =
                    self.transport.run(&Place::Host(from.clone()), &Request { step, shell: &read, stdin: None, secret: true, timeout })?;
                if !got.success() {
                    return Ok(Completed { stdout: String::new(), ..got });
                }
                let write = format!("sudo install -m 600 /dev/stdin {}", crate::transport::quote(path));
                let put = Request { step, shell: &write, stdin: Some(got.stdout.as_bytes()), secret: true, timeout };
                self.transport.run(&Place::Host(to.clone()), &put)
            }
            Work::Manual { .. } => Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO }),
        }
    }

    /// The bytes of the file `path` on the workstation's machine (an upload's source, in the infra
    /// repo there), or how reading it failed. Read as hex bytes (`od`), so a file that is not
    /// text arrives whole.
    fn read_on_workstation(
        &mut self,
        step: &str,
        workstation: &crate::workstation::WorkstationHost,
        path: &str,
        secret: bool,
    ) -> Result<Result<Vec<u8>, Completed>, ExecError> {
        let read = format!("od -An -v -tx1 {}", crate::transport::quote(path));
        let place = Place::Local { dir: None, on: Some(workstation.clone()) };
        let request = Request { step, shell: &read, stdin: None, secret, timeout: self.options.command_timeout };
        let got = self.transport.run(&place, &request)?;
        if !got.success() {
            return Ok(Err(Completed { stdout: String::new(), ..got }));
        }
        let bytes: Result<Vec<u8>, _> = got.stdout.split_whitespace().map(|hex| u8::from_str_radix(hex, 16)).collect();
        bytes.map(Ok).map_err(|e| ExecError::Ssh {
            host: format!("workstation {}", workstation.name()),
            reason: format!("reading {path}: od printed something other than bytes ({e})"),
        })
    }

    /// The twin's state at a halt in step `i`: before it, or after it when some of its commands
    /// ran, with what was observed written over it.
    fn believed(&mut self, i: usize, started: bool) -> Result<(Cluster, Option<Observation>), ExecError> {
        let expected = if started { *self.prediction.after(i) } else { *self.prediction.before(i) };
        let scope = self.scope(i).with_hypervisors();
        let observation = self.observe_now(&expected, scope)?;
        let believed = match &observation {
            Some(o) => observe::overlay(self.t, o, &self.base_at_halt(i, started, o)),
            None => expected,
        };
        self.voters_seen = observation.as_ref().map_or(plan_model::topology::NodeSet::EMPTY, |o| observe::voters_seen(self.t, o));
        Ok((believed, observation))
    }

    /// The twin's state what the hosts show is written over at a halt in step `i`: before the
    /// step when none of it ran; otherwise, of the states the step passes through
    /// ([`Runner::states_at_halt`]), the one `observation` differs from least, the furthest into
    /// the step among equals. What the hosts do not show (a control plane up, its files) is then
    /// taken from where the step was cut, not from its end: a join cut right after its member
    /// add is believed cut there, and its re-run cleans it up first.
    ///
    /// Except in a join without `ControlPlaneKubeletLocalMode` (before 1.33): kubeadm registers
    /// the node in `kubelet-start`, before `etcd-join` (docs/facts.md K19), where the twin's
    /// states within the step register it only once the control plane is up; a halt with the API
    /// down cannot show it either, so the step's end is kept (the node taken as registered, and a
    /// recovery deletes it), unless etcd refused the member list where that end has it serving
    /// with quorum: then the closest state, the node registered.
    fn base_at_halt(&self, i: usize, started: bool, observation: &Observation) -> Cluster {
        if !started {
            return *self.prediction.before(i);
        }
        let end = *self.prediction.after(i);
        let joins = self.plan.steps[i].operations.iter().any(|o| matches!(o, plan_model::operation::Operation::Join { .. }));
        let registers_first = joins && !self.t.kubelet_local_mode;
        if registers_first && observe::unexplained_refusals(self.t, observation, &end) == 0 {
            return end;
        }
        let mut base = observe::closest(self.t, observation, &self.states_at_halt(i, true)).copied().unwrap_or(end);
        if registers_first {
            // etcd refused what the step's end has it serve: the join was cut inside etcd-join,
            // after kubelet-start registered the node.
            base.joined = base.joined.or(end.joined);
        }
        base
    }

    fn halt(&mut self, i: usize, reason: String, drift: Vec<Drift>, started: bool) -> Result<Outcome, ExecError> {
        self.halt_with(i, reason, drift, started, HaltSeen::default())
    }

    /// [`Runner::halt`] in step `i` after a command failed to reach its host (`cut_off`: the host
    /// as a drift entry that did not answer).
    fn halt_cut_off(&mut self, i: usize, reason: String, cut_off: Option<Drift>) -> Result<Outcome, ExecError> {
        self.halt_with(i, reason, Vec::new(), true, HaltSeen { cut_off, ..HaltSeen::default() })
    }

    /// [`Runner::halt`], with what the halt saw besides its reason and drift ([`HaltSeen`]).
    fn halt_with(&mut self, i: usize, reason: String, drift: Vec<Drift>, started: bool, seen: HaltSeen) -> Result<Outcome, ExecError> {
        let HaltSeen { by_hand, cut_off, expired, predicted, after_step } = seen;
        // A drift with something silent in it went through the wait before the step already; the
        // look after a step only settles for `RunOptions::settle`, far less than a reboot, so what
        // is silent then is waited for here.
        let wait = if by_hand.is_some() {
            HaltWait::Nothing
        } else if !after_step && !host_wait::silent(&drift).is_empty() {
            HaltWait::Hypervisors
        } else {
            HaltWait::All
        };
        let mut at_halt = self.believed_at_halt(i, started, wait)?;
        if let Some(cut_off) = cut_off {
            host_wait::add_new(&mut at_halt.silent, cut_off);
        }
        let believed = expired.written_over(self.t, &at_halt.believed);
        let recovery = Recovery::best_of(self.choices(i, &believed, at_halt.hosts_back()), &believed);
        let step = self.plan.steps[i].id.clone();
        // Hosts that did not answer at the halt are part of what it saw (`plan recover` reads them).
        let mut drift = drift;
        for silent in at_halt.silent {
            host_wait::add_new(&mut drift, silent);
        }
        tracing::error!(step = %step, reason = %reason, "halted");
        self.journal.append(Event::Halted {
            step: step.clone(),
            reason: reason.clone(),
            drift: drift.clone(),
            recovery: recovery.describe(),
            recovery_actions: recovery.descriptions.clone(),
            by_hand,
            expired: Some(expired),
        })?;
        let secrets_left = self.sweep_join_secrets()?;
        Ok(Outcome::Halted(Box::new(Halt { step, reason, drift, recovery, secrets_left, by_hand, predicted })))
    }
}

/// What a halt saw besides its reason and drift.
#[derive(Debug, Default)]
struct HaltSeen {
    /// At by-hand work: the index of the command in the step that waits for it.
    by_hand: Option<usize>,
    /// The host whose connection dropped the command, as a drift entry that did not answer.
    cut_off: Option<Drift>,
    /// The join credentials kubeadm said expired in the failed command's output.
    expired: ExpiredCredentials,
    /// Before the step, on the twin's own refusal ([`Halt::predicted`]).
    predicted: bool,
    /// On the look after the step's commands: its silences were not waited for as a host is.
    after_step: bool,
}

/// The steps a successful recovery for a halt in step `i` undid, in plan order: they are pending
/// again, and a resume runs them whole. A phase's rollback (also within a quorum recovery or the
/// worst-case restore, which undo the phase too) takes the cluster back to before the phase, so
/// every step of the phase up to `i`; a hold (after the cut-over) or a renewal undoes nothing, so
/// only the halted step, which never finished, runs again whole (a renewal's new secrets are
/// copied again). Waiting for a fault to clear undoes nothing at all: the halted step stays as it
/// was cut, and the resume finishes it as it finishes any interrupted step (what finished is not
/// run again, a failed join is cleaned up first), as the twin's re-run does.
pub fn reopened_by(plan: &Plan, i: usize, kind: &RecoveryKind) -> Vec<String> {
    let halted = &plan.steps[i];
    match kind {
        RecoveryKind::WaitAndRetry => Vec::new(),
        RecoveryKind::Hold | RecoveryKind::GoForward | RecoveryKind::Renew | RecoveryKind::Resume => vec![halted.id.clone()],
        RecoveryKind::Rollback { .. } | RecoveryKind::QuorumRecovery | RecoveryKind::WorstCase => {
            plan.steps[..=i].iter().filter(|s| s.phase == halted.phase).map(|s| s.id.clone()).collect()
        }
    }
}

mod by_hand;
mod host_wait;
#[cfg(test)]
mod kill_sweep;
mod recover;
mod renew;
pub use crate::journal::ExpiredCredentials;
mod secrets;
mod step_loop;
#[cfg(test)]
mod tests;
