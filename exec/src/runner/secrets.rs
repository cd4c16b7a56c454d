//! The join secrets of a halted run: swept at the halt, made again at the resume.
//!
//! The certificate key and the join command a run writes (`Command::writes`) let whoever reads
//! them join a control-plane node: for two hours (the key, kubeadm's `kubeadm-certs` Secret) and
//! a day (the token). A run that halts does not leave them behind: the halt carries out the
//! plan's own `forget-join-secrets` operation for every master (the tokens the plan made are
//! revoked on the first master, the files deleted on each) and journals the places it could not
//! reach. A resume that comes to a command reading them first runs again the commands that wrote
//! them (both are safe to run twice: a new key, and a new token carrying the plan's description,
//! which the sweep and step 4.6 revoke). The twin does not hold the secrets' files as observed
//! state, so neither the sweep nor the remake is drift.

use super::Runner;
use crate::invocation::Invocation;
use crate::journal::{Event, Progress};
use crate::ExecError;
use plan_model::operation::Operation;
use plan_model::plan::{RunsOn, Step};
use std::collections::BTreeSet;

/// Whether the step deletes the join secrets (the plan's 4.6).
fn forgets(step: &Step) -> bool {
    step.operations.iter().any(|o| matches!(o, Operation::ForgetJoinSecrets { .. }))
}

impl Runner<'_> {
    /// Whether join secrets may be on hosts now: a command that writes them started, no step
    /// that deletes them finished after it, and no sweep since.
    fn secrets_may_be_out(&self, progress: &Progress) -> bool {
        if progress.secrets_swept {
            return false;
        }
        let mut out = false;
        for step in &self.plan.steps {
            let started = progress.started_commands.get(&step.id);
            if step.commands.iter().enumerate().any(|(j, c)| c.writes.is_some() && started.is_some_and(|s| s.contains(&j))) {
                out = true;
            }
            if forgets(step) && progress.completed.contains(&step.id) {
                out = false;
            }
        }
        out
    }

    /// The plan's `forget-join-secrets` for every master, as a step of its own.
    fn sweep_step(&self) -> Step {
        let t = self.t;
        let nodes: Vec<String> = std::iter::once(t.existing_master()).chain(t.new_masters()).map(|m| t.name(m).to_string()).collect();
        let mut sweep = self.plan.steps.iter().find(|s| forgets(s)).unwrap_or(&self.plan.steps[0]).clone();
        sweep.id = "secrets-sweep".to_string();
        sweep.runs_on = RunsOn::Workstation;
        sweep.operations = vec![Operation::ForgetJoinSecrets { nodes }];
        // The operation names only masters of this topology: it always derives.
        if let Err(e) = sweep.derive(t) {
            tracing::error!(error = %e, "the join secrets' sweep does not derive");
            sweep.commands.clear();
        }
        sweep
    }

    /// At a halt: removes the join secrets and revokes the plan's tokens where they may be, and
    /// journals it. Returns the places it could not reach (the operator is told to finish there).
    ///
    /// # Errors
    /// The journal cannot be written, or the guard refused a destination.
    pub(super) fn sweep_join_secrets(&mut self) -> Result<Vec<String>, ExecError> {
        let progress = Progress::from_records(&self.journal.records);
        if !self.secrets_may_be_out(&progress) {
            return Ok(Vec::new());
        }
        let sweep = self.sweep_step();
        let mut left = Vec::new();
        if sweep.commands.is_empty() {
            left.push("every master (the sweep could not be rendered)".to_string());
        }
        for invocation in self.compiler().step(&sweep) {
            match self.execute(&sweep.id, &invocation) {
                Ok(done) if done.success() => {}
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Ok(_) | Err(_) => left.push(invocation.place_label()),
            }
        }
        tracing::info!(left = ?left, "join secrets swept at the halt");
        self.journal.append(Event::SecretsSwept { left: left.clone() })?;
        Ok(left)
    }

    /// Before invocation `j` of step `i` on a resume: what it reads that was swept at the halt
    /// (and not written again since: `swept`) is made again by the commands that wrote it.
    /// `Some(reason)` when that failed (the run halts).
    ///
    /// # Errors
    /// The journal cannot be written, or the guard refused a destination.
    pub(super) fn remake_swept_secrets(&mut self, i: usize, j: usize, swept: &mut BTreeSet<String>) -> Result<Option<String>, ExecError> {
        let command_index = self.compiled[i][j].command;
        let Some(command) = self.plan.steps[i].commands.get(command_index) else { return Ok(None) };
        let missing: Vec<String> = command.reads.iter().filter(|p| swept.contains(*p)).cloned().collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let mut remade: Vec<String> = Vec::new();
        for path in missing {
            let Some((k, writer)) = self.writer_of(&path, i, command_index) else {
                return Ok(Some(format!("{path} was removed at the halt and no command before step {} writes it", self.plan.steps[i].id)));
            };
            let step = self.plan.steps[k].clone();
            let invocations: Vec<Invocation> = self.compiled[k].iter().filter(|inv| inv.command == writer).cloned().collect();
            for (index, invocation) in invocations.iter().enumerate() {
                self.operator.starting(&step, index, invocation, 0);
                let result = self.execute(&step.id, invocation);
                let shown = result.clone().map_err(|e| crate::redact::redact(&e.to_string()));
                self.operator.finished(&step, invocation, &shown);
                match result {
                    Ok(done) if done.success() => {}
                    Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                    Ok(_) | Err(_) => {
                        return Ok(Some(format!(
                            "making {path} again ({} of step {}) failed on {}",
                            invocation.display(),
                            step.id,
                            invocation.place_label()
                        )))
                    }
                }
            }
            swept.remove(&path);
            remade.push(step.id);
        }
        remade.dedup();
        if swept.is_empty() {
            self.journal.append(Event::SecretsRemade { step: remade.join(" ") })?;
        }
        Ok(None)
    }

    /// The last command before command `before` of step `i` that writes `path`: (step, command).
    pub(super) fn writer_of(&self, path: &str, i: usize, before: usize) -> Option<(usize, usize)> {
        (0..=i).rev().find_map(|k| {
            let commands = &self.plan.steps[k].commands;
            let end = if k == i { before } else { commands.len() };
            (0..end.min(commands.len())).rev().find(|&c| commands[c].writes.as_deref() == Some(path)).map(|c| (k, c))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{homelab, options, DropsJoin, Yes};
    use super::super::*;
    use super::forgets;
    use crate::transport::Recorder;
    use plan_model::operation::Operation;
    use plan_model::validate::parse_scenario;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Records like [`Recorder`]; fails every command of `step`, and the sweep's file removal
    /// on the host whose label is `unreachable`.
    struct Failing {
        step: String,
        unreachable: Option<String>,
        inner: Recorder,
    }

    impl Transport for Failing {
        fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
            if request.step == "secrets-sweep" && self.unreachable.as_deref() == Some(place.label().as_str()) {
                return Err(ExecError::Ssh { host: place.label(), reason: "connection refused".to_string() });
            }
            let done = self.inner.run(place, request)?;
            Ok(if request.step == self.step { Completed { exit: Some(1), ..done } } else { done })
        }
    }

    fn halted_at(t: &Topology, plan: &Plan, step: &str, unreachable: Option<&str>) -> (Journal, Failing, Box<Halt>) {
        let mut journal = Journal::in_memory();
        let mut transport = Failing { step: step.to_string(), unreachable: unreachable.map(str::to_string), inner: Recorder::default() };
        let outcome = Runner::new(t, plan, &mut transport, &mut journal, &mut Yes, options(false)).run().unwrap();
        let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
        assert_eq!(halt.step, step);
        (journal, transport, halt)
    }

    fn swept(journal: &Journal) -> Vec<Vec<String>> {
        journal.records.iter().filter_map(|r| if let Event::SecretsSwept { left } = &r.event { Some(left.clone()) } else { None }).collect()
    }

    /// The masters of `t` by name, and the first master's.
    fn masters(t: &Topology) -> Vec<String> {
        std::iter::once(t.existing_master()).chain(t.new_masters()).map(|m| t.name(m).to_string()).collect()
    }

    #[test]
    fn a_halt_after_the_secrets_were_made_sweeps_every_master_and_revokes_the_tokens() {
        for scenario in [include_str!("../../../scenarios/homelab.yaml"), include_str!("../../../scenarios/five-masters.yaml")] {
            let t = Topology::new(&parse_scenario(scenario).expect("valid"));
            let plan = plan_model::planner::generate(&t);
            // The second master's join: the first joined with the secrets, both files are out.
            let joins: Vec<&Step> =
                plan.steps.iter().filter(|s| s.operations.iter().any(|o| matches!(o, Operation::Join { .. }))).collect();
            let (journal, transport, halt) = halted_at(&t, &plan, &joins[1].id, None);
            assert_eq!(swept(&journal), vec![Vec::<String>::new()], "one sweep, nothing left");
            assert!(halt.secrets_left.is_empty());
            let sweep: Vec<&crate::transport::Recorded> = transport.inner.commands.iter().filter(|c| c.step == "secrets-sweep").collect();
            for master in masters(&t) {
                assert!(
                    sweep.iter().any(
                        |c| c.place.contains(&master) && c.shell.contains("rm -f /root/.plan-join-command /root/.plan-certificate-key")
                    ),
                    "{master}: {sweep:?}"
                );
            }
            let m0 = t.name(t.existing_master());
            assert!(sweep.iter().any(|c| c.place.contains(m0) && c.shell.contains("kubeadm token delete")), "{sweep:?}");
        }
    }

    #[test]
    fn a_halt_before_any_secret_was_made_or_after_they_were_deleted_sweeps_nothing() {
        let (t, plan) = homelab();
        let forget = plan.steps.iter().position(forgets).expect("4.6");
        for step in [plan.steps[0].id.clone(), plan.steps[forget + 1].id.clone()] {
            let (journal, transport, _) = halted_at(&t, &plan, &step, None);
            assert!(swept(&journal).is_empty(), "halt at {step}");
            assert!(!transport.inner.commands.iter().any(|c| c.step == "secrets-sweep"), "halt at {step}");
        }
    }

    #[test]
    fn a_host_the_sweep_cannot_reach_is_named() {
        let (t, plan) = homelab();
        let m2 = t.name(t.new_masters().next().expect("a new master")).to_string();
        let (journal, _, halt) = halted_at(&t, &plan, "3.5", Some(&m2));
        assert_eq!(halt.secrets_left.len(), 1, "{:?}", halt.secrets_left);
        assert!(halt.secrets_left[0].contains(&m2));
        assert_eq!(Progress::from_records(&journal.records).secrets_left, halt.secrets_left);
    }

    #[test]
    fn a_resume_after_a_sweep_makes_the_secrets_again_before_the_join_reads_them() {
        let (t, plan) = homelab();
        let (mut journal, _, _) = halted_at(&t, &plan, "3.5", None);
        let mut resumed = Recorder::default();
        let outcome = Runner::new(&t, &plan, &mut resumed, &mut journal, &mut Yes, options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
        let shells: Vec<(&str, &str)> = resumed.commands.iter().map(|c| (c.step.as_str(), c.shell.as_str())).collect();
        let at = |what: &str| shells.iter().position(|(_, shell)| shell.contains(what));
        let (upload, token) = (at("upload-certs").expect("made again"), at("token create").expect("made again"));
        let join = shells.iter().position(|(step, _)| *step == "3.5").expect("the join ran");
        assert!(upload < join && token < join, "{shells:?}");
        assert_eq!(shells.iter().filter(|(_, s)| s.contains("upload-certs")).count(), 1, "made once");
        assert_eq!(shells[upload].0, "3.3", "the last writer of the key before the join");
        let progress = Progress::from_records(&journal.records);
        assert!(!progress.secrets_swept && progress.finished, "{progress:?}");
    }

    /// A join cut after its secrets were copied to the joining host: the halt sweeps them from
    /// every master, the joining one included. The resume of the interrupted step makes them again
    /// and copies them again before the join reads them, though the copies ran before the cut.
    #[test]
    fn a_join_cut_after_its_secrets_were_copied_gets_them_copied_again_when_resumed() {
        for scenario in [include_str!("../../../scenarios/homelab.yaml"), include_str!("../../../scenarios/five-masters.yaml")] {
            let t = Topology::new(&parse_scenario(scenario).expect("valid"));
            let plan = plan_model::planner::generate(&t);
            let join = plan.steps.iter().find(|s| s.operations.iter().any(|o| matches!(o, Operation::Join { .. }))).expect("a join");
            let mut journal = Journal::in_memory();
            let mut cut = DropsJoin { step: join.id.clone(), dropped: false, inner: Recorder::default() };
            let outcome = Runner::new(&t, &plan, &mut cut, &mut journal, &mut Yes, options(false)).run().unwrap();
            assert!(matches!(outcome, Outcome::Halted(ref h) if h.step == join.id), "{outcome:?}");
            assert!(Progress::from_records(&journal.records).secrets_swept);
            let mut resumed = DropsJoin { step: join.id.clone(), dropped: true, inner: Recorder::default() };
            let outcome = Runner::new(&t, &plan, &mut resumed, &mut journal, &mut Yes, options(true)).run().unwrap();
            assert!(matches!(outcome, Outcome::Completed), "{}: {outcome:?}", t.scenario.name);
            let shells: Vec<(&str, &str, &str)> =
                resumed.inner.commands.iter().map(|c| (c.step.as_str(), c.place.as_str(), c.shell.as_str())).collect();
            let first = |what: &dyn Fn(&(&str, &str, &str)) -> bool| shells.iter().position(what);
            let made = first(&|c| c.2.contains("upload-certs")).expect("the key made again");
            let joined = first(&|c| c.0 == join.id && c.2.contains("--control-plane --certificate-key")).expect("the join ran again");
            let copies: Vec<usize> = shells
                .iter()
                .enumerate()
                .filter(|(_, c)| c.0 == join.id && c.2.starts_with("sudo install -m 600 /dev/stdin"))
                .map(|(k, _)| k)
                .collect();
            assert_eq!(copies.len(), 2, "{}: both secrets copied again: {shells:?}", t.scenario.name);
            assert!(copies.iter().all(|k| made < *k && *k < joined), "{}: {shells:?}", t.scenario.name);
            assert!(copies.iter().all(|k| shells[*k].1 == shells[joined].1), "{}: onto the joining host: {shells:?}", t.scenario.name);
        }
    }

    #[test]
    fn a_secret_written_again_by_the_resumed_run_itself_is_not_made_twice() {
        // Halted in 2.4 (token create) after 2.3 uploaded the certs: the sweep takes both files;
        // the resume runs 2.4 again (it writes the join command), so only the key is made again.
        let (t, plan) = homelab();
        let (mut journal, _, _) = halted_at(&t, &plan, "2.4", None);
        let mut resumed = Recorder::default();
        let outcome = Runner::new(&t, &plan, &mut resumed, &mut journal, &mut Yes, options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
        let before_join: Vec<&crate::transport::Recorded> = resumed.commands.iter().take_while(|c| c.step != "2.5").collect();
        assert_eq!(before_join.iter().filter(|c| c.shell.contains("token create")).count(), 1, "{before_join:?}");
        assert_eq!(before_join.iter().filter(|c| c.shell.contains("upload-certs")).count(), 1, "{before_join:?}");
        assert!(!Progress::from_records(&journal.records).secrets_swept);
    }

    #[test]
    fn secrets_made_again_for_a_join_that_fails_again_are_swept_again() {
        let (t, plan) = homelab();
        let (mut journal, _, _) = halted_at(&t, &plan, "3.5", None);
        let mut again = Failing { step: "3.5".to_string(), unreachable: None, inner: Recorder::default() };
        let outcome = Runner::new(&t, &plan, &mut again, &mut journal, &mut Yes, options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Halted(_)), "{outcome:?}");
        // Made again for the join, which failed again: swept again.
        assert_eq!(swept(&journal).len(), 2);
        assert!(again.inner.commands.iter().any(|c| c.shell.contains("upload-certs")));
    }

    #[test]
    fn secrets_the_resumed_run_writes_again_itself_are_swept_at_its_next_halt() {
        // Halted at 2.7 (after 2.5's join): swept. Resumed, 3.3 and 3.4 write the secrets again
        // for 3.5's join; the halt at 3.7 must sweep them again, not take them as swept still.
        let (t, plan) = homelab();
        let (mut journal, _, _) = halted_at(&t, &plan, "2.7", None);
        assert_eq!(swept(&journal).len(), 1);
        let mut again = Failing { step: "3.7".to_string(), unreachable: None, inner: Recorder::default() };
        let outcome = Runner::new(&t, &plan, &mut again, &mut journal, &mut Yes, options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Halted(ref h) if h.step == "3.7"), "{outcome:?}");
        assert_eq!(swept(&journal).len(), 2, "swept again at 3.7");
        assert!(again.inner.commands.iter().any(|c| c.step == "secrets-sweep"), "{:?}", again.inner.commands);
    }

    static STOP_AT_ONCE: AtomicBool = AtomicBool::new(true);
    static STOP_LATER: AtomicBool = AtomicBool::new(false);

    /// Records, and asks for a stop while the `nth` command runs (Ctrl-C during it).
    struct StopsDuring {
        nth: usize,
        inner: Recorder,
    }

    impl Transport for StopsDuring {
        fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
            if self.inner.commands.len() + 1 == self.nth {
                STOP_LATER.store(true, Ordering::SeqCst);
            }
            self.inner.run(place, request)
        }
    }

    #[test]
    fn a_stop_asked_before_the_first_command_runs_nothing_and_halts() {
        let (t, plan) = homelab();
        let (mut transport, mut journal) = (Recorder::default(), Journal::in_memory());
        let options = RunOptions { stop: Some(&STOP_AT_ONCE), ..options(false) };
        let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).run().unwrap();
        let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
        assert!(halt.reason.starts_with("stopped by the operator before command 1 of step 0.1"), "{}", halt.reason);
        assert!(transport.commands.is_empty(), "{:?}", transport.commands);
    }

    #[test]
    fn a_stop_during_a_command_lets_it_finish_journals_it_and_halts_before_the_next() {
        let (t, plan) = homelab();
        let (mut transport, mut journal) = (StopsDuring { nth: 5, inner: Recorder::default() }, Journal::in_memory());
        let options = RunOptions { stop: Some(&STOP_LATER), ..options(false) };
        let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).run().unwrap();
        let Outcome::Halted(halt) = outcome else { panic!("{outcome:?}") };
        assert!(halt.reason.starts_with("stopped by the operator"), "{}", halt.reason);
        assert_eq!(transport.inner.commands.len(), 5, "the fifth finished, no sixth");
        let progress = Progress::from_records(&journal.records);
        let cut = progress.started_commands.iter().any(|(step, started)| started.iter().any(|j| progress.command_cut(step, *j)));
        assert!(!cut, "every started command's end is journalled: {progress:?}");
        // Resumed without the stop: it completes and runs nothing of the first five again.
        let mut resumed = Recorder::default();
        let outcome = Runner::new(&t, &plan, &mut resumed, &mut journal, &mut Yes, super::super::tests::options(true)).run().unwrap();
        assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
        let mut whole = Recorder::default();
        let outcome = Runner::new(&t, &plan, &mut whole, &mut Journal::in_memory(), &mut Yes, super::super::tests::options(false)).run();
        assert!(matches!(outcome, Ok(Outcome::Completed)));
        assert_eq!(5 + resumed.commands.len(), whole.commands.len(), "nothing ran twice, nothing was skipped");
    }
}
