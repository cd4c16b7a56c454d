//! By-hand work done while the run was halted at it (`plan execute --resume --by-hand-done`).
//!
//! Unattended (`--yes`), a by-hand command halts the run: nobody is there to say it was done. The
//! halt journals which command it waits for (`Halted::by_hand`) and names it with the by-hand
//! commands right after it in the step ([`by_hand_run`]: a step's edits, done in one sitting);
//! the operator does the work and resumes with `--by-hand-done`, which confirms those commands
//! and no other. The run journals each as the operator's answer at a prompt would be
//! (`command-started` at place `operator`, `command-finished` "done by hand") and goes on, to
//! halt again at the next by-hand command after one that runs by itself.

use super::Runner;
use crate::invocation::{by_hand_run, Invocation};
use crate::journal::Progress;
use crate::ExecError;

impl Runner<'_> {
    /// The by-hand commands the journal's last halt waits for, as (step, indices in the step):
    /// what `--by-hand-done` confirms ([`by_hand_run`] from the command the halt journalled).
    ///
    /// # Errors
    /// [`ExecError::Input`] (nothing is journalled) when the run is not resumed, when the journal
    /// shows no halt, or when its last halt is not at by-hand work: the message names what the
    /// run stopped at.
    pub(super) fn by_hand_done(&self, progress: &Progress) -> Result<(String, std::ops::Range<usize>), ExecError> {
        if !self.options.resume {
            return Err(ExecError::Input(
                "--by-hand-done goes with --resume: it confirms the by-hand work a halted run waits for".to_string(),
            ));
        }
        let Some(halted) = &progress.halted else {
            let state = if progress.finished {
                "the run finished".to_string()
            } else if let Some(step) = &progress.rolled_back {
                format!("the halt at step {step} was rolled back")
            } else if let Some(step) = &progress.interrupted {
                format!("the run was interrupted in step {step} (the executor was killed or the machine went down), not halted")
            } else {
                "the run has not halted".to_string()
            };
            return Err(ExecError::Input(format!(
                "--by-hand-done: the journal shows no halt at by-hand work ({state}); nothing was taken as done: resume without --by-hand-done"
            )));
        };
        let step = self.plan.steps.iter().position(|s| s.id == halted.step);
        let waits_for = halted.by_hand.filter(|&j| step.and_then(|i| self.compiled[i].get(j)).is_some_and(Invocation::is_manual));
        match (waits_for, step) {
            (Some(j), Some(i)) => Ok((halted.step.clone(), by_hand_run(&self.compiled[i], j))),
            _ => Err(ExecError::Input(format!(
                "--by-hand-done: the run's last halt, at step {}, is not at by-hand work: {}; nothing was taken as done: deal with that, then resume without --by-hand-done",
                halted.step, halted.reason
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{homelab, options, Yes};
    use super::super::*;
    use crate::journal::Record;
    use crate::transport::Recorder;

    /// Says yes to everything but by-hand work, as `--yes` does: nobody is there to do it.
    struct Unattended {
        /// The by-hand work taken as done without asking (`Operator::done_by_hand`).
        confirmed: Vec<String>,
    }

    impl Operator for Unattended {
        fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
            true
        }
        fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
            true
        }
        fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &HandTask) -> bool {
            false
        }
        fn starting(&mut self, _step: &Step, _index: usize, _invocation: &Invocation, _eta_s: u32) {}
        fn finished(&mut self, _step: &Step, _invocation: &Invocation, _done: &Result<Completed, String>) {}
        fn done_by_hand(&mut self, step: &Step, _instruction: &str) {
            self.confirmed.push(step.id.clone());
        }
    }

    fn by_hand_done() -> RunOptions {
        RunOptions { by_hand_done: true, ..options(true) }
    }

    /// Runs (or resumes) unattended and returns the halt.
    fn unattended(t: &Topology, plan: &Plan, journal: &mut Journal, options: RunOptions) -> (Box<Halt>, Vec<String>, Recorder) {
        let mut operator = Unattended { confirmed: Vec::new() };
        let mut transport = Recorder::default();
        let outcome = Runner::new(t, plan, &mut transport, journal, &mut operator, options).run().unwrap();
        let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
        (halt, operator.confirmed, transport)
    }

    /// The (step, index) of every command the journal shows done by hand, in order.
    fn done_by_hand_in(records: &[Record]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for pair in records.windows(2) {
            if let (Event::CommandStarted { step, index, place, .. }, Event::CommandFinished { output, exit, .. }) =
                (&pair[0].event, &pair[1].event)
            {
                if place == "operator" && output == "done by hand" && *exit == Some(0) {
                    out.push((step.clone(), *index));
                }
            }
        }
        out
    }

    /// The plan's by-hand work in order, as each halt waits for it: (step, the indices of by-hand
    /// commands in a row in the step, none of them run by itself between).
    fn by_hand_runs(t: &Topology, plan: &Plan) -> Vec<(String, std::ops::Range<usize>)> {
        let compiled = crate::invocation::compile(t, plan);
        let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for (step, invocations) in plan.steps.iter().zip(&compiled) {
            for j in (0..invocations.len()).filter(|&j| invocations[j].is_manual()) {
                match out.last_mut() {
                    Some((id, run)) if *id == step.id && run.end == j => run.end = j + 1,
                    _ => out.push((step.id.clone(), j..j + 1)),
                }
            }
        }
        out
    }

    /// Every (step, index) of `runs`, in order.
    fn each_command(runs: &[(String, std::ops::Range<usize>)]) -> Vec<(String, usize)> {
        runs.iter().flat_map(|(id, run)| run.clone().map(move |j| (id.clone(), j))).collect()
    }

    #[test]
    fn an_unattended_run_halts_at_by_hand_work_and_the_journal_says_which_command_waits() {
        let (t, plan) = homelab();
        let first = by_hand_runs(&t, &plan)[0].clone();
        let mut journal = Journal::in_memory();
        let (halt, _, _) = unattended(&t, &plan, &mut journal, options(false));
        assert_eq!((halt.step.clone(), halt.by_hand), (first.0.clone(), Some(first.1.start)));
        assert!(halt.reason.starts_with("needs the operator: "), "{}", halt.reason);
        assert_eq!(halt.reason.matches("; then ").count(), first.1.len() - 1, "{}", halt.reason);
        let halted = Progress::from_records(&journal.records).halted.expect("halted");
        assert_eq!(halted.by_hand, Some(first.1.start));
        // Resumed as before, unattended, it halts there again, forever.
        let (again, confirmed, _) = unattended(&t, &plan, &mut journal, options(true));
        assert_eq!((again.step, again.by_hand), (first.0, Some(first.1.start)));
        assert!(confirmed.is_empty() && done_by_hand_in(&journal.records).is_empty());
    }

    #[test]
    fn by_hand_done_confirms_the_by_hand_commands_the_halt_named_and_halts_at_the_next() {
        let (t, plan) = homelab();
        let runs = by_hand_runs(&t, &plan);
        // Fewer halts than by-hand commands, and no run spans a command that runs by itself.
        let compiled = crate::invocation::compile(&t, &plan);
        assert!(runs.len() < each_command(&runs).len(), "{runs:?}");
        let mut journal = Journal::in_memory();
        unattended(&t, &plan, &mut journal, options(false));
        for k in 1..runs.len().min(8) {
            let (halt, confirmed, _) = unattended(&t, &plan, &mut journal, by_hand_done());
            let (id, run) = &runs[k - 1];
            assert_eq!(confirmed, vec![id.clone(); run.len()], "the commands the halt named, taken as done, told to the operator");
            assert_eq!(
                (halt.step.clone(), halt.by_hand),
                (runs[k].0.clone(), Some(runs[k].1.start)),
                "halted at the next: {}",
                halt.reason
            );
            // One halt names every command of its run (1.1: the VIP, its alias, IPAM, DNS).
            assert_eq!(halt.reason.matches("; then ").count(), runs[k].1.len() - 1, "{}", halt.reason);
            assert_eq!(done_by_hand_in(&journal.records), each_command(&runs[..k]), "journalled as an answer at a prompt is");
            // Between two halts in one step, something ran by itself.
            if runs[k].0 == *id {
                let i = plan.steps.iter().position(|s| s.id == *id).expect("the step");
                assert!(compiled[i][run.end..runs[k].1.start].iter().any(|inv| !inv.is_manual()), "{id}: {run:?} then {:?}", runs[k].1);
            }
        }
    }

    #[test]
    fn by_hand_done_is_refused_when_the_last_halt_is_not_at_by_hand_work() {
        let (t, plan) = homelab();
        // A command that fails: the halt is at step 0.1, no by-hand work.
        let mut journal = Journal::in_memory();
        struct Fails;
        impl Transport for Fails {
            fn run(&mut self, _place: &Place, _request: &Request<'_>) -> Result<Completed, ExecError> {
                Ok(Completed { exit: Some(1), stdout: String::new(), stderr: "no".to_string(), duration: Duration::ZERO })
            }
        }
        let outcome = Runner::new(&t, &plan, &mut Fails, &mut journal, &mut Yes, options(false)).run().unwrap();
        assert!(matches!(outcome, Outcome::Halted(ref h) if h.step == "0.1" && h.by_hand.is_none()), "{outcome:?}");
        let records = journal.records.len();
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut journal, &mut Yes, by_hand_done()).run().unwrap_err();
        let message = refused.to_string();
        assert!(matches!(refused, ExecError::Input(_)), "{message}");
        assert!(message.contains("last halt, at step 0.1, is not at by-hand work") && message.contains("ended with exit 1"), "{message}");
        assert_eq!(journal.records.len(), records, "nothing journalled");

        // No halt at all: a run that finished, a fresh journal.
        let mut finished = Journal::in_memory();
        Runner::new(&t, &plan, &mut Recorder::default(), &mut finished, &mut Yes, options(false)).run().unwrap();
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut finished, &mut Yes, by_hand_done()).run().unwrap_err();
        assert!(refused.to_string().contains("no halt at by-hand work (the run finished)"), "{refused}");
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut Journal::in_memory(), &mut Yes, by_hand_done()).run();
        assert!(matches!(refused, Err(ExecError::Input(_))), "{refused:?}");
        // Not resuming.
        let fresh = RunOptions { by_hand_done: true, ..options(false) };
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut Journal::in_memory(), &mut Yes, fresh).run().unwrap_err();
        assert!(refused.to_string().contains("goes with --resume"), "{refused}");
    }

    #[test]
    fn a_halt_for_another_cause_before_the_confirmed_command_is_reached_uses_the_confirmation_up() {
        // The confirmation is of the halt it answers: once the run halted elsewhere, it is gone.
        let (t, plan) = homelab();
        let by_hand = by_hand_runs(&t, &plan);
        let mut journal = Journal::in_memory();
        unattended(&t, &plan, &mut journal, options(false));
        static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
        let stopped = RunOptions { stop: Some(&STOP), ..by_hand_done() };
        let (halt, confirmed, _) = unattended(&t, &plan, &mut journal, stopped);
        assert!(halt.reason.starts_with("stopped by the operator") && confirmed.is_empty(), "{}", halt.reason);
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut journal, &mut Yes, by_hand_done()).run().unwrap_err();
        assert!(refused.to_string().contains(&format!("at step {}, is not at by-hand work", by_hand[0].0)), "{refused}");
    }

    #[test]
    fn a_halt_at_by_hand_work_tells_the_operator_at_once_without_waiting_for_what_is_silent() {
        // The loopback scenario's hypervisor stops answering. The look before the first by-hand
        // step does not look at hypervisors; the halt's look does, and waits for a silent one after a failure. At
        // by-hand work nothing failed: the operator is told at once, the hypervisor named silent.
        let (t, _) = super::super::tests::loopback_first_step();
        let mut plan = plan_model::planner::generate(&t);
        let first = by_hand_runs(&t, &plan)[0].0.clone();
        let by_hand = plan.steps.iter().position(|s| s.id == first).expect("the step");
        plan.steps.truncate(by_hand + 1);
        let hypervisor = t.scenario.hypervisors[0].name.clone();
        // The hypervisor runs the plan's commands (0.1 reads its RAM) and then stops answering.
        struct SilentAfterItsCommands(super::super::tests::Rebooting, bool);
        impl Transport for SilentAfterItsCommands {
            fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
                let hypervisor = matches!(place, Place::Host(h) if h.name == self.0.silent);
                self.1 |= hypervisor && request.step != "observe";
                if hypervisor && request.step == "observe" && self.1 {
                    return Err(ExecError::Ssh { host: self.0.silent.clone(), reason: "connection refused".to_string() });
                }
                Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
            }
            fn read_file(&mut self, host: &crate::target::HostTarget, path: &str) -> Result<crate::transport::FileRead, ExecError> {
                self.0.read_file(host, path)
            }
        }
        let answers = super::super::tests::Rebooting { t: t.clone(), silent: hypervisor.clone(), silent_for: 0, tried: 0 };
        let mut transport = SilentAfterItsCommands(answers, false);
        let mut journal = Journal::in_memory();
        let mut operator = Unattended { confirmed: Vec::new() };
        let options =
            RunOptions { observe: true, host_wait: Duration::from_secs(30), host_poll: Some(Duration::from_secs(1)), ..options(false) };
        let started = std::time::Instant::now();
        let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, options).run().unwrap();
        let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
        assert_eq!((halt.step.as_str(), halt.by_hand.is_some()), (first.as_str(), true), "{}", halt.reason);
        assert!(started.elapsed() < Duration::from_secs(10), "no 30 s wait at by-hand work: {:?}", started.elapsed());
        assert!(halt.drift.iter().any(|d| d.node == hypervisor && crate::observe::is_unreachable(d)), "{:?}", halt.drift);
        let waited = journal.records.iter().any(|r| matches!(&r.event, Event::Observed { when, .. } if when == "after-waiting"));
        assert!(!waited, "no wait journalled");
    }

    /// The join secrets' sweep at each by-hand halt of an unattended run resumed with
    /// `--by-hand-done` until the first halt after `until`: (halted step, swept at that halt).
    fn halts_until(until: &str) -> (Vec<(String, bool)>, Journal, Topology, Plan) {
        let (t, plan) = homelab();
        let mut journal = Journal::in_memory();
        let mut halts = Vec::new();
        let mut options = options(false);
        loop {
            let before = journal.records.len();
            let (halt, _, _) = unattended(&t, &plan, &mut journal, options.clone());
            let swept = journal.records[before..].iter().any(|r| matches!(r.event, Event::SecretsSwept { .. }));
            halts.push((halt.step.clone(), swept));
            if plan.steps.iter().position(|s| s.id == halt.step) > plan.steps.iter().position(|s| s.id == until) {
                return (halts, journal, t, plan);
            }
            options = by_hand_done();
        }
    }

    #[test]
    fn secrets_the_run_writes_again_after_a_sweep_are_swept_at_the_next_halt() {
        // Unattended, every by-hand halt after 2.3 sweeps the join secrets; resumed past it, the
        // run's own 3.3 and 3.4 write them again for 3.5's join; the next halt (3.6, by hand)
        // must sweep them again, not take them as swept still.
        let (halts, journal, _, _) = halts_until("3.5");
        let swept_at = |step: &str| halts.iter().find(|(s, _)| s == step).map(|(_, swept)| *swept);
        assert_eq!(swept_at("2.6"), Some(true), "{halts:?}");
        assert_eq!(swept_at("2.8"), Some(false), "nothing written since the sweep at 2.6: {halts:?}");
        assert_eq!(swept_at("3.6"), Some(true), "3.3 and 3.4 wrote them again: {halts:?}");
        let progress = Progress::from_records(&journal.records);
        assert!(progress.secrets_swept, "{progress:?}");
    }

    #[test]
    fn a_join_resumed_after_a_by_hand_halt_that_swept_the_secrets_gets_them_made_again() {
        // A plan whose join step starts with by-hand work: the halt there (after 2.3 and 2.4
        // wrote the secrets) sweeps them; resumed with --by-hand-done, the join's reads find
        // them made again first, then the run goes on to the next by-hand work.
        let (t, mut plan) = homelab();
        let join = plan.steps.iter().position(|s| s.id == "2.5").expect("2.5");
        let mut by_hand = plan.steps.iter().flat_map(|s| &s.commands).find(|c| c.by_hand).expect("by-hand work").clone();
        by_hand.run = "check the new master's console by hand".to_string();
        plan.steps[join].commands.insert(0, by_hand);
        let mut journal = Journal::in_memory();
        let mut options = options(false);
        let halt = loop {
            let (halt, _, _) = unattended(&t, &plan, &mut journal, options.clone());
            if halt.step == "2.5" {
                break halt;
            }
            options = by_hand_done();
        };
        assert_eq!(halt.by_hand, Some(0));
        assert!(Progress::from_records(&journal.records).secrets_swept, "swept at the halt");
        let (next, confirmed, resumed) = unattended(&t, &plan, &mut journal, by_hand_done());
        assert_eq!(confirmed, vec!["2.5".to_string()]);
        assert_ne!(next.step, "2.5", "{}", next.reason);
        let shells: Vec<&str> = resumed.commands.iter().map(|c| c.shell.as_str()).collect();
        let remade = shells.iter().position(|s| s.contains("upload-certs")).expect("the key made again");
        let joined = shells.iter().position(|s| s.contains("--control-plane")).expect("the join ran");
        assert!(remade < joined, "{shells:?}");
    }
}
