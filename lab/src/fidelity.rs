//! The fidelity table: each observation, the twin's value beside the lab's, compared as values,
//! and how much the lab's value can be trusted.

use plan_model::topology::{NodeSet, Topology};
use serde::Serialize;

mod observed;
#[cfg(test)]
mod tests;

pub use observed::{Cell, Ending, Observed, StepStatus, Tls};

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
    /// What the lab did at this point of the timeline (a fault injected or over, the executor
    /// halting): compared with nothing, neither agreement nor disagreement.
    Event,
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

    /// What the lab did at `step` beside what the twin did there (a fault struck, the executor
    /// halted): a line of the timeline, compared with nothing.
    pub fn event(step: impl Into<String>, what: impl Into<String>, twin: impl Into<String>, lab: impl Into<String>) -> FidelityRow {
        FidelityRow {
            step: step.into(),
            observation: what.into(),
            twin: twin.into(),
            lab: lab.into(),
            evidence: Evidence::Real,
            agree: false,
            verdict: Verdict::Event,
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
    /// Rows that compare something (events excluded).
    pub observations: usize,
    /// Of those, the ones the lab observed for real.
    pub real: usize,
    /// Of those, the ones where the lab stands in (agreeing or not).
    pub stand_in: usize,
    pub not_rehearsed: usize,
    /// Rows that disagree, real or stand-in.
    pub disagree: usize,
    pub events: usize,
}

impl Tally {
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a FidelityRow>) -> Tally {
        let mut tally = Tally::default();
        for row in rows {
            if row.verdict == Verdict::Event {
                tally.events += 1;
                continue;
            }
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

/// `N observations, R real, S stand-in, D disagree`, then what is not rehearsed and the lab's
/// events, when there are any.
impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observations, {} real, {} stand-in, {} disagree", self.observations, self.real, self.stand_in, self.disagree)?;
        if self.not_rehearsed > 0 {
            write!(f, ", {} not rehearsed", self.not_rehearsed)?;
        }
        if self.events > 0 {
            write!(f, "; {} lab event(s), compared with nothing", self.events)?;
        }
        Ok(())
    }
}

/// What a rehearsal measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// The whole rehearsal, lab start and teardown excluded.
    pub walk_ms: u64,
    /// The twin's run of the same schedule.
    pub twin_ms: u64,
    /// Real etcd operations performed (each one or more etcdctl calls).
    pub etcd_operations: u32,
    /// From the event that lost quorum to the first write etcd refused (a write without quorum
    /// fails only at its deadline, [`crate::etcd::PROBE_TIMEOUT_MS`]).
    pub quorum_loss_detected_ms: Option<u64>,
    /// The longest time writes failed although quorum held (a leader election after a crash).
    pub write_outage_ms: Option<u64>,
    /// What the client through the VIP saw (every request, verified against the lab CA).
    pub probe: Option<crate::probe::ProbeRecord>,
    /// Measured downtime beside the twin's prediction.
    pub vip_downtime: Option<VipDowntime>,
    /// HAProxy pool rewrites performed (restarts when the scenario resets to declared state,
    /// graceful reloads otherwise).
    pub lb_rewrites: u32,
}

/// Client-visible downtime through the VIP: the twin's in model seconds, the lab's in wall-clock
/// milliseconds. They are not the same unit: the lab runs a step in milliseconds where the model
/// charges minutes, so the comparison is *where* outages happen, not how long they last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VipDowntime {
    /// Model seconds the twin predicts a VIP client cannot get a verified `/readyz`, after the
    /// VIP first served one.
    pub twin_down_s: u32,
    /// Steps the twin predicts that downtime in.
    pub twin_steps: Vec<String>,
    /// Wall-clock milliseconds the probe's requests failed, after the VIP first answered.
    pub measured_ms: u64,
    /// Measured outages longer than the tolerance in steps where the twin predicts none.
    pub unexplained: Vec<String>,
    /// Outages up to this long are HAProxy's detection delay, which the twin does not model.
    pub tolerance_ms: u64,
}

/// The result: the table, both outcomes, the figures.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityReport {
    pub scenario: String,
    pub learner_mode: bool,
    pub fault: Option<String>,
    pub at: Option<String>,
    pub rows: Vec<FidelityRow>,
    pub twin_outcome: String,
    pub lab_outcome: String,
    pub twin_recoveries: Vec<String>,
    pub lab_recoveries: Vec<String>,
    pub figures: Figures,
}

impl FidelityReport {
    /// No row disagrees and none is unrehearsed. Stand-in rows and events are not agreement, but
    /// they do not fail the rehearsal.
    pub fn agrees(&self) -> bool {
        !self.rows.iter().any(|r| r.verdict.fails())
    }
    /// The rows that fail the rehearsal: disagreements and what is not rehearsed.
    pub fn disagreements(&self) -> impl Iterator<Item = &FidelityRow> {
        self.rows.iter().filter(|r| r.verdict.fails())
    }
}

/// The table as text, one observation a line.
pub fn render(report: &FidelityReport) -> String {
    let mut out = String::new();
    let fault = match (&report.fault, &report.at) {
        (Some(f), Some(at)) => format!("{f} at {at}"),
        _ => "no fault".to_string(),
    };
    out.push_str(&format!(
        "plan rehearse: scenario {}, etcd learner mode {}, {fault}\n\n",
        report.scenario,
        if report.learner_mode { "on" } else { "off" }
    ));
    let widths = |f: fn(&FidelityRow) -> usize| report.rows.iter().map(f).max().unwrap_or(0);
    let (ws, wo, wt) = (widths(|r| r.step.len()).max(4), widths(|r| r.observation.len()).max(11), widths(|r| r.twin.len()).clamp(4, 60));
    out.push_str(&format!("  {:ws$}  {:wo$}  {:wt$}  {}\n", "step", "observation", "twin", "lab"));
    for r in &report.rows {
        let mark = match r.verdict {
            Verdict::Agree => "  ",
            Verdict::Disagree => "!=",
            Verdict::StandIn => "~ ",
            Verdict::NotRehearsed => "??",
            Verdict::Event => "> ",
        };
        out.push_str(&format!("{mark}{:ws$}  {:wo$}  {:wt$}  {}\n", r.step, r.observation, r.twin, r.lab));
    }
    let tally = Tally::of(&report.rows);
    out.push_str(&format!(
        "\n{tally}.  (!= disagree; ~ stand-in: the lab repeats the model, not agreement; ?? not rehearsed; > what the lab did, compared with nothing)\n"
    ));
    let f = &report.figures;
    out.push_str(&format!("Walk on the lab: {} ms, {} real etcd operations; the twin: {} ms", f.walk_ms, f.etcd_operations, f.twin_ms));
    if let Some(ms) = f.quorum_loss_detected_ms {
        out.push_str(&format!("; quorum loss detected {ms} ms after the event"));
    }
    if let Some(ms) = f.write_outage_ms {
        out.push_str(&format!("; writes failed for {ms} ms while a new leader was elected"));
    }
    out.push('\n');
    if let (Some(probe), Some(d)) = (&f.probe, &f.vip_downtime) {
        out.push_str(&format!(
            "Through the VIP: {} requests, {} ready, {} TLS-rejected; measured downtime {} ms (wall clock) vs the twin's {} s \
             (model clock: steps take minutes there, milliseconds here; compared by where outages fall, {} ms tolerance); \
             {} pool rewrite(s)\n",
            probe.requests, probe.ready, probe.tls_rejected, d.measured_ms, d.twin_down_s, d.tolerance_ms, f.lb_rewrites
        ));
    }
    out.push_str(&verdict_line(report.agrees(), tally));
    out
}

/// The table's last line: whether the rehearsal passes, and that stand-ins are not agreement.
pub fn verdict_line(passes: bool, tally: Tally) -> String {
    match (passes, tally.stand_in) {
        (false, _) => "The lab DISAGREES with the twin.\n".to_string(),
        (true, 0) => "The lab agrees with the twin.\n".to_string(),
        (true, n) => format!("The lab agrees with the twin on every real observation; {n} stand-in row(s) only repeat the model.\n"),
    }
}
