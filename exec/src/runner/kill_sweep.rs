//! The executor killed inside every command of a whole-plan run, then resumed: every run
//! completes, and no command of an operation that must not run twice runs twice.
//!
//! The hosts are a ledger of the commands that reached them; an operation's probe answers from
//! it (yes when one of the operation's commands ran there). A kill lands either before the
//! command reached its host or after it took effect there, both journalled alike (started,
//! never ended).

use super::tests::{homelab, options, Yes};
use super::*;
use plan_model::operation::Rerun;
use std::collections::HashMap;

type Placed = (String, String);

/// The payload of the panic that stands for SIGKILL (quiet: the sweep lands hundreds).
struct Killed;

fn quiet_kills() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Killed>().is_none() {
                previous(info);
            }
        }));
    });
}

/// Commands that reached the hosts, and the probes' answers derived from them.
#[derive(Default)]
struct Ledger {
    ran: Vec<Placed>,
    /// A probe (where it runs, its shell) -> the commands whose effect it looks for.
    probes: HashMap<Placed, Vec<Placed>>,
    /// Transport calls left before the executor is killed; `None`: never.
    kill_after: Option<usize>,
    /// Whether the command the kill lands in took effect on its host.
    took_effect: bool,
}

impl Transport for Ledger {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let placed = (place.label(), request.shell.to_string());
        let done = |exit| Ok(Completed { exit: Some(exit), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO });
        if let Some(looked_for) = self.probes.get(&placed) {
            return done(if looked_for.iter().any(|c| self.ran.contains(c)) { 0 } else { 1 });
        }
        if let Some(left) = self.kill_after.as_mut() {
            if *left == 0 {
                if self.took_effect {
                    self.ran.push(placed);
                }
                std::panic::panic_any(Killed);
            }
            *left -= 1;
        }
        self.ran.push(placed);
        done(0)
    }
}

/// Each probe of the plan, with the commands of its operation, as the executor compiles them.
fn probes(t: &Topology, plan: &Plan) -> HashMap<Placed, Vec<Placed>> {
    let mut compiler = Compiler::new(t);
    let mut out = HashMap::new();
    for step in &plan.steps {
        let invocations = compiler.step(step);
        for (k, operation) in step.operations.iter().enumerate() {
            let Some(probe) = operation.probe(t) else { continue };
            let commands = invocations
                .iter()
                .filter(|inv| step.operation_of(t, inv.command).is_some_and(|o| std::ptr::eq(o, &step.operations[k])))
                .filter_map(|inv| match &inv.work {
                    Work::Shell { place, shell } => Some((place.label(), shell.clone())),
                    _ => None,
                });
            let commands: Vec<Placed> = commands.collect();
            for probe in compiler.probe(step, &probe) {
                if let Work::Shell { place, shell } = probe.work {
                    out.insert((place.label(), shell), commands.clone());
                }
            }
        }
    }
    out
}

/// The commands of operations that must not run twice.
fn not_twice(t: &Topology, plan: &Plan) -> Vec<Placed> {
    let mut compiler = Compiler::new(t);
    let mut out = Vec::new();
    for step in &plan.steps {
        for inv in compiler.step(step) {
            let once = step.operation_of(t, inv.command).is_some_and(|o| o.rerun() == Rerun::ProbeFirst);
            if let (true, Work::Shell { place, shell }) = (once, &inv.work) {
                out.push((place.label(), shell.clone()));
            }
        }
    }
    out
}

#[test]
fn killed_inside_any_command_the_resumed_run_completes_and_runs_nothing_twice() {
    quiet_kills();
    let (t, plan) = homelab();
    let probes = probes(&t, &plan);
    let once = not_twice(&t, &plan);
    let joins = t.new_masters().count();
    assert_eq!(once.len(), 5 + joins, "snapshot, backup, cert move, a join per new master, commit, job: {once:?}");
    let mut whole = Ledger::default();
    let mut journal = Journal::in_memory();
    Runner::new(&t, &plan, &mut whole, &mut journal, &mut Yes, options(false)).run().unwrap();
    let calls = whole.ran.len();
    let mut resumed_runs = 0;
    for kill_after in 0..calls {
        for took_effect in [false, true] {
            let mut ledger = Ledger { probes: probes.clone(), kill_after: Some(kill_after), took_effect, ..Ledger::default() };
            let mut journal = Journal::in_memory();
            let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Runner::new(&t, &plan, &mut ledger, &mut journal, &mut Yes, options(false)).run()
            }));
            assert!(killed.is_err(), "call {kill_after}: the kill landed");
            ledger.kill_after = None;
            let outcome = Runner::new(&t, &plan, &mut ledger, &mut journal, &mut Yes, options(true)).run().unwrap();
            assert!(matches!(outcome, Outcome::Completed), "killed at call {kill_after} (took effect: {took_effect}): {outcome:?}");
            for command in &once {
                let runs = ledger.ran.iter().filter(|c| *c == command).count();
                assert_eq!(runs, 1, "killed at call {kill_after} (took effect: {took_effect}): {command:?} ran {runs} times");
            }
            resumed_runs += 1;
        }
    }
    assert_eq!(resumed_runs, 2 * calls);
    eprintln!("{calls} kill points, each before and after the command took effect: {resumed_runs} resumed runs");
}
