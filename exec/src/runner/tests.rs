use super::*;
use crate::transport::Recorder;
use plan_model::validate::parse_scenario;

/// Says yes to everything.
/// Records like [`Recorder`]; the first `kubeadm join --control-plane` of `step` loses its
/// connection (the host went down under it), and the join's probe finds no kubelet.conf (it did
/// not take effect).
pub(super) struct DropsJoin {
    pub(super) step: String,
    pub(super) dropped: bool,
    pub(super) inner: Recorder,
}

impl Transport for DropsJoin {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let done = self.inner.run(place, request)?;
        if request.step == self.step && request.shell.contains("--control-plane --certificate-key") && !self.dropped {
            self.dropped = true;
            return Err(ExecError::Ssh { host: place.label(), reason: "the remote process has terminated".to_string() });
        }
        let probe = request.step == self.step && request.shell.contains("test -e") && request.shell.contains("kubelet.conf");
        Ok(if probe { Completed { exit: Some(1), ..done } } else { done })
    }
}

pub(super) struct Yes;

impl Operator for Yes {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }
    fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
        true
    }
    fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        true
    }
    fn starting(&mut self, _step: &Step, _index: usize, _invocation: &Invocation, _eta_s: u32) {}
    fn finished(&mut self, _step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {}
}

/// Records like [`Recorder`], and fails the first command of one step.
pub(super) struct FailsAt {
    pub(super) step: String,
    pub(super) inner: Recorder,
}

impl Transport for FailsAt {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let done = self.inner.run(place, request)?;
        Ok(if request.step == self.step { Completed { exit: Some(1), ..done } } else { done })
    }
}

pub(super) fn options(resume: bool) -> RunOptions {
    RunOptions { resume, observe: false, ..RunOptions::new(Duration::from_secs(1), Probes::files_only()) }
}

/// The loopback scenario's hosts as the twin starts them, `silent` refusing SSH for its
/// first `silent_for` connections (a host that reboots), or for good.
pub(super) struct Rebooting {
    pub(super) t: Topology,
    pub(super) silent: String,
    pub(super) silent_for: usize,
    pub(super) tried: usize,
}

impl Transport for Rebooting {
    fn run(&mut self, place: &Place, _request: &Request<'_>) -> Result<Completed, ExecError> {
        let Place::Host(host) = place else {
            return Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO });
        };
        if host.name == self.silent && self.tried < self.silent_for {
            return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".to_string() });
        }
        Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
    }

    fn read_file(&mut self, host: &crate::target::HostTarget, path: &str) -> Result<crate::transport::FileRead, ExecError> {
        // One connection per observation: kubelet.conf's read counts it, the cert's shares it.
        let cert = path == crate::observe::APISERVER_CERT;
        if host.name == self.silent {
            self.tried += usize::from(!cert);
            if self.tried <= self.silent_for {
                return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".to_string() });
            }
        }
        if cert {
            // The existing master's apiserver cert, without the VIP.
            let address = host.address.to_string();
            return Ok(crate::transport::FileRead::Present(crate::observe::tests::cert_pem(&[&host.name, &address])));
        }
        let master = self.t.node(self.t.existing_master()).address;
        Ok(crate::transport::FileRead::Present(format!("    server: https://{master}:6443\n")))
    }
}

/// Keeps what ran; `silent` stops answering SSH at its second command of `step` for `lasts`
/// (cut off in the step: a host that reboots, or for good; zero: only that command's connection
/// drops), and reads files as [`Rebooting`].
struct CutOff {
    hosts: Rebooting,
    step: String,
    lasts: Duration,
    until: Option<std::time::Instant>,
    /// Commands of `step` the silent host was asked to run.
    asked: usize,
    ran: Vec<String>,
}

impl CutOff {
    fn silent_now(&self) -> bool {
        self.until.is_some_and(|until| std::time::Instant::now() < until)
    }
}

impl Transport for CutOff {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        if let Place::Host(host) = place {
            if host.name == self.hosts.silent && request.step == self.step && self.until.is_none() {
                self.asked += 1;
                if self.asked == 2 {
                    self.until = Some(std::time::Instant::now() + self.lasts);
                    if self.lasts.is_zero() {
                        // A blip: this one command's connection drops, nothing else.
                        return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection reset".to_string() });
                    }
                }
            }
            if host.name == self.hosts.silent && self.silent_now() {
                return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".to_string() });
            }
        }
        self.ran.push(format!("{} {}", request.step, request.shell));
        Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
    }

    fn read_file(&mut self, host: &crate::target::HostTarget, path: &str) -> Result<crate::transport::FileRead, ExecError> {
        if host.name == self.hosts.silent && self.silent_now() {
            return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".to_string() });
        }
        self.hosts.read_file(host, path)
    }
}

/// The loopback scenario's first two steps, lab-cp-1 cut off in 0.2 (its commands run there),
/// after its first command, for `lasts`.
fn cut_off_in_0_2(lasts: Duration) -> (Topology, Plan, CutOff) {
    let (t, _) = loopback_first_step();
    let mut plan = plan_model::planner::generate(&t);
    plan.steps.truncate(2);
    let hosts = Rebooting { t: t.clone(), silent: "lab-cp-1".to_string(), silent_for: 0, tried: 0 };
    (t, plan, CutOff { hosts, step: "0.2".to_string(), lasts, until: None, asked: 0, ran: Vec::new() })
}

#[test]
fn a_host_cut_off_in_a_step_that_answers_within_the_wait_is_a_temporary_fault_the_step_runs_again() {
    let (t, plan, mut transport) = cut_off_in_0_2(Duration::from_millis(500));
    let mut journal = Journal::in_memory();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, waiting(2)).run().unwrap();
    let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
    assert_eq!((halt.step.as_str(), &halt.recovery.kind), ("0.2", &RecoveryKind::WaitAndRetry), "{}", halt.reason);
    assert!(halt.recovery.invocations.is_empty(), "waiting runs nothing: {:?}", halt.recovery.descriptions);
    assert!(halt.drift.iter().any(|d| d.node == "lab-cp-1" && crate::observe::is_unreachable(d)), "{:?}", halt.drift);
    let waited = journal
        .records
        .iter()
        .any(|r| matches!(&r.event, Event::Observed { when, drift, .. } if when == "after-waiting" && drift.is_empty()));
    assert!(waited, "the wait at the halt and its clean look are journalled");
    // `plan recover` numbers it first too and carries it out: nothing runs, nothing is undone.
    let options = RunOptions { resume: true, ..waiting(2) };
    let proposal = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options.clone()).proposal().unwrap();
    assert_eq!(proposal.candidates[0].kind, RecoveryKind::WaitAndRetry, "{:?}", proposal.candidates);
    assert!(proposal.candidates[0].best);
    let ran_before = transport.ran.len();
    let done = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options.clone()).recover(recover::Pick::Best).unwrap();
    let RollbackOutcome::Done { reopened, .. } = done else { panic!("{done:?}") };
    assert!(reopened.is_empty(), "{reopened:?}");
    // The looks at the hosts (the hypervisors' SSH among them) are not the recovery's commands.
    let ran: Vec<&String> = transport.ran[ran_before..].iter().filter(|r| r.as_str() != "observe true").collect();
    assert!(ran.is_empty(), "nothing ran: {ran:?}");
    // The step stays as it was cut: the resume finishes it, as the twin's re-run does (what
    // finished is not run again; the command cut off runs again).
    assert_eq!(Progress::from_records(&journal.records).interrupted.as_deref(), Some("0.2"));
    let first = plan.steps[1].commands[0].run.clone();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).run().unwrap();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    let resumed: Vec<&String> = transport.ran[ran_before..].iter().filter(|c| c.starts_with("0.2 ")).collect();
    assert!(!resumed.is_empty(), "{:?}", transport.ran);
    assert!(resumed.iter().all(|c| !c.contains(first.as_str())), "the first command finished before the cut: {resumed:?}");
}

#[test]
fn a_connection_dropped_for_a_moment_is_a_temporary_fault_too() {
    // The host answers again before the halt's first look: it still did not answer the command.
    let (t, plan, mut transport) = cut_off_in_0_2(Duration::ZERO);
    let mut journal = Journal::in_memory();
    let started = std::time::Instant::now();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, waiting(30)).run().unwrap();
    let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
    assert_eq!(halt.recovery.kind, RecoveryKind::WaitAndRetry, "{:?}", halt.recovery.ranking);
    assert!(started.elapsed() < Duration::from_secs(10), "nothing silent to wait for: {:?}", started.elapsed());
    assert!(halt.drift.iter().any(|d| d.node == "lab-cp-1" && crate::observe::is_unreachable(d)), "{:?}", halt.drift);
    let options = RunOptions { resume: true, ..waiting(2) };
    let proposal = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).proposal().unwrap();
    assert_eq!(proposal.candidates[0].kind, RecoveryKind::WaitAndRetry, "plan recover agrees: {:?}", proposal.candidates);
}

#[test]
fn a_host_cut_off_in_a_step_for_good_is_taken_as_dead_at_the_halt_after_the_wait() {
    let (t, plan, mut transport) = cut_off_in_0_2(Duration::from_secs(3600));
    let mut journal = Journal::in_memory();
    let started = std::time::Instant::now();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, waiting(1)).run().unwrap();
    let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert_ne!(halt.recovery.kind, RecoveryKind::WaitAndRetry);
    assert!(halt.recovery.ranking.iter().all(|c| c.kind != RecoveryKind::WaitAndRetry), "{:?}", halt.recovery.ranking);
    assert!(halt.drift.iter().any(|d| d.node == "lab-cp-1" && crate::observe::is_unreachable(d)), "{:?}", halt.drift);
    // Still silent at `plan recover`: no wait proposed there either.
    let options = RunOptions { resume: true, ..waiting(0) };
    let proposal = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).proposal().unwrap();
    assert!(proposal.candidates.iter().all(|c| c.kind != RecoveryKind::WaitAndRetry), "{:?}", proposal.candidates);
}

static STOP_WHEN_CUT_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`CutOff`], and the operator presses Ctrl-C as the host is cut off.
struct CutOffAndStopped(CutOff);

impl Transport for CutOffAndStopped {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let done = self.0.run(place, request);
        if self.0.until.is_some() {
            STOP_WHEN_CUT_OFF.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        done
    }

    fn read_file(&mut self, host: &crate::target::HostTarget, path: &str) -> Result<crate::transport::FileRead, ExecError> {
        self.0.read_file(host, path)
    }
}

#[test]
fn a_stop_the_operator_asked_for_is_not_held_up_by_the_wait_at_the_halt() {
    let (t, plan, cut_off) = cut_off_in_0_2(Duration::from_secs(3600));
    let mut transport = CutOffAndStopped(cut_off);
    let mut journal = Journal::in_memory();
    let options = RunOptions { stop: Some(&STOP_WHEN_CUT_OFF), ..waiting(30) };
    let started = std::time::Instant::now();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).run().unwrap();
    assert!(matches!(outcome, Outcome::Halted(ref h) if h.step == "0.2"), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "no 30 s wait: {:?}", started.elapsed());
}

pub(super) fn loopback_first_step() -> (Topology, Plan) {
    let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/loopback.yaml")).expect("the loopback scenario is valid"));
    let mut plan = plan_model::planner::generate(&t);
    plan.steps.truncate(1);
    (t, plan)
}

fn waiting(seconds: u64) -> RunOptions {
    RunOptions { observe: true, host_wait: Duration::from_secs(seconds), ..options(false) }
}

/// Says yes to everything, keeps what it was told of waits, and touches the hosts as the step
/// `touches` begins.
#[derive(Default)]
struct ToldOfWaits {
    waits: Vec<(String, Vec<String>, Duration)>,
    touches: Option<String>,
}

impl Operator for ToldOfWaits {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }
    fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
        true
    }
    fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        true
    }
    fn starting(&mut self, _step: &Step, _index: usize, _invocation: &Invocation, _eta_s: u32) {}
    fn finished(&mut self, _step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {}
    fn waiting(&mut self, step: &Step, silent: &[String], up_to: Duration) {
        self.waits.push((step.id.clone(), silent.to_vec(), up_to));
    }
    fn step_begins(&mut self, step: &Step) -> BetweenSteps {
        if self.touches.as_deref() == Some(step.id.as_str()) {
            BetweenSteps::Touched
        } else {
            BetweenSteps::Untouched
        }
    }
}

#[test]
fn a_host_that_answers_again_within_the_wait_lets_the_run_go_on() {
    let (t, plan) = loopback_first_step();
    let mut transport = Rebooting { t: t.clone(), silent: "lab-wk-1".to_string(), silent_for: 1, tried: 0 };
    let mut journal = Journal::in_memory();
    let mut told = ToldOfWaits::default();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut told, waiting(2)).run().unwrap();
    // The operator is told once, with what does not answer and for how long it is waited for.
    assert_eq!(told.waits.len(), 1, "{:?}", told.waits);
    let (step, silent, up_to) = &told.waits[0];
    assert_eq!((step.as_str(), *up_to), (plan.steps[0].id.as_str(), Duration::from_secs(2)));
    assert!(silent.iter().any(|s| s.starts_with("lab-wk-1: ") && s.contains("connection refused")), "{silent:?}");
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    let waited = journal
        .records
        .iter()
        .any(|r| matches!(&r.event, Event::Observed { when, drift, .. } if when == "after-waiting" && drift.is_empty()));
    assert!(waited, "the wait and its clean look are journalled");
}

#[test]
fn a_host_still_silent_after_the_wait_is_taken_as_dead_and_the_run_halts() {
    let (t, plan) = loopback_first_step();
    let mut transport = Rebooting { t: t.clone(), silent: "lab-wk-1".to_string(), silent_for: usize::MAX, tried: 0 };
    let mut journal = Journal::in_memory();
    let started = std::time::Instant::now();
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, waiting(1)).run().unwrap();
    let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert!(halt.drift.iter().any(|d| d.node == "lab-wk-1"), "{:?}", halt.drift);
    assert!(transport.tried >= 2, "looked again: {}", transport.tried);
}

pub(super) fn homelab() -> (Topology, Plan) {
    let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("the homelab is valid"));
    let plan = plan_model::planner::generate(&t);
    (t, plan)
}

#[test]
fn a_resume_after_a_rollback_runs_the_undone_steps_again() {
    let (t, plan) = homelab();
    let i = plan.steps.iter().position(|s| s.phase == "4" && s.id != "4.1").expect("a cut-over step after the first");
    let halted_at = plan.steps[i].id.clone();
    let mut journal = Journal::in_memory();
    let mut transport = FailsAt { step: halted_at.clone(), inner: Recorder::default() };
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options(false)).run().unwrap();
    assert!(matches!(outcome, Outcome::Halted(ref h) if h.step == halted_at), "{outcome:?}");
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options(true)).rollback().unwrap();
    let RollbackOutcome::Done { reopened, .. } = outcome else { panic!("{outcome:?}") };
    let phase: Vec<String> = plan.steps[..=i].iter().filter(|s| s.phase == "4").map(|s| s.id.clone()).collect();
    assert_eq!(reopened, phase);
    let progress = Progress::from_records(&journal.records);
    assert!(phase.iter().all(|id| !progress.completed.contains(id)), "pending again: {progress:?}");

    let mut resumed = Recorder::default();
    let outcome = Runner::new(&t, &plan, &mut resumed, &mut journal, &mut Yes, options(true)).run().unwrap();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    for id in &phase {
        assert!(resumed.commands.iter().any(|c| c.step == *id), "{id} ran again");
    }
    assert!(
        !resumed.commands.iter().any(|c| plan.steps.iter().position(|s| s.id == c.step) < plan.steps.iter().position(|s| s.id == phase[0])),
        "nothing before the phase ran again"
    );
    let progress = Progress::from_records(&journal.records);
    assert!(progress.finished && progress.rolled_back.is_none(), "the current truth: {progress:?}");
}

#[test]
fn the_undone_steps_are_those_the_recovery_takes_the_twin_back_over() {
    // Checked two ways: the steps `reopened_by` names, and the state the twin's recovery
    // leaves: the state before the first of them.
    let (t, plan) = homelab();
    let (mut transport, mut journal, mut operator) = (Recorder::default(), Journal::in_memory(), Yes);
    let runner = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, options(false));
    let mut checked = 0;
    for i in 0..plan.steps.len() {
        let after = runner.prediction.after(i);
        let recovery = Recovery::best_of(runner.choices(i, after, false), after);
        let reopened = reopened_by(&plan, i, &recovery.kind);
        let first = plan.steps.iter().position(|s| s.id == reopened[0]).expect("a step of the plan");
        if matches!(recovery.kind, RecoveryKind::Rollback { .. }) {
            let before = runner.prediction.before(first);
            // What a rollback leaves behind on purpose, and a re-run of the steps makes again:
            // the VM snapshot, the cert backup, the template check, uploaded certs, a token.
            let mut undone = recovery.expected;
            undone.clock_s = before.clock_s;
            undone.vm_snapshot = before.vm_snapshot;
            undone.cert_backup = before.cert_backup;
            undone.template_version_ok = before.template_version_ok;
            undone.template_declared = before.template_declared;
            undone.vm_declared = before.vm_declared;
            undone.certs_uploaded_s = before.certs_uploaded_s;
            undone.token_s = before.token_s;
            let diff = plan_model::diff::state_diff(before, &undone, &t);
            assert!(diff.is_empty(), "halt in {} reopens {reopened:?}, but the recovery leaves {diff:?}", plan.steps[i].id);
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} rollback points");
}

/// Records like [`Recorder`]; the join's probe answers `took_effect`.
struct Probed {
    took_effect: bool,
    inner: Recorder,
}

impl Transport for Probed {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let done = self.inner.run(place, request)?;
        let probe = request.shell == "sudo test -e /etc/kubernetes/kubelet.conf";
        Ok(if probe && !self.took_effect { Completed { exit: Some(1), ..done } } else { done })
    }
}

/// A journal as the executor leaves it when it dies inside the first command of operation
/// `op` of `step`: the command started, nothing after.
fn died_inside(t: &Topology, plan: &Plan, step: &str, op: &str) -> Journal {
    let mut journal = Journal::in_memory();
    let outcome = Runner::new(t, plan, &mut Recorder::default(), &mut journal, &mut Yes, options(false)).run().unwrap();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    let i = plan.steps.iter().position(|s| s.id == step).expect("the step");
    let command = (0..plan.steps[i].commands.len()).find(|&c| plan.steps[i].operation_of(t, c).is_some_and(|o| o.name() == op));
    let mut compiler = Compiler::new(t);
    let invocations: Vec<Invocation> = plan.steps[..=i].iter().map(|s| compiler.step(s)).last().unwrap_or_default();
    let j = invocations.iter().position(|inv| Some(inv.command) == command && !matches!(inv.work, crate::invocation::Work::Relay { .. }));
    let j = j.expect("the operation's command");
    // Keep everything up to the command's start; the executor died there.
    let cut = journal
        .records
        .iter()
        .position(|r| matches!(&r.event, Event::CommandStarted { step: s, index, .. } if s == step && *index == j))
        .expect("the command started");
    journal.records.truncate(cut + 1);
    journal
}

fn five_masters() -> (Topology, Plan) {
    let text = include_str!("../../../scenarios/five-masters.yaml");
    let t = Topology::new(&plan_model::validate::parse_scenario(text).expect("five masters is valid"));
    let plan = plan_model::planner::generate(&t);
    (t, plan)
}

#[test]
fn a_join_cut_off_by_the_executors_death_is_probed_and_not_run_twice() {
    for (t, plan) in [homelab(), five_masters()] {
        join_cut_off_in(&t, &plan);
    }
}

fn join_cut_off_in(t: &Topology, plan: &Plan) {
    for (took_effect, runs_again) in [(true, false), (false, true)] {
        let mut journal = died_inside(t, plan, "2.5", "join");
        let mut transport = Probed { took_effect, inner: Recorder::default() };
        let outcome = Runner::new(t, plan, &mut transport, &mut journal, &mut Yes, options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
        let in_25: Vec<&str> = transport.inner.commands.iter().filter(|c| c.step == "2.5").map(|c| c.shell.as_str()).collect();
        assert!(in_25.iter().any(|c| c.contains("test -e /etc/kubernetes/kubelet.conf")), "probed: {in_25:?}");
        assert_eq!(in_25.iter().any(|c| c.contains("--control-plane")), runs_again, "took effect {took_effect}: {in_25:?}");
        // Before it runs again, what the cut join left is cleaned up: its member removed (by its
        // address) from the first master, then reset on the node; never when it took effect.
        let cleanup: Vec<(String, &str)> =
            transport.inner.commands.iter().filter(|c| c.step == "cleanup:2.5").map(|c| (c.place.clone(), c.shell.as_str())).collect();
        if runs_again {
            let node = t.new_masters().next().expect("a new master joins at 2.5");
            let address = t.node(node).address.to_string();
            assert_eq!(cleanup.len(), 2, "{cleanup:?}");
            // The member first, while its etcd still runs; then reset stops it.
            assert!(cleanup[0].1.contains("member remove") && cleanup[0].1.contains(&format!("'//{address}:'")), "{cleanup:?}");
            assert_eq!(cleanup[0].0, t.name(t.existing_master()), "removed from the first master: {cleanup:?}");
            assert!(cleanup[1].0 == t.name(node) && cleanup[1].1 == "sudo kubeadm reset --force", "{cleanup:?}");
            let reset_at = transport.inner.commands.iter().position(|c| c.step == "cleanup:2.5").expect("the cleanup ran");
            let join_at = transport.inner.commands.iter().position(|c| c.shell.contains("--control-plane")).expect("the join ran");
            assert!(reset_at < join_at, "the cleanup runs before the join");
        } else {
            assert!(cleanup.is_empty(), "a join that took effect is not undone: {cleanup:?}");
        }
    }
}

#[test]
fn a_command_that_may_run_twice_is_run_again_without_a_probe() {
    let (t, plan) = homelab();
    let mut journal = died_inside(&t, &plan, "2.3", "upload-certs");
    let mut transport = Probed { took_effect: false, inner: Recorder::default() };
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options(true)).run().unwrap();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    let in_23: Vec<&str> = transport.inner.commands.iter().filter(|c| c.step == "2.3").map(|c| c.shell.as_str()).collect();
    assert_eq!(in_23.len(), 1, "the upload ran once more, nothing probed: {in_23:?}");
}

#[test]
fn a_shell_operation_cut_off_halts_with_the_choices() {
    let (t, mut plan) = homelab();
    let i = plan.steps.iter().position(|s| s.id == "6.3").expect("6.3");
    plan.steps[i].operations.insert(0, plan_model::operation::Operation::Shell { run: "scripts/publish-docs".to_string(), at: None });
    plan.steps[i].derive(&t).expect("a shell operation fits");
    let mut journal = died_inside(&t, &plan, "6.3", "shell");
    let mut transport = Probed { took_effect: true, inner: Recorder::default() };
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options(true)).run().unwrap();
    let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
    assert_eq!(halt.step, "6.3");
    assert!(halt.reason.contains("must not run twice") && halt.reason.contains("--rerun-step"), "{}", halt.reason);
    assert!(!transport.inner.commands.iter().any(|c| c.shell.contains("publish-docs")), "not run blindly");
}

#[test]
fn every_step_watches_etcd_the_load_balancer_and_the_api_once_they_exist() {
    let (t, plan) = homelab();
    let mut journal = Journal::in_memory();
    let mut transport = Recorder::default();
    let mut operator = Yes;
    let runner = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, options(false));
    for (i, step) in plan.steps.iter().enumerate() {
        let scope = runner.scope(i);
        assert!(scope.etcd && scope.kube && scope.files, "{}: {scope:?}", step.id);
        let frontend = runner.prediction.before(i).lb_running.frontend;
        assert!(scope.lb || !frontend, "{}: the load balancer is watched once its frontend runs", step.id);
    }
    // A step that touches neither etcd nor the load balancer (4.2 flips kubelets) still reads both.
    let flip = plan.steps.iter().position(|s| s.id == "4.2").expect("4.2");
    let concerned = Scope::of_step(runner.prediction.before(flip), runner.prediction.after(flip), &plan.steps[flip].actions);
    assert!(!concerned.etcd && !concerned.lb, "4.2 alone concerns neither: {concerned:?}");
    assert!(runner.scope(flip).etcd && runner.scope(flip).lb);
}

/// A transport whose workstation is another machine: answers `od` there with `file`'s bytes,
/// records the rest.
struct OnBastion {
    workstation: crate::workstation::WorkstationHost,
    file: Vec<u8>,
    /// (label, shell) of what ran at the workstation's places.
    on_workstation: Vec<(String, String)>,
    /// (host, shell, stdin) of what ran on hosts.
    on_hosts: Vec<(String, String, Vec<u8>)>,
}

impl Transport for OnBastion {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let mut stdout = String::new();
        match place {
            Place::Local { on: Some(_), .. } => {
                self.on_workstation.push((place.label(), request.shell.to_string()));
                // What `od -An -v -tx1` prints: 16 bytes a line, each as two hex digits.
                for line in self.file.chunks(16) {
                    stdout.push_str(&line.iter().map(|b| format!(" {b:02x}")).collect::<String>());
                    stdout.push('\n');
                }
            }
            Place::Local { on: None, .. } => panic!("a workstation command ran here: {}", request.shell),
            Place::Host(host) => {
                self.on_hosts.push((host.name.clone(), request.shell.to_string(), request.stdin.unwrap_or_default().to_vec()))
            }
        }
        Ok(Completed { exit: Some(0), stdout, stderr: String::new(), duration: Duration::ZERO })
    }

    fn workstation(&self) -> Option<&crate::workstation::WorkstationHost> {
        Some(&self.workstation)
    }
}

#[test]
fn with_the_workstation_on_another_machine_its_commands_and_uploads_files_are_there() {
    let (t, plan) = homelab();
    let workstation = crate::workstation::WorkstationHost::parse("ops@bastion").unwrap();
    // Not text: every byte must arrive as it is.
    let file: Vec<u8> = (0..=255u8).rev().collect();
    let mut transport =
        OnBastion { workstation: workstation.clone(), file: file.clone(), on_workstation: Vec::new(), on_hosts: Vec::new() };
    let (mut journal, mut operator) = (Journal::in_memory(), Yes);
    let mut runner = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, RunOptions { observe: true, ..options(false) });
    let mut places = std::collections::BTreeSet::new();
    for invocation in runner.compiled.iter().flatten() {
        match &invocation.work {
            Work::Shell { place: place @ Place::Local { on, .. }, .. } => {
                assert_eq!(on.as_ref(), Some(&workstation), "compiled for the transport's workstation");
                places.insert(place.label());
            }
            Work::Upload { from, .. } => assert_eq!(from.as_ref(), Some(&workstation)),
            _ => {}
        }
    }
    assert_eq!(places.into_iter().collect::<Vec<_>>(), ["infra-repo@bastion", "workstation@bastion"]);
    let (i, upload) = runner
        .compiled
        .iter()
        .enumerate()
        .find_map(|(i, step)| step.iter().find(|inv| matches!(inv.work, Work::Upload { .. })).map(|inv| (i, inv.clone())))
        .expect("the homelab uploads the LB's bootstrap script");
    let Work::Upload { host, local, remote, .. } = &upload.work else { unreachable!("found as an upload") };
    let step = plan.steps[i].id.clone();
    assert!(runner.execute(&step, &upload).unwrap().success());
    drop(runner);
    assert_eq!(transport.on_workstation, [("workstation@bastion".to_string(), format!("od -An -v -tx1 {local}"))]);
    assert_eq!(transport.on_hosts, [(host.name.clone(), format!("cat > {remote}"), file)]);
}

/// The loopback hosts as the twin has them through phase 0 and into phase 1: the apiserver
/// cert carries the VIP once a command of 0.3 (its regeneration) ran; counts the looks (one
/// read of lab-cp-1's kubelet.conf each).
struct PhaseZero {
    hosts: Rebooting,
    regenerated: bool,
    looks: usize,
    /// The step whose look after it first finds lab-cp-1's kubelet.conf on the VIP (a fact that
    /// settles a second later), and the step of the last command run.
    differs_once_after: Option<String>,
    last_step: String,
}

impl Transport for PhaseZero {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        self.regenerated |= request.step == "0.3";
        self.last_step = request.step.to_string();
        self.hosts.run(place, request)
    }

    fn read_file(&mut self, host: &crate::target::HostTarget, path: &str) -> Result<crate::transport::FileRead, ExecError> {
        if host.name == "lab-cp-1" && path != crate::observe::APISERVER_CERT && self.differs_once_after.as_ref() == Some(&self.last_step) {
            self.differs_once_after = None;
            self.looks += 1;
            let vip = self.hosts.t.scenario.control_plane_endpoint.vip;
            return Ok(crate::transport::FileRead::Present(format!("    server: https://{vip}:6443\n")));
        }
        if path == crate::observe::APISERVER_CERT && self.regenerated {
            let vip = self.hosts.t.scenario.control_plane_endpoint.vip.to_string();
            let address = host.address.to_string();
            return Ok(crate::transport::FileRead::Present(crate::observe::tests::cert_pem(&[&host.name, &address, &vip])));
        }
        self.looks += usize::from(host.name == "lab-cp-1" && path != crate::observe::APISERVER_CERT);
        self.hosts.read_file(host, path)
    }
}

/// Phase 0 and the first step of phase 1 of the loopback plan run against [`PhaseZero`], the
/// operator touching the hosts as `touches` begins: the journal's looks before each step (its
/// `when`), and how many looks were taken.
fn looks_before(touches: &str) -> (Vec<(String, String)>, usize) {
    looks_before_with(touches, None)
}

/// [`looks_before`], the look after `differs_once_after` first finding a difference that settles.
fn looks_before_with(touches: &str, differs_once_after: Option<&str>) -> (Vec<(String, String)>, usize) {
    let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/loopback.yaml")).expect("the loopback scenario is valid"));
    let mut plan = plan_model::planner::generate(&t);
    let first_of_phase_1 = plan.steps.iter().position(|s| s.phase == "1").expect("phase 1");
    plan.steps.truncate(first_of_phase_1 + 1);
    let hosts = Rebooting { t: t.clone(), silent: String::new(), silent_for: 0, tried: 0 };
    let differs_once_after = differs_once_after.map(str::to_string);
    let mut transport = PhaseZero { hosts, regenerated: false, looks: 0, differs_once_after, last_step: String::new() };
    let mut journal = Journal::in_memory();
    let mut operator = ToldOfWaits { touches: Some(touches.to_string()), ..ToldOfWaits::default() };
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, waiting(1)).run().unwrap();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    let before = journal
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Observed { step, when, drift } if when.starts_with("before") => {
                assert!(drift.is_empty(), "{step} {when}: {drift:?}");
                Some((step.clone(), when.clone()))
            }
            _ => None,
        })
        .collect();
    (before, transport.looks)
}

#[test]
fn the_look_after_a_step_stands_for_the_next_ones_before_where_no_one_was_asked() {
    let (before, looks) = looks_before("none");
    let whens: Vec<(&str, &str)> = before.iter().map(|(s, w)| (s.as_str(), w.as_str())).collect();
    assert_eq!(
        whens,
        [
            ("0.1", "before"),
            ("0.2", "before-reused"),
            ("0.3", "before-reused"),
            ("0.4", "before-reused"),
            ("0.6", "before-reused"),
            ("1.1", "before-reused")
        ],
        "a new phase confirmed without asking anyone (--yes) takes the look after the step before"
    );
    // Six steps, each looked at after it, and one look before: seven, not twelve.
    assert_eq!(looks, 7);
    // Hosts the operator touched as a step begins are looked at afresh, and the step after it
    // takes that step's look after.
    let (before, looks) = looks_before("0.3");
    let fresh: Vec<&str> = before.iter().filter(|(_, w)| w == "before").map(|(s, _)| s.as_str()).collect();
    assert_eq!(fresh, ["0.1", "0.3"]);
    assert_eq!(looks, 8);
    // A phase a person confirmed on a terminal says so as its first step begins (the terminal
    // operator's `Touched`): looked at afresh.
    let (before, _) = looks_before("1.1");
    let fresh: Vec<&str> = before.iter().filter(|(_, w)| w == "before").map(|(s, _)| s.as_str()).collect();
    assert_eq!(fresh, ["0.1", "1.1"]);
    // A look after a step that had to settle (one clean look after a difference) does not stand
    // for the next step's: it looks again, as a fact that flaps is caught there.
    let (before, looks) = looks_before_with("none", Some("0.2"));
    let fresh: Vec<&str> = before.iter().filter(|(_, w)| w == "before").map(|(s, _)| s.as_str()).collect();
    assert_eq!(fresh, ["0.1", "0.3"]);
    assert_eq!(looks, 9, "seven, the settling look and 0.3's");
}
