//! The run itself: the plan's steps in order, each confirmed by phase, checked before, its commands
//! run and journalled one by one (by-hand work asked of the operator), and the hosts checked
//! after it; a halt wherever something fails.

use super::{plan_digest, BetweenSteps, ExpiredCredentials, HaltSeen, Look, Outcome, Runner, LOOK_STANDS_FOR_MS, OUTPUT_KEPT_BYTES_MAX};
use crate::invocation::{Invocation, Work};
use crate::journal::{Event, Progress};
use crate::observe::{self, Scope};
use crate::redact;
use crate::transport::Completed;
use crate::ExecError;
use plan_model::plan::{Phase, Step};
use std::collections::BTreeSet;
use std::time::Duration;

/// What a run carries from step to step.
struct RunState {
    /// What the journal held when the run began (empty for a fresh run).
    progress: Progress,
    /// The by-hand command the operator did while the run was halted at it, until it is reached.
    done_by_hand: Option<(String, std::ops::Range<usize>)>,
    /// The secret files the halt's sweep removed and nothing has written again since.
    swept: BTreeSet<String>,
    /// The phase the operator last confirmed.
    phase_confirmed: Option<String>,
    /// The look after the last step that ended clean at once, and that step.
    look_after: Option<(usize, Look)>,
}

/// Where a step is, for its commands.
struct InStep {
    i: usize,
    /// A resume of the step the journal shows begun and not ended.
    interrupted: bool,
    /// The plan's time left from this step on, for the operator's estimate.
    remaining_s: u32,
    /// The swept secrets as the step began: copies of them are made again in it.
    swept_at_start: BTreeSet<String>,
}

impl Runner<'_> {
    /// Runs the plan (or the rest of it, with `resume`).
    ///
    /// # Errors
    /// The journal cannot be written, the guard refused a destination, or the request does not
    /// fit the journal (a resume of another plan, a fresh run over an unfinished one).
    pub fn run(&mut self) -> Result<Outcome, ExecError> {
        let mut state = self.start()?;
        for i in 0..self.plan.steps.len() {
            if state.progress.completed.contains(&self.plan.steps[i].id) {
                continue;
            }
            if let Some(outcome) = self.run_step(i, &mut state)? {
                return Ok(outcome);
            }
        }
        self.journal.append(Event::RunFinished)?;
        Ok(Outcome::Completed)
    }

    /// Checks the request against the journal and journals the run's start.
    fn start(&mut self) -> Result<RunState, ExecError> {
        let progress = Progress::from_records(&self.journal.records);
        let digest = plan_digest(self.plan);
        if self.options.resume {
            match &progress.plan_digest {
                None => return Err(ExecError::Input(format!("nothing to resume: {} holds no run", self.journal.path().display()))),
                Some(d) if *d != digest => {
                    return Err(ExecError::Input(
                        "the journal is of another plan (the steps or commands differ): resume with the plan it started".to_string(),
                    ))
                }
                Some(_) => {}
            }
        } else if progress.plan_digest.is_some() && !progress.finished && progress.rolled_back.is_none() {
            return Err(ExecError::Input(format!(
                "{} holds an unfinished run: continue it with --resume, see it with plan status, or undo it with plan recover",
                self.journal.path().display()
            )));
        }
        let progress = if self.options.resume { progress } else { Progress::default() };
        let done_by_hand = if self.options.by_hand_done { Some(self.by_hand_done(&progress)?) } else { None };
        self.journal.append(Event::RunStarted {
            scenario: self.t.scenario.name.clone(),
            plan_digest: digest,
            steps: self.plan.steps.iter().map(|s| s.id.clone()).collect(),
            check: if self.options.check_passed { "pass" } else { "fail" }.to_string(),
            override_check: self.options.override_check.clone(),
            resume: self.options.resume,
            pid: std::process::id(),
        })?;
        let swept = if self.options.resume && progress.secrets_swept {
            self.plan.steps.iter().flat_map(|s| &s.commands).filter_map(|c| c.writes.clone()).collect()
        } else {
            BTreeSet::new()
        };
        Ok(RunState { progress, done_by_hand, swept, phase_confirmed: None, look_after: None })
    }

    /// Step `i`: its phase confirmed where it begins one, the hosts checked before it, its
    /// commands, the hosts checked after it. The outcome where the run stops in it.
    fn run_step(&mut self, i: usize, state: &mut RunState) -> Result<Option<Outcome>, ExecError> {
        let step = &self.plan.steps[i];
        let span = tracing::info_span!("step", id = %step.id, phase = %step.phase, title = %step.title);
        let _entered = span.enter();
        if let Some(declined) = self.confirm_phase(i, state)? {
            return Ok(Some(declined));
        }
        let step = &self.plan.steps[i];
        let between = self.operator.step_begins(step);
        let interrupted = self.options.resume && state.progress.interrupted.as_deref() == Some(step.id.as_str());
        let after = *self.prediction.after(i);
        let scope = self.scope(i);
        let reused = state.look_after.take().is_some_and(|(k, look)| {
            k + 1 == i
                && between == BetweenSteps::Untouched
                && !interrupted
                && look.scope.covers(scope)
                && look.began.elapsed() <= Duration::from_millis(LOOK_STANDS_FOR_MS)
        });
        if let Some(halted) = self.before_step(i, interrupted, scope, reused)? {
            return Ok(Some(halted));
        }
        self.journal.append(Event::StepStarted { step: step.id.clone() })?;
        let at = InStep {
            i,
            interrupted,
            remaining_s: self.plan.steps[i..].iter().map(|s| s.duration_s).sum(),
            swept_at_start: state.swept.clone(),
        };
        for j in 0..self.compiled[i].len() {
            if let Some(outcome) = self.run_command(&at, j, state)? {
                return Ok(Some(outcome));
            }
        }
        let done = self.step_done(&at, after, scope, &state.progress)?;
        if done.is_none() {
            // The step's look after it, clean: the next step's look before it, if nothing
            // comes between (see `LOOK_STANDS_FOR_MS`).
            state.look_after = self.latest_look.take().map(|look| (i, look));
        }
        Ok(done)
    }

    /// Asks the operator to start the phase step `i` begins; the run declined where they do not.
    fn confirm_phase(&mut self, i: usize, state: &mut RunState) -> Result<Option<Outcome>, ExecError> {
        let step = &self.plan.steps[i];
        if state.phase_confirmed.as_deref() == Some(step.phase.as_str()) {
            return Ok(None);
        }
        let phase =
            self.plan.phases.iter().find(|p| p.id == step.phase).cloned().unwrap_or(Phase { id: step.phase.clone(), title: String::new() });
        let steps: Vec<&Step> = self.plan.steps[i..].iter().filter(|s| s.phase == step.phase).collect();
        if !self.operator.confirm_phase(&phase, &steps) {
            return Ok(Some(Outcome::Declined { phase: phase.id }));
        }
        self.journal.append(Event::PhaseConfirmed { phase: phase.id.clone(), by: "operator".to_string() })?;
        state.phase_confirmed = Some(step.phase.clone());
        Ok(None)
    }

    /// Command `j` of the step `at`: passed over where a resume finds it done, settled where the
    /// executor's death cut it, asked of the operator where it is by hand, else run and journalled.
    fn run_command(&mut self, at: &InStep, j: usize, state: &mut RunState) -> Result<Option<Outcome>, ExecError> {
        let (i, progress) = (at.i, &state.progress);
        let id = self.plan.steps[i].id.clone();
        // The copies the halt's sweep took off the joining host: made again, so copied again,
        // unless every command after the copy is done (nothing of the step reads them again).
        let read_later = (j + 1..self.compiled[i].len()).any(|k| !progress.command_done(&id, k));
        let relays_swept = read_later && matches!(&self.compiled[i][j].work, Work::Relay { path, .. } if at.swept_at_start.contains(path));
        if at.interrupted && progress.command_done(&id, j) && !self.options.rerun_step && !relays_swept {
            return Ok(None);
        }
        // A command cut off by the executor's death, or one that failed and whose operation
        // leaves what a re-run must clean up first (a join): settled first.
        let settle = progress.command_cut(&id, j) || (progress.command_failed(&id, j) && self.leaves_leftovers(i, j));
        if at.interrupted && settle && !self.options.rerun_step {
            match self.settle_cut_command(i, j)? {
                crate::resume::CutCommand::RunAgain => {}
                crate::resume::CutCommand::TookEffect { .. } => return Ok(None),
                crate::resume::CutCommand::Unknown { why } => return self.halt(i, why, vec![], true).map(Some),
            }
        }
        if crate::interrupt::asked(self.options.stop) {
            let reason = format!("stopped by the operator before command {} of step {id}", j + 1);
            return self.halt(i, reason, vec![], j > 0 || at.interrupted).map(Some);
        }
        if let Some(reason) = self.remake_swept_secrets(i, j, &mut state.swept)? {
            return self.halt(i, reason, vec![], true).map(Some);
        }
        let invocation = self.compiled[i][j].clone();
        self.operator.starting(&self.plan.steps[i], j, &invocation, at.remaining_s);
        if let Work::Manual { instruction, task } = &invocation.work {
            return self.by_hand_command(i, j, &invocation, (instruction, task), state);
        }
        self.journal.append(Event::CommandStarted {
            step: id.clone(),
            index: j,
            place: invocation.place_label(),
            command: invocation.display(),
        })?;
        let result = self.execute(&id, &invocation);
        let shown = result.clone().map_err(|e| redact::redact(&e.to_string()));
        self.operator.finished(&self.plan.steps[i], &invocation, &shown);
        match result {
            Ok(done) => self.command_ended(i, j, &invocation, done, state),
            Err(e) => self.command_not_run(i, j, e),
        }
    }

    /// By-hand work: done already (`--by-hand-done` for the by-hand commands its halt named), or
    /// asked of the operator; the run halts where it is not done, naming it and the by-hand
    /// commands right after it in the step (`invocation::by_hand_run`).
    fn by_hand_command(
        &mut self,
        i: usize,
        j: usize,
        invocation: &Invocation,
        (instruction, task): (&String, &plan_model::hand::HandTask),
        state: &mut RunState,
    ) -> Result<Option<Outcome>, ExecError> {
        let step = &self.plan.steps[i];
        if state.done_by_hand.as_ref().is_some_and(|(at, run)| *at == step.id && run.contains(&j)) {
            // Confirmed for the commands the halt named, once: a later one is asked as ever.
            if state.done_by_hand.as_ref().is_some_and(|(_, run)| j + 1 >= run.end) {
                state.done_by_hand = None;
            }
            self.operator.done_by_hand(step, instruction);
        } else if !self.operator.by_hand(step, instruction, task) {
            let run = crate::invocation::by_hand_run(&self.compiled[i], j);
            let each: Vec<String> = self.compiled[i][run]
                .iter()
                .filter_map(|inv| match &inv.work {
                    Work::Manual { instruction, .. } => Some(redact::redact(instruction)),
                    _ => None,
                })
                .collect();
            let reason = format!("needs the operator: {}", each.join("; then "));
            return self.halt_with(i, reason, vec![], true, HaltSeen { by_hand: Some(j), ..HaltSeen::default() }).map(Some);
        }
        let id = self.plan.steps[i].id.clone();
        self.journal.append(Event::CommandStarted {
            step: id.clone(),
            index: j,
            place: "operator".to_string(),
            command: invocation.display(),
        })?;
        self.journal.append(Event::CommandFinished {
            step: id,
            index: j,
            exit: Some(0),
            duration_ms: 0,
            output: "done by hand".to_string(),
        })?;
        Ok(None)
    }

    /// A command that ran: journalled with its kept output; a secret it wrote again counted; a
    /// failure halts the run, with kubeadm's words for an expired credential typed.
    fn command_ended(
        &mut self,
        i: usize,
        j: usize,
        invocation: &Invocation,
        done: Completed,
        state: &mut RunState,
    ) -> Result<Option<Outcome>, ExecError> {
        let id = self.plan.steps[i].id.clone();
        let output = redact::keepable_output(&format!("{}{}", done.stdout, done.stderr), invocation.secret, OUTPUT_KEPT_BYTES_MAX);
        self.journal.append(Event::CommandFinished {
            step: id.clone(),
            index: j,
            exit: done.exit,
            duration_ms: done.duration.as_millis() as u64,
            output: output.clone(),
        })?;
        tracing::info!(place = %invocation.place_label(), exit = ?done.exit, "command finished");
        if let Some(written) = self.plan.steps[i].commands.get(invocation.command).and_then(|c| c.writes.as_ref()) {
            // The run's own writer made a swept secret again: once none is left to make, the
            // journal says they are out again (a halt sweeps them).
            if done.success() && state.swept.remove(written) && state.swept.is_empty() {
                self.journal.append(Event::SecretsRemade { step: id })?;
            }
        }
        if done.success() {
            return Ok(None);
        }
        let code = done.exit.map_or("a signal".to_string(), |c| format!("exit {c}"));
        let mut reason = format!("{} on {} ended with {code}", invocation.display(), invocation.place_label());
        if !output.trim().is_empty() {
            reason.push_str(&format!(": {}", output.trim()));
        }
        // kubeadm's words for an expired credential, kept (quoted in the reason, and typed with
        // the halt) where the output is not.
        let expired = ExpiredCredentials::read(&format!("{}{}", done.stdout, done.stderr));
        reason.push_str(&expired.said());
        self.halt_with(i, reason, vec![], true, HaltSeen { expired, ..HaltSeen::default() }).map(Some)
    }

    /// A command the transport could not run: journalled; a destination the loopback guard
    /// refused ends the run with that error, anything else halts it (a dropped connection counts
    /// its host as silent).
    fn command_not_run(&mut self, i: usize, j: usize, e: ExecError) -> Result<Option<Outcome>, ExecError> {
        let reason = redact::redact(&e.to_string());
        let id = self.plan.steps[i].id.clone();
        self.journal.append(Event::CommandFinished { step: id, index: j, exit: None, duration_ms: 0, output: reason.clone() })?;
        if matches!(e, ExecError::NotLoopback { .. }) {
            return Err(e);
        }
        // A host that dropped the command's connection did not answer, even if it answers by the
        // halt's first look (a blip): the halt counts it as silent.
        let cut_off = match &e {
            ExecError::Ssh { host, .. } => Some(observe::unreachable(host, &reason)),
            _ => None,
        };
        self.halt_cut_off(i, reason, cut_off).map(Some)
    }

    /// After the step's commands: the hosts checked against the state the twin predicts after it
    /// (`after`), then the step journalled finished.
    fn step_done(
        &mut self,
        at: &InStep,
        after: plan_model::cluster::Cluster,
        scope: Scope,
        progress: &Progress,
    ) -> Result<Option<Outcome>, ExecError> {
        let (i, id) = (at.i, self.plan.steps[at.i].id.clone());
        if let Some(observation) = self.observe_now(&after, scope)? {
            let first = observe::drift(self.t, &observation, &[&after]);
            let clean_at_once = first.is_empty();
            let drift = self.settle(i, &after, &[&after], scope, first)?;
            if !clean_at_once {
                // A look that had to settle ended on one clean look after a difference: not
                // enough for a fact that flaps (see `before_step`), so the next step looks again.
                self.latest_look = None;
            }
            self.journal.append(Event::Observed { step: id.clone(), when: "after".to_string(), drift: drift.clone() })?;
            if !drift.is_empty() {
                let reason = "verification failed: the step did not leave the state the twin predicts".to_string();
                let seen = HaltSeen { after_step: true, ..HaltSeen::default() };
                return self.halt_with(i, reason, drift, true, seen).map(Some);
            }
        }
        let verified = at.interrupted && self.compiled[i].iter().enumerate().all(|(j, _)| progress.command_done(&id, j));
        let how = if verified { "verified-done" } else { "ran" };
        self.journal.append(Event::StepFinished { step: id, how: how.to_string() })?;
        Ok(None)
    }
}
