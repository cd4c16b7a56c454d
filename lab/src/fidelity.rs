//! The fidelity table: each observation, the twin's prediction beside the lab's real result,
//! whether they agree and how much the lab's value can be trusted.

use serde::Serialize;

/// How much an observation can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// Real etcd (or a real process) produced the lab's value.
    Real,
    /// The lab has no real part here and repeats the model (a host that is down, a kubeadm check).
    StandIn,
    /// The lab cannot do this: nothing confirms the twin.
    NotRehearsed,
}

/// Nodes as a table cell: their names, comma-separated, or `none`.
pub fn node_names(t: &plan_model::topology::Topology, set: plan_model::topology::NodeSet) -> String {
    if set.is_empty() {
        "none".to_string()
    } else {
        set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// One line of the fidelity table.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityRow {
    pub step: String,
    pub observation: String,
    pub twin: String,
    pub lab: String,
    pub evidence: Evidence,
    pub agree: bool,
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
    /// Every row agrees and none is unrehearsed.
    pub fn agrees(&self) -> bool {
        self.rows.iter().all(|r| r.agree)
    }
    pub fn disagreements(&self) -> impl Iterator<Item = &FidelityRow> {
        self.rows.iter().filter(|r| !r.agree)
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
        let mark = match (r.agree, r.evidence) {
            (false, Evidence::NotRehearsed) => "??",
            (false, _) => "!=",
            (true, Evidence::StandIn) => "~ ",
            (true, _) => "  ",
        };
        out.push_str(&format!("{mark}{:ws$}  {:wo$}  {:wt$}  {}\n", r.step, r.observation, r.twin, r.lab));
    }
    let disagree = report.rows.iter().filter(|r| !r.agree).count();
    out.push_str(&format!(
        "\n{} observations, {} real, {} stand-in, {} disagree.  (!= disagree, ~ stand-in: the lab repeats the model, ?? not rehearsed)\n",
        report.rows.len(),
        report.rows.iter().filter(|r| r.evidence == Evidence::Real).count(),
        report.rows.iter().filter(|r| r.evidence == Evidence::StandIn).count(),
        disagree
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
    out.push_str(if disagree == 0 { "The lab agrees with the twin.\n" } else { "The lab DISAGREES with the twin.\n" });
    out
}
