//! The fidelity table: each observation, the twin's value beside the lab's, compared as values,
//! and how much the lab's value can be trusted.

use plan_model::topology::{NodeSet, Topology};
use serde::Serialize;

mod observed;
#[cfg(test)]
mod tests;

pub use observed::{Cell, Ending, Observed, StepStatus};

/// How much an observation can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// Real etcd (or a real process, file or TLS handshake) produced the lab's value.
    Real,
    /// The lab has no real part here and repeats the model (a host that is down, a kubeadm check).
    StandIn,
    /// The lab cannot do this: nothing confirms the twin.
    NotRehearsed,
}

/// What a row says about the twin, derived from its two values and its evidence
/// ([`FidelityRow::new`]), never written by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A real observation equal to the twin's prediction.
    Agree,
    /// The lab's value differs from the twin's, a stand-in's too (the stand-in did what the twin
    /// does not predict). Fails the rehearsal.
    Disagree,
    /// The lab only repeats the model: equal by construction, never counted as agreement.
    StandIn,
    /// Nothing on the lab can check it. Fails the rehearsal.
    NotRehearsed,
}

impl Verdict {
    /// The verdict on the twin's `twin` beside the lab's `lab`.
    pub fn of(twin: &Observed, lab: &Observed, evidence: Evidence) -> Verdict {
        match (evidence, twin.agrees_with(lab)) {
            (Evidence::NotRehearsed, _) => Verdict::NotRehearsed,
            (_, false) => Verdict::Disagree,
            (Evidence::Real, true) => Verdict::Agree,
            (Evidence::StandIn, true) => Verdict::StandIn,
        }
    }

    /// A rehearsal with such a row does not pass.
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Disagree | Verdict::NotRehearsed)
    }
}

/// Nodes as a table cell: their names, comma-separated, or `none`.
pub fn node_names(t: &Topology, set: NodeSet) -> String {
    if set.is_empty() {
        "none".to_string()
    } else {
        set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// One line of the fidelity table. Its cells are rendered from the values once, when it is made;
/// its verdict is derived from them.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityRow {
    step: String,
    observation: String,
    twin: String,
    lab: String,
    evidence: Evidence,
    /// `verdict` is `agree`: kept for the JSON's readers from before `verdict`.
    agree: bool,
    verdict: Verdict,
}

impl FidelityRow {
    /// The row of one observation at `step`: the twin's value beside the lab's, the verdict derived
    /// ([`Verdict::of`]).
    pub fn new(
        t: &Topology,
        step: impl Into<String>,
        observation: impl Into<String>,
        twin: impl Into<Cell>,
        lab: impl Into<Cell>,
        evidence: Evidence,
    ) -> FidelityRow {
        let (twin, lab) = (twin.into(), lab.into());
        let verdict = Verdict::of(&twin.value, &lab.value, evidence);
        FidelityRow {
            step: step.into(),
            observation: observation.into(),
            twin: twin.render(t),
            lab: lab.render(t),
            evidence,
            agree: verdict == Verdict::Agree,
            verdict,
        }
    }

    pub fn step(&self) -> &str {
        &self.step
    }
    pub fn observation(&self) -> &str {
        &self.observation
    }
    /// The twin's value, as shown.
    pub fn twin(&self) -> &str {
        &self.twin
    }
    /// The lab's value, as shown.
    pub fn lab(&self) -> &str {
        &self.lab
    }
    pub fn evidence(&self) -> Evidence {
        self.evidence
    }
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }
}

/// The table counted: the summary line under it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rows that compare something.
    pub observations: usize,
    /// Of those, the ones the lab observed for real.
    pub real: usize,
    /// Of those, the ones where the lab stands in (agreeing or not).
    pub stand_in: usize,
    pub not_rehearsed: usize,
    /// Rows that disagree, real or stand-in.
    pub disagree: usize,
}

impl Tally {
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a FidelityRow>) -> Tally {
        let mut tally = Tally::default();
        for row in rows {
            tally.observations += 1;
            match row.evidence {
                Evidence::Real => tally.real += 1,
                Evidence::StandIn => tally.stand_in += 1,
                Evidence::NotRehearsed => tally.not_rehearsed += 1,
            }
            if row.verdict == Verdict::Disagree {
                tally.disagree += 1;
            }
        }
        tally
    }
}

/// `N observations, R real, S stand-in, D disagree`, then what is not rehearsed, when any is.
impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observations, {} real, {} stand-in, {} disagree", self.observations, self.real, self.stand_in, self.disagree)?;
        if self.not_rehearsed > 0 {
            write!(f, ", {} not rehearsed", self.not_rehearsed)?;
        }
        Ok(())
    }
}

/// The table's last line: whether the rehearsal passes, and that stand-ins are not agreement.
pub fn verdict_line(passes: bool, tally: Tally) -> String {
    match (passes, tally.stand_in) {
        (false, _) => "The lab DISAGREES with the twin.\n".to_string(),
        (true, 0) => "The lab agrees with the twin.\n".to_string(),
        (true, n) => format!("The lab agrees with the twin on every real observation; {n} stand-in row(s) only repeat the model.\n"),
    }
}
