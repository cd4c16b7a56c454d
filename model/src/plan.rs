//! A migration plan: phases of steps, their dependencies as a DAG, and the editable plan file.

use crate::action::Action;
use crate::hand::{HandTask, RepoEdit};
use crate::operation::{Operation, OperationError};
use crate::topology::{NodeSet, Topology};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a step's commands run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum RunsOn {
    /// A cluster node over SSH.
    Node(String),
    /// The load balancer box over SSH.
    LoadBalancer(String),
    /// The hypervisor over SSH.
    Hypervisor(String),
    /// The operator's infra repository (edits, terraform).
    InfraRepo,
    /// The operator's workstation (kubectl through the current kubeconfig).
    Workstation,
}

impl std::fmt::Display for RunsOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunsOn::Node(n) | RunsOn::LoadBalancer(n) | RunsOn::Hypervisor(n) => write!(f, "{n}"),
            RunsOn::InfraRepo => write!(f, "infra repo"),
            RunsOn::Workstation => write!(f, "workstation"),
        }
    }
}

/// An edge of the step DAG: this step needs `step` done first, for `why`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub step: String,
    pub why: String,
}

/// One piece of a command as an operation renders it: where it runs is named by the scenario,
/// never read back from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// `shell` run at `at`: a machine over SSH, the infra repo, the workstation; `None` is
    /// where the step runs.
    Run { at: Option<RunsOn>, shell: String },
    /// The infra repo's file `local` copied to `remote` on the machine `to`.
    Upload { local: String, to: RunsOn, remote: String },
}

/// One command as an operation renders it: its parts (what the executor runs, in order,
/// stopping at the first that fails) and their text as the operator would type them on the
/// workstation (what `show` prints, derived from the parts), whether it holds a secret to
/// redact, whether a person carries it out, and the secret files it writes or reads (the
/// executor copies those between hosts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub run: String,
    /// What runs; derived with `run` from the operation, never read from a file.
    #[serde(skip)]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// An instruction for a person (edit a file, click in a web UI), not a shell command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_hand: bool,
    /// The root-only secret file the command writes on the host it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<String>,
    /// The secret files the command reads on the host it runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// The work behind a by-hand command, typed; derived with `run`, never read from a file.
    #[serde(skip)]
    pub hand: Option<HandTask>,
}

impl Command {
    /// A shell command that runs where its step runs.
    pub fn shell(run: impl Into<String>) -> Command {
        let run = run.into();
        Command { parts: vec![Part::Run { at: None, shell: run.clone() }], run, ..Command::default() }
    }

    /// An instruction a person carries out outside every file the plan holds.
    pub fn by_hand(run: impl Into<String>) -> Command {
        Command { run: run.into(), by_hand: true, hand: Some(HandTask::Elsewhere), ..Command::default() }
    }

    /// Typed work a person carries out: its text is the work's description.
    pub fn hand(task: HandTask) -> Command {
        Command { run: task.describe(""), by_hand: true, hand: Some(task), ..Command::default() }
    }

    /// Edits of files in the infra repo, made by a person.
    pub fn edits(edits: Vec<RepoEdit>) -> Command {
        Command::hand(HandTask::Repo(edits))
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The source plan's numbering for the homelab (`2.5`); new masters past the third get `3b.5`, `3c.5`.
    pub id: String,
    pub phase: String,
    pub title: String,
    pub runs_on: RunsOn,
    /// What the step does, typed: the source of its commands, its actions and its effects.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The operations rendered (what `execute` runs); derived, never edited.
    #[serde(default)]
    pub commands: Vec<Command>,
    /// How the operator verifies the step (commands or observations).
    pub checks: Vec<String>,
    /// What undoes the step.
    pub rollback: Vec<String>,
    /// The model's view of the step: atomic transitions, in order, derived from the operations.
    #[serde(skip)]
    pub actions: Vec<Action>,
    /// The transitions described for people (what the twin applies).
    #[serde(default)]
    pub effects: Vec<String>,
    pub after: Vec<Dependency>,
    /// The actions' durations plus `extra_s`.
    pub duration_s: u32,
    /// Operator time beyond the actions' own (editing files, waiting).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extra_s: u32,
    /// What the step disrupts, as declared (the twin measures the real figure).
    pub disruption: Option<String>,
    /// Where the plan departs from the source plan, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether a step's place names a machine of the scenario (the workstation and the repo always do).
fn runs_on_known(t: &Topology, runs_on: &RunsOn) -> bool {
    let s = &t.scenario;
    match runs_on {
        RunsOn::Node(name) => t.nodes.iter().any(|n| &n.name == name),
        RunsOn::LoadBalancer(name) => &s.load_balancer.name == name,
        RunsOn::Hypervisor(name) => s.hypervisors.iter().any(|h| &h.name == name),
        RunsOn::InfraRepo | RunsOn::Workstation => true,
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Step {
    /// Whether the step changes the cluster in the model: it does more than verify.
    pub fn changes_state(&self) -> bool {
        self.actions.iter().any(|a| !matches!(a, Action::Verify(_)))
    }

    /// Derives the commands, actions, effects and duration from the operations.
    ///
    /// # Errors
    /// The first operation that names nothing of this cluster.
    pub fn derive(&mut self, t: &Topology) -> Result<(), OperationError> {
        let mut actions = Vec::new();
        for operation in &self.operations {
            actions.extend(operation.effect(t)?);
        }
        self.commands = self.operations.iter().flat_map(|o| o.render(t)).collect();
        self.effects = actions.iter().map(|a| a.describe(t)).collect();
        self.duration_s = actions.iter().map(|a| a.duration_s()).sum::<u32>() + self.extra_s;
        self.actions = actions;
        Ok(())
    }

    /// How many of the step's commands have finished once its first `done` actions took effect,
    /// where a command ends right there ([`Operation::commands_through`]): the point a fault
    /// placed after that action strikes at on real hosts. `None` at the step's start (`done`
    /// 0), past its actions, or inside a command.
    pub fn commands_after(&self, t: &Topology, done: usize) -> Option<usize> {
        let (mut actions, mut commands) = (0, 0);
        for operation in &self.operations {
            let through = operation.commands_through(t).ok()?;
            if done > actions && done <= actions + through.len() {
                return through[done - actions - 1].map(|c| commands + c);
            }
            actions += through.len();
            commands += operation.render(t).len();
        }
        None
    }

    /// The step without what names a machine of `gone` ([`Operation::without`]), its commands,
    /// actions and duration derived again from the operations left, and run elsewhere where it
    /// ran on one of them.
    ///
    /// # Errors
    /// An operation left does not fit `t`.
    pub fn without(&self, t: &Topology, gone: NodeSet) -> Result<Step, OperationError> {
        let mut left = self.clone();
        left.leave_out(t, gone)?;
        Ok(left)
    }

    /// [`Step::without`] in place: the step itself made to go on without `gone` (a plan going
    /// on without them is one copy of the plan, its steps not copied again each).
    ///
    /// # Errors
    /// An operation left does not fit `t`; the step is then half made over.
    pub fn leave_out(&mut self, t: &Topology, gone: NodeSet) -> Result<(), OperationError> {
        let left: Vec<Operation> = self.operations.iter().filter_map(|o| o.without(t, gone)).collect();
        // A step that names none of them is left as it was derived.
        if left != self.operations {
            self.operations = left;
            self.derive(t)?;
        }
        // What it still runs where the step runs (upload-certs, create-token on the first
        // master) runs on the first master left: the existing one, else the new ones in the
        // order they join.
        if let RunsOn::Node(name) = &self.runs_on {
            let on_gone = gone.iter().any(|n| t.name(n) == name);
            let masters = std::iter::once(t.existing_master()).chain(t.new_masters());
            if let Some(to) = masters.into_iter().find(|m| !gone.contains(*m)).filter(|_| on_gone) {
                self.runs_on = RunsOn::Node(t.name(to).to_string());
            }
        }
        Ok(())
    }

    /// The operation that renders command `command` of the step.
    pub fn operation_of(&self, t: &Topology, command: usize) -> Option<&Operation> {
        let mut first = 0;
        for operation in &self.operations {
            let count = operation.render(t).len();
            if command < first + count {
                return Some(operation);
            }
            first += count;
        }
        None
    }

    /// The operations the twin cannot verify (shell commands and by-hand instructions it does
    /// not model), each with what it does.
    pub fn opaque(&self) -> impl Iterator<Item = (&Operation, &str)> {
        self.operations.iter().filter_map(|o| o.unmodelled().map(|what| (o, what)))
    }
}

/// A phase of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub id: String,
    pub title: String,
}

/// Which recovery a documented procedure carries out, typed: the twin reads it to know what
/// the plan documents at a halt (never the procedure's id or words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recovers {
    /// Undoes the phase it names in `when`.
    PhaseRollback,
    /// `etcd --force-new-cluster` on a surviving voter once quorum is lost for good.
    QuorumRecovery,
    /// The first master written off once it is down for good while the VIP serves from the
    /// others, and the plan run on without it.
    GoForward,
    /// Restores the newest etcd snapshot (and rebuilds the first master's VM).
    SnapshotRestore,
}

/// A documented rollback procedure (the source plan's rollback section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackProcedure {
    pub id: String,
    pub title: String,
    pub when: String,
    pub commands: Vec<Command>,
    /// What the procedure recovers; a procedure without it documents nothing the twin weighs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovers: Option<Recovers>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Version of the plan file format.
    pub plan_format: u32,
    pub scenario: String,
    pub phases: Vec<Phase>,
    pub steps: Vec<Step>,
    pub rollbacks: Vec<RollbackProcedure>,
    /// Set on an export of one phase (`plan show --phase P --format yaml`): a part to read, not a
    /// plan to check or run, so [`Plan::from_edited`] refuses it. Absent from a whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_phase: Option<String>,
}

/// Current plan file format.
pub const PLAN_FORMAT: u32 = 2;

/// Why a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("step {step} ({title}) must come after step {needs} ({needs_title}): {why}")]
    OrderViolated { step: String, title: String, needs: String, needs_title: String, why: String },
    #[error("step {0} appears twice")]
    DuplicateStep(String),
    #[error("step {step} is not a step of the plan for scenario {scenario} (its steps run {first} to {last})")]
    UnknownStep { step: String, scenario: String, first: String, last: String },
    #[error("step {step} was edited ({field} differs from the generated plan): a step's {field} cannot be changed; change, add or remove its operations instead")]
    EditedStep { step: String, field: &'static str },
    #[error("step {step}: its commands differ from what its operations render (command {index}: {found:?}, rendered {rendered:?}): commands are derived; change the operation's parameters, or add a `shell` operation for a command the twin need not model")]
    EditedCommands { step: String, index: usize, found: String, rendered: String },
    #[error("step {step}: {error}")]
    Operation { step: String, error: OperationError },
    #[error("step {0} lists commands but no operations: commands are derived from operations; give the step its operations (or a `shell` operation), or delete the step")]
    CommandsWithoutOperations(String),
    #[error("step {step} runs on {place:?}, which is no node, load balancer or hypervisor of the scenario")]
    UnknownPlace { step: String, place: String },
    #[error("rollback procedure {id} was edited (changed: {field}): the twin weighs procedures the planner writes; remove it, or keep it as exported")]
    EditedProcedure { id: String, field: &'static str },
    #[error("rollback procedure {0} appears twice")]
    DuplicateProcedure(String),
    #[error("rollback procedure {id} is new and claims `recovers: {recovers}`: only the planner's procedures document a recovery the twin weighs; drop `recovers` to keep it as a note for people")]
    NewProcedureRecovers { id: String, recovers: String },
    #[error("step {step} is new and names phase {phase:?}, which the plan does not have")]
    UnknownPhase { step: String, phase: String },
    #[error("the plan file is for scenario {file:?}, not {scenario:?}")]
    WrongScenario { file: String, scenario: String },
    #[error("plan file format {0} is not supported (this plan writes format {PLAN_FORMAT}, whose steps hold typed operations): export the plan again with `plan show --format yaml` and redo the edits")]
    Format(u32),
    #[error("the step graph has a cycle through step {0}")]
    Cycle(String),
    #[error("the plan has no steps")]
    Empty,
    #[error(
        "the plan file holds phase {0} only (exported with --phase {0}): a plan to check or run needs every phase; export it without --phase and delete steps instead"
    )]
    Partial(String),
}

impl Plan {
    /// Whether a documented procedure carries out `recovery`.
    pub fn documents(&self, recovery: Recovers) -> bool {
        self.rollbacks.iter().any(|r| r.recovers == Some(recovery))
    }

    /// The plan for another topology of the same cluster (moved onto loopback, on a lab's
    /// paths): every string of every operation's parameters passed through `rewrite` (addresses
    /// in a server URL, a path in a verification), then every step derived again on `t`, so its
    /// commands are `t`'s rendering of the same operations.
    ///
    /// # Errors
    /// A rewritten operation does not read back, or does not fit `t`.
    pub fn on_topology(&self, t: &Topology, rewrite: &dyn Fn(&str) -> String) -> Result<Plan, String> {
        let mut moved = self.clone();
        for step in &mut moved.steps {
            let mut value = serde_json::to_value(&step.operations).map_err(|e| e.to_string())?;
            rewrite_strings(&mut value, rewrite);
            step.operations = serde_json::from_value(value).map_err(|e| format!("step {}: {e}", step.id))?;
            step.derive(t).map_err(|e| format!("step {}: {e}", step.id))?;
        }
        Ok(moved)
    }

    /// The plan going on without the machines `gone` (written off: down for good) from step
    /// `from` on: the steps before it as they ran, every later step without what names a gone
    /// machine ([`Step::without`]). A step left with nothing to run stays, empty, so every step
    /// keeps its id and its place.
    ///
    /// # Errors
    /// An operation left does not fit `t` (it did not before either).
    pub fn going_on_without(&self, t: &Topology, from: usize, gone: NodeSet) -> Result<Plan, OperationError> {
        let mut going_on = self.clone();
        for step in going_on.steps.iter_mut().skip(from) {
            step.leave_out(t, gone)?;
        }
        Ok(going_on)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn duration_s(&self) -> u32 {
        self.steps.iter().map(|s| s.duration_s).sum()
    }

    /// The step DAG: an edge from each dependency to the step that needs it.
    pub fn graph(&self) -> (DiGraph<&str, &str>, HashMap<&str, NodeIndex>) {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for step in &self.steps {
            index.insert(step.id.as_str(), graph.add_node(step.id.as_str()));
        }
        for step in &self.steps {
            for dep in &step.after {
                if let (Some(&from), Some(&to)) = (index.get(dep.step.as_str()), index.get(step.id.as_str())) {
                    graph.add_edge(from, to, dep.why.as_str());
                }
            }
        }
        (graph, index)
    }

    /// Checks the plan's order against its DAG: no cycle, no duplicate, every dependency that is
    /// present comes first. Removed dependencies are allowed: the twin judges their absence.
    ///
    /// # Errors
    /// The first violation, naming both steps.
    pub fn check_order(&self) -> Result<(), PlanError> {
        if self.steps.is_empty() {
            return Err(PlanError::Empty);
        }
        let (graph, _) = self.graph();
        if let Err(cycle) = petgraph::algo::toposort(&graph, None) {
            return Err(PlanError::Cycle(graph[cycle.node_id()].to_string()));
        }
        let mut position = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            if position.insert(step.id.as_str(), i).is_some() {
                return Err(PlanError::DuplicateStep(step.id.clone()));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            for dep in &step.after {
                if let Some(&at) = position.get(dep.step.as_str()) {
                    if at > i {
                        let needs = &self.steps[at];
                        return Err(PlanError::OrderViolated {
                            step: step.id.clone(),
                            title: step.title.clone(),
                            needs: needs.id.clone(),
                            needs_title: needs.title.clone(),
                            why: dep.why.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Builds the plan an edited plan file asks for: `edited`'s steps, in its order, with their
    /// operations, title, checks, rollback, declared disruption, note and extra time as the file
    /// gives them. A step of `generated` keeps its dependencies and place (edits refused); its
    /// commands, actions, effects and duration are derived again from the file's operations. A step
    /// with a new id is taken whole from the file (its phase must exist).
    ///
    /// # Errors
    /// A [`PlanError`] naming the step that cannot be used.
    pub fn from_edited(t: &Topology, generated: &Plan, edited: &Plan) -> Result<Plan, PlanError> {
        if edited.plan_format != PLAN_FORMAT {
            return Err(PlanError::Format(edited.plan_format));
        }
        if let Some(phase) = &edited.only_phase {
            return Err(PlanError::Partial(phase.clone()));
        }
        if edited.scenario != generated.scenario {
            return Err(PlanError::WrongScenario { file: edited.scenario.clone(), scenario: generated.scenario.clone() });
        }
        let mut steps = Vec::with_capacity(edited.steps.len());
        for step in &edited.steps {
            let mut taken = match generated.step(&step.id) {
                Some(original) => {
                    let edited_field = if step.after != original.after {
                        Some("after")
                    } else if step.runs_on != original.runs_on {
                        Some("runs_on")
                    } else {
                        None
                    };
                    if let Some(field) = edited_field {
                        return Err(PlanError::EditedStep { step: step.id.clone(), field });
                    }
                    // What a person reads and declares is taken from the file; what is derived
                    // (commands, actions, effects, duration) is derived again below.
                    Step {
                        operations: step.operations.clone(),
                        title: step.title.clone(),
                        checks: step.checks.clone(),
                        rollback: step.rollback.clone(),
                        disruption: step.disruption.clone(),
                        note: step.note.clone(),
                        extra_s: step.extra_s,
                        ..original.clone()
                    }
                }
                None if step.operations.is_empty() => {
                    return Err(PlanError::UnknownStep {
                        step: step.id.clone(),
                        scenario: generated.scenario.clone(),
                        first: generated.steps.first().map(|s| s.id.clone()).unwrap_or_default(),
                        last: generated.steps.last().map(|s| s.id.clone()).unwrap_or_default(),
                    });
                }
                None if generated.phases.iter().any(|p| p.id == step.phase) => {
                    if !runs_on_known(t, &step.runs_on) {
                        return Err(PlanError::UnknownPlace { step: step.id.clone(), place: step.runs_on.to_string() });
                    }
                    step.clone()
                }
                None => return Err(PlanError::UnknownPhase { step: step.id.clone(), phase: step.phase.clone() }),
            };
            if step.operations.is_empty() && !step.commands.is_empty() {
                return Err(PlanError::CommandsWithoutOperations(step.id.clone()));
            }
            taken.derive(t).map_err(|error| PlanError::Operation { step: step.id.clone(), error })?;
            // The file's commands are a rendering for people: left as exported, left out, or
            // rendered anew, they are fine; edited by hand they are refused (edit the operation).
            let runs = |commands: &[Command]| commands.iter().map(|c| c.run.clone()).collect::<Vec<_>>();
            let as_exported = generated.step(&step.id).is_some_and(|o| runs(&o.commands) == runs(&step.commands));
            if !(step.commands.is_empty() || as_exported || runs(&step.commands) == runs(&taken.commands)) {
                let index = (0..step.commands.len().max(taken.commands.len()))
                    .find(|&i| step.commands.get(i).map(|c| &c.run) != taken.commands.get(i).map(|c| &c.run))
                    .unwrap_or_default();
                let text = |c: Option<&Command>| c.map(|c| c.run.clone()).unwrap_or_else(|| "(none)".to_string());
                return Err(PlanError::EditedCommands {
                    step: step.id.clone(),
                    index,
                    found: text(step.commands.get(index)),
                    rendered: text(taken.commands.get(index)),
                });
            }
            steps.push(taken);
        }
        let rollbacks = kept_procedures(generated, edited)?;
        let plan = Plan { steps, rollbacks, ..generated.clone() };
        plan.check_order()?;
        Ok(plan)
    }
}

/// The rollback procedures a plan file keeps: the planner's, as it writes them (a removed one is
/// no longer documented, and the check weighs the plan without it), in the file's order. One the
/// file adds is a note for people, taken as written, and may not claim a recovery; an edited or
/// repeated one is refused.
fn kept_procedures(generated: &Plan, edited: &Plan) -> Result<Vec<RollbackProcedure>, PlanError> {
    let mut kept: Vec<RollbackProcedure> = Vec::new();
    for r in &edited.rollbacks {
        if kept.iter().any(|k| k.id == r.id) {
            return Err(PlanError::DuplicateProcedure(r.id.clone()));
        }
        let Some(g) = generated.rollbacks.iter().find(|g| g.id == r.id) else {
            if let Some(recovers) = r.recovers {
                let recovers = serde_json::to_value(recovers).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                return Err(PlanError::NewProcedureRecovers { id: r.id.clone(), recovers });
            }
            kept.push(r.clone());
            continue;
        };
        let runs = |p: &RollbackProcedure| p.commands.iter().map(|c| c.run.clone()).collect::<Vec<_>>();
        let field = if runs(r) != runs(g) {
            Some("its commands")
        } else if r.recovers != g.recovers {
            Some("`recovers`")
        } else if r.when != g.when {
            Some("`when`")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(PlanError::EditedProcedure { id: r.id.clone(), field });
        }
        kept.push(g.clone());
    }
    Ok(kept)
}

/// `90 s`, `12 min`, `2 h 5 min`.
pub fn format_duration(seconds: u32) -> String {
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 7200 {
        format!("{} min", (seconds + 30) / 60)
    } else {
        let minutes = (seconds + 30) / 60;
        if minutes.is_multiple_of(60) {
            format!("{} h", minutes / 60)
        } else {
            format!("{} h {} min", minutes / 60, minutes % 60)
        }
    }
}

fn rewrite_strings(value: &mut serde_json::Value, rewrite: &dyn Fn(&str) -> String) {
    match value {
        serde_json::Value::String(s) => *s = rewrite(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| rewrite_strings(v, rewrite)),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| rewrite_strings(v, rewrite)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::format_duration;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(format_duration(30), "30 s");
        assert_eq!(format_duration(600), "10 min");
        assert_eq!(format_duration(7200), "2 h");
        assert_eq!(format_duration(3 * 3600 + 300), "3 h 5 min");
    }
}
