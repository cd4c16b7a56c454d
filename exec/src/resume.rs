//! A resume after the executor died inside a command: the operation that command belongs to
//! says whether it may simply run again, or its probe must first tell whether it took effect.

use crate::invocation::Invocation;
use crate::journal::Event;
use crate::runner::Runner;
use crate::transport::Request;
use crate::ExecError;
use plan_model::operation::Rerun;
use std::time::Duration;

/// How long a probe may take.
const PROBE_TIMEOUT_S: u64 = 60;
/// How long one command of a cut operation's cleanup may take (`kubeadm reset` stops the static
/// pods and waits for them).
const CLEANUP_TIMEOUT_S: u64 = 300;

/// What a resume does with a command the executor died in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutCommand {
    /// Running it again is safe, or its probe says it has not taken effect (what it left is
    /// cleaned up by then).
    RunAgain,
    /// Its probe says it took effect: skip it.
    TookEffect { probe: String },
    /// It must not run twice and nothing tells whether it took effect.
    Unknown { why: String },
}

impl Runner<'_> {
    /// Decides what to do with command `j` of step `i`, cut off by the executor's death.
    ///
    /// # Errors
    /// The journal cannot be written, or the guard refused the probe's destination.
    pub(crate) fn settle_cut_command(&mut self, i: usize, j: usize) -> Result<CutCommand, ExecError> {
        let step = &self.plan.steps[i];
        let invocation = &self.compiled[i][j];
        // A relay or an upload before the operation's own command is safe to run again.
        if !matches!(invocation.work, crate::invocation::Work::Shell { .. }) {
            return Ok(CutCommand::RunAgain);
        }
        let Some(operation) = step.operation_of(self.t, invocation.command) else { return Ok(CutCommand::RunAgain) };
        if operation.rerun() == Rerun::Safe {
            return Ok(CutCommand::RunAgain);
        }
        let shown = invocation.display();
        let Some(probe) = operation.probe(self.t) else {
            return Ok(CutCommand::Unknown {
                why: format!(
                    "the executor died while `{shown}` ran ({} operation): it must not run twice and nothing tells whether it took effect; \
                     check on the host, then resume with --rerun-step to run the step again",
                    operation.name()
                ),
            });
        };
        let compiler = self.compiler();
        let probes: Vec<Invocation> = compiler.probe(step, &probe);
        let mut took_effect = true;
        for probe_invocation in &probes {
            let crate::invocation::Work::Shell { place, shell } = &probe_invocation.work else {
                took_effect = false;
                break;
            };
            let request = Request { step: &step.id, shell, stdin: None, secret: false, timeout: Duration::from_secs(PROBE_TIMEOUT_S) };
            match self.transport.run(place, &request) {
                Ok(done) if done.success() => {}
                Ok(_) => took_effect = false,
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Err(e) => {
                    return Ok(CutCommand::Unknown {
                        why: format!("the executor died while `{shown}` ran, and its probe `{}` could not run: {e}", probe.run),
                    })
                }
            }
        }
        let step_id = step.id.clone();
        if !took_effect {
            let cleanup = operation.cut_cleanup(self.t);
            if !cleanup.is_empty() {
                let invocations = compiler.cleanup(step, &cleanup);
                if let Some(why) = self.clean_up_before_rerun(i, &shown, &invocations)? {
                    return Ok(CutCommand::Unknown { why });
                }
            }
        }
        if took_effect {
            self.journal.append(Event::CommandFinished {
                step: step_id,
                index: j,
                exit: Some(0),
                duration_ms: 0,
                output: format!("took effect before the resume (probe `{}` answered yes)", probe.run),
            })?;
            return Ok(CutCommand::TookEffect { probe: probe.run });
        }
        Ok(CutCommand::RunAgain)
    }

    /// Whether command `j` of step `i` belongs to an operation that cleans up before a re-run.
    pub(crate) fn leaves_leftovers(&self, i: usize, j: usize) -> bool {
        let step = &self.plan.steps[i];
        let invocation = &self.compiled[i][j];
        matches!(invocation.work, crate::invocation::Work::Shell { .. })
            && step.operation_of(self.t, invocation.command).is_some_and(|operation| !operation.cut_cleanup(self.t).is_empty())
    }

    /// Runs the cleanup `invocations` of the cut command `shown` of step `i`, each journaled
    /// under `cleanup:STEP`: `None` when all succeeded, else why the resume must halt.
    ///
    /// # Errors
    /// The journal cannot be written, or the guard refused a destination.
    fn clean_up_before_rerun(&mut self, i: usize, shown: &str, invocations: &[Invocation]) -> Result<Option<String>, ExecError> {
        let step_id = format!("cleanup:{}", self.plan.steps[i].id);
        for (k, invocation) in invocations.iter().enumerate() {
            let crate::invocation::Work::Shell { place, shell } = &invocation.work else {
                return Ok(Some(format!("`{shown}` left leftovers, and their cleanup needs the operator: {}", invocation.display())));
            };
            self.journal.append(Event::CommandStarted {
                step: step_id.clone(),
                index: k,
                place: invocation.place_label(),
                command: invocation.display(),
            })?;
            let request = Request { step: &step_id, shell, stdin: None, secret: false, timeout: Duration::from_secs(CLEANUP_TIMEOUT_S) };
            let (exit, output) = match self.transport.run(place, &request) {
                Ok(done) => (done.exit, format!("{}{}", done.stdout, done.stderr)),
                Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
                Err(e) => (None, e.to_string()),
            };
            let output = crate::redact::keepable_output(&output, false, crate::runner::OUTPUT_KEPT_BYTES_MAX);
            self.journal.append(Event::CommandFinished {
                step: step_id.clone(),
                index: k,
                exit,
                duration_ms: 0,
                output: output.clone(),
            })?;
            if exit != Some(0) {
                return Ok(Some(format!(
                    "`{shown}` was cut off and left leftovers; cleaning them up before running it again failed: {} on {}: {}",
                    invocation.display(),
                    invocation.place_label(),
                    output.trim()
                )));
            }
        }
        Ok(None)
    }
}
