//! What a run reports: why it halted, how it ended, what broke, its timeline and the downtime
//! clients saw.

use plan_model::action::Refusal;
use plan_model::invariant::InvariantClass;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why the executor stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "why")]
pub enum Halt {
    Refused(Refusal),
    /// Reality differs from the plan's expectation before a step (in words shared by every halt
    /// on the same drift).
    Drift(std::sync::Arc<str>),
    /// The step stopped after part of its actions.
    HalfWay,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Halt::Refused(r) => write!(f, "{}", r.reason),
            Halt::Drift(why) => write!(f, "drift: {why}"),
            Halt::HalfWay => write!(f, "the step failed half-way"),
        }
    }
}

/// Where the rest of a plan going on without machines stopped: the step that needs them, and the
/// model's words for why. In JSON (and for people) one string, `STEP: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedAt {
    pub step: String,
    pub why: String,
}

impl std::fmt::Display for StoppedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.why)
    }
}

impl Serialize for StoppedAt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Outcome {
    /// The plan ran to its end (perhaps after waits and retries).
    Completed,
    RolledBack {
        phase: String,
    },
    /// Stopped after the cut-over with nothing to undo: the cluster runs on (dead members removed).
    Halted {
        step: String,
    },
    /// The machines down for good written off, and the rest of the plan run without them: to
    /// its end, or up to the step where it needs what they were (`stopped_at`: the step and why).
    WentOn {
        without: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stopped_at: Option<StoppedAt>,
    },
    /// Quorum recovered by force-new-cluster on a surviving voter, then the other new masters
    /// undone (the migration too where that voter is the first master; else the cluster runs on it).
    QuorumRecovered,
    /// Restored from the newest snapshot: writes lost.
    RestoredFromSnapshot {
        lost_s: u32,
    },
    /// No recovery restored a working cluster.
    Stuck {
        why: String,
    },
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Completed => "completed".to_string(),
            Outcome::RolledBack { phase } => format!("rolled back phase {phase}"),
            Outcome::Halted { step } => format!("halted at {step}, the cluster runs on"),
            Outcome::WentOn { without, stopped_at: None } => format!("completed without {} (written off)", without.join(", ")),
            Outcome::WentOn { without, stopped_at: Some(at) } => {
                format!("went on without {} (written off), halted at {at}", without.join(", "))
            }
            Outcome::QuorumRecovered => "quorum recovered (RQ), the other new masters undone".to_string(),
            Outcome::RestoredFromSnapshot { lost_s } => {
                format!("restored from snapshot, {} of writes lost", plan_model::plan::format_duration(*lost_s))
            }
            Outcome::Stuck { why } => format!("stuck: {why}"),
        }
    }
}

/// The first time an invariant broke in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub invariant: &'static str,
    pub class: InvariantClass,
    pub step: String,
    pub clock_s: u32,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Action,
    Fault,
    Heal,
    Halt,
    Recovery,
    Skipped,
    Wait,
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub clock_s: u32,
    pub step: String,
    pub kind: EventKind,
    pub what: String,
    /// State fields that changed.
    pub changes: Vec<String>,
    /// Observations that flipped.
    pub flipped: Vec<String>,
    /// Invariants this event broke.
    pub broke: Vec<String>,
    /// A short disruption inside the action, if any: what and seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transient: Option<(String, u32)>,
}

/// Seconds a class of clients could not use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ClassDowntime {
    pub down_s: u32,
    /// Some requests failed (the LB spread them over backends that differ).
    pub degraded_s: u32,
}

/// Client-visible downtime per consumer class, and NotReady node-seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Downtime {
    pub consumers: BTreeMap<String, ClassDowntime>,
    pub node_not_ready_s: u32,
}

/// An availability invariant broken between steps without a declared disruption, in a run
/// without faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undeclared {
    pub step: String,
    pub invariant: &'static str,
    pub why: String,
}
