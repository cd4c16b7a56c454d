//! The values a fidelity row sets side by side, typed: what the twin predicts and what the lab
//! observed, when two of them agree, and how each is written for people.
//!
//! Two values agree when they are equal, with one documented equivalence: a value that carries a
//! reason (a refusal, a halt, TLS rejected, a client that is down, a run that is stuck) agrees by
//! its kind, not by its words; the twin's words are the model's, the lab's are etcd's or rustls's.
//! A value the lab could not read ([`Observed::Unanswered`]) agrees with nothing; one nothing
//! answered ([`Observed::NoAnswer`]) agrees only with the twin's prediction that nothing is up to
//! answer ([`Observed::NothingUp`]).

use plan_model::topology::{NodeSet, Topology};
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::Outcome;
use std::mem::discriminant;

/// One side of an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A yes-or-no fact: a file names the VIP, a cert carries its SAN, quorum holds, a node is Ready.
    Yes(bool),
    /// A command's answer: taken, or refused for a reason. Refusals agree whatever their reasons.
    Answer(Result<(), String>),
    /// Inventory nodes (voters, healthy backends), and what the lab saw that is no inventory node
    /// (a member, a backend): the twin never has such, so any makes the two disagree.
    Nodes { known: NodeSet, unknown: Vec<String> },
    /// What became of a step.
    Step(StepStatus),
    /// The recoveries taken, in order.
    Recoveries(Vec<RecoveryKind>),
    /// How the run ended.
    Ending(Ending),
    /// The lab could not read the value (`no answer: ...`, `members differ: ...`, shown as it
    /// is): agrees with nothing.
    Unanswered(String),
    /// The lab asked and nothing answered (no etcd member answers): agrees with
    /// [`Observed::NothingUp`] alone.
    NoAnswer(String),
    /// The twin's: nothing is up to answer (no etcd member runs), so the lab's read gets no
    /// answer; it agrees with [`Observed::NoAnswer`] alone.
    NothingUp(String),
}

impl Observed {
    /// Inventory nodes, nothing else.
    pub fn nodes(known: NodeSet) -> Observed {
        Observed::Nodes { known, unknown: Vec::new() }
    }

    /// Nodes the lab names (HAProxy's servers), parsed once here: a name of no inventory node is
    /// kept as it is, and disagrees.
    pub fn named_nodes<'a>(t: &Topology, names: impl IntoIterator<Item = &'a str>) -> Observed {
        let (mut known, mut unknown) = (NodeSet::EMPTY, Vec::new());
        for name in names {
            match t.all_nodes().iter().find(|&n| t.name(n) == name) {
                Some(node) => known = known.with(node),
                None => unknown.push(name.to_string()),
            }
        }
        Observed::Nodes { known, unknown }
    }

    /// A command's answer (the twin's `apply`, etcd's), its refusal in words.
    pub fn answer<T, E: std::fmt::Display>(answer: &Result<T, E>) -> Observed {
        Observed::Answer(answer.as_ref().map(|_| ()).map_err(ToString::to_string))
    }

    /// This value with a note for people beside it (not compared).
    pub fn with(self, detail: impl Into<String>) -> Cell {
        Cell { value: self, detail: Some(detail.into()) }
    }

    /// Whether `self` (the twin's) and `lab` agree: equal, a reason compared by its kind only.
    pub fn agrees_with(&self, lab: &Observed) -> bool {
        use Observed as O;
        match (self, lab) {
            (O::NothingUp(_), O::NoAnswer(_)) => true,
            (O::Unanswered(_) | O::NoAnswer(_) | O::NothingUp(_), _) | (_, O::Unanswered(_) | O::NoAnswer(_) | O::NothingUp(_)) => false,
            (O::Answer(a), O::Answer(b)) => a.is_ok() == b.is_ok(),
            (O::Step(a), O::Step(b)) => discriminant(a) == discriminant(b),
            (O::Ending(a), O::Ending(b)) => a.agrees_with(b),
            (a, b) => a == b,
        }
    }

    /// The value in words, nodes by their inventory names.
    pub fn render(&self, t: &Topology) -> String {
        let names = |set: NodeSet| super::node_names(t, set);
        let either = |yes: bool, (on, off): (&str, &str)| if yes { on } else { off }.to_string();
        match self {
            Observed::Yes(yes) => either(*yes, ("yes", "no")),
            Observed::Answer(Ok(())) => "ok".to_string(),
            Observed::Answer(Err(why)) => format!("refused: {why}"),
            Observed::Nodes { known, unknown } if unknown.is_empty() => names(*known),
            Observed::Nodes { known, unknown } => format!("{} + no inventory node: {}", names(*known), unknown.join(", ")),
            Observed::Step(status) => status.to_string(),
            Observed::Recoveries(kinds) if kinds.is_empty() => "none".to_string(),
            Observed::Recoveries(kinds) => kinds.iter().map(RecoveryKind::describe).collect::<Vec<_>>().join(" + "),
            Observed::Ending(ending) => ending.label(),
            Observed::Unanswered(what) | Observed::NoAnswer(what) | Observed::NothingUp(what) => what.clone(),
        }
    }
}

/// A value and a note for people beside it: the note (a timing, the server a file names, etcd's
/// words) is shown, never compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub value: Observed,
    pub detail: Option<String>,
}

impl From<Observed> for Cell {
    fn from(value: Observed) -> Cell {
        Cell { value, detail: None }
    }
}

impl Cell {
    /// `value (detail)`.
    pub fn render(&self, t: &Topology) -> String {
        match &self.detail {
            Some(detail) => format!("{} ({detail})", self.value.render(t)),
            None => self.value.render(t),
        }
    }
}

/// What became of a step in a run: done, halted there (the reason is not compared), or never run
/// after a halt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Done,
    Halted(String),
    NotRun,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepStatus::Done => write!(f, "done"),
            StepStatus::Halted(why) => write!(f, "halted: {why}"),
            StepStatus::NotRun => write!(f, "not run"),
        }
    }
}

/// How a run ended, in the twin's words where the executor's end has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// One of the twin's outcomes (the executor's mapped onto them: a rollback done, a quorum
    /// recovery, a hold, a recovery that failed is stuck).
    Outcome(Outcome),
    /// Halted at the step without a recovery carried out (none needed, none taken, declined).
    HaltedAt(String),
    /// The executor declined to start the phase.
    Declined { phase: String },
    /// A recovery the twin's outcomes have no word for.
    RecoveredBy(RecoveryKind),
    /// The worst case done: etcd restored from the backup. Whether writes after the backup were
    /// lost is read from the data ([`crate::executor_etcd::SliceEtcd::rows`]); how much, in the
    /// twin's clock, is not compared.
    Restored,
}

impl Ending {
    /// Equal, except that two stuck runs agree whatever their reasons (the twin's and the
    /// executor's failed rollback say it in their own words), and a restore from the backup
    /// agrees with the twin's whatever the twin's clock says was lost (the data rows compare
    /// whether writes after the backup were lost).
    pub fn agrees_with(&self, other: &Ending) -> bool {
        match (self, other) {
            (Ending::Outcome(Outcome::Stuck { .. }), Ending::Outcome(Outcome::Stuck { .. })) => true,
            (Ending::Outcome(Outcome::RestoredFromSnapshot { .. }), Ending::Restored)
            | (Ending::Restored, Ending::Outcome(Outcome::RestoredFromSnapshot { .. })) => true,
            // Went on without the same machines and stopped at the same step (or at none): each
            // says why in its own words.
            (
                Ending::Outcome(Outcome::WentOn { without: a, stopped_at: at_a }),
                Ending::Outcome(Outcome::WentOn { without: b, stopped_at: at_b }),
            ) => a == b && at_a.as_ref().map(|at| &at.step) == at_b.as_ref().map(|at| &at.step),
            (a, b) => a == b,
        }
    }

    /// `completed`, `rolled back phase 2`, `halted at 0.3`, `declined phase 3`, ...
    pub fn label(&self) -> String {
        match self {
            Ending::Outcome(outcome) => outcome.label(),
            Ending::HaltedAt(step) => format!("halted at {step}"),
            Ending::Declined { phase } => format!("declined phase {phase}"),
            Ending::RecoveredBy(kind) => format!("recovered by {}", kind.describe()),
            Ending::Restored => "restored from the backup".to_string(),
        }
    }
}
