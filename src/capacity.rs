//! `plan capacity`: will the migration fit the hypervisors, what size should the masters be, and what is the single point of failure when.

use crate::cli::ReportFormat;
use crate::input::Loaded;
use crate::Failure;
use plan_model::capacity::{
    self, gb, CapacityReport, CapacityVerdict, HypervisorCapacity, RamVerdict, SinglePoint, Survival, TriggerState, VcpuVerdict,
};
use plan_model::plan::format_duration;
use std::fmt::Write;

#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

pub fn run(loaded: &Loaded, options: &CapacityArgs) -> Result<(), Failure> {
    let report = capacity::analyse(&loaded.topology, &loaded.plan).map_err(|e| Failure::Input(e.to_string()))?;
    match options.format {
        ReportFormat::Json => crate::output::print_json(&report)?,
        ReportFormat::Text => crate::output::print(&text(&report, loaded.edited))?,
    }
    match report.verdict {
        CapacityVerdict::Fits => Ok(()),
        CapacityVerdict::OverCommitted => Err(Failure::Violation(format!("capacity: over-committed: {}", over_committed_line(&report)))),
    }
}

/// `pve 262 + 2 x 32 = 326 GB against 267 GB physical (limit 253.7 GB)`, for every hypervisor that does not fit.
fn over_committed_line(r: &CapacityReport) -> String {
    r.over_committed()
        .map(|h| {
            let mut line =
                format!("{} {} GB against {} GB physical (limit {} GB)", h.name, h.peak_sum(), gb(h.ram.physical_gb), gb(h.ram.limit_gb));
            if let (VcpuVerdict::OverLimit, Some(peak), Some(limit)) = (h.vcpu.verdict, h.vcpu.peak, h.vcpu.limit) {
                let _ = write!(line, ", {peak} vCPU over the {} vCPU limit", gb(limit));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn plural(count: u32, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn voters(min: u32, max: u32) -> String {
    if min == max {
        plural(min, "voter", "voters")
    } else {
        format!("{min}-{max} voters")
    }
}

fn names(points: &[SinglePoint]) -> String {
    if points.is_empty() {
        "none".to_string()
    } else {
        points.iter().map(|p| p.machine.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn hypervisor_text(out: &mut String, h: &HypervisorCapacity) {
    let verdict = match (h.fits, h.migration_adds, h.ram.verdict) {
        (true, _, _) => "fits".to_string(),
        (false, false, _) => "over its limit before the migration (the plan adds nothing here)".to_string(),
        (false, true, RamVerdict::OverPhysical) => "OVER-COMMITTED (beyond physical RAM)".to_string(),
        (false, true, RamVerdict::OverHeadroom) => "OVER-COMMITTED (into the headroom)".to_string(),
        (false, true, RamVerdict::Fits) => "OVER-COMMITTED (vCPU)".to_string(),
    };
    let ram = &h.ram;
    let _ = writeln!(out, "  {}: {verdict}", h.name);
    let peak_at = ram.peak_step.as_ref().map(|s| format!(" (from step {s})")).unwrap_or_default();
    let _ = writeln!(out, "    RAM   before {} GB, peak {} GB{peak_at}, after {} GB", gb(ram.before_gb), gb(ram.peak_gb), gb(ram.after_gb));
    let _ = writeln!(
        out,
        "          {} GB against {} GB physical, limit {} GB ({}% headroom)",
        h.peak_sum(),
        gb(ram.physical_gb),
        gb(ram.limit_gb),
        gb(ram.headroom_percent)
    );
    let mut standing = match ram.verdict {
        RamVerdict::Fits => format!("{} GB spare under the limit", gb(ram.spare_gb)),
        RamVerdict::OverHeadroom => format!("{} GB over the limit, within physical RAM", gb(ram.over_limit_gb)),
        RamVerdict::OverPhysical => {
            format!("{} GB over the limit, {} GB over physical RAM", gb(ram.over_limit_gb), gb(ram.over_physical_gb))
        }
    };
    if ram.swap_used_gb > 0.0 {
        let _ = write!(standing, "; {} GB of swap already in use", gb(ram.swap_used_gb));
    }
    let _ = writeln!(out, "          {standing}");
    let v = &h.vcpu;
    let vcpu = match (v.before, v.peak, v.cores) {
        (Some(before), Some(peak), cores) => {
            let cores = cores.map(|c| format!(" on {c} cores")).unwrap_or_default();
            let judged = match (v.verdict, v.limit) {
                (VcpuVerdict::Fits, Some(limit)) => format!(": within the {} vCPU limit", gb(limit)),
                (VcpuVerdict::OverLimit, Some(limit)) => format!(": OVER the {} vCPU limit", gb(limit)),
                _ => ": not judged (no cores or vcpu_per_core_max)".to_string(),
            };
            format!("before {before}, peak {peak}{cores}{judged}")
        }
        _ => format!("new masters add {} vCPU; the host's allocation is not in the inventory: not judged", v.added_at_peak),
    };
    let _ = writeln!(out, "    vCPU  {vcpu}");
    if !h.new_masters.is_empty() {
        let placed: Vec<String> = h.new_masters.iter().map(|m| format!("{} ({} GB, {} vCPU)", m.name, gb(m.ram_gb), m.vcpu)).collect();
        let _ = writeln!(out, "    new masters here: {}", placed.join(", "));
    }
}

fn sizing_text(out: &mut String, r: &CapacityReport) {
    let s = &r.sizing;
    let _ = writeln!(out, "\nSizing (every master at one size)");
    let (Some(needed), Some(smallest)) = (s.needed_gb, s.smallest_size_gb) else {
        let _ = writeln!(out, "  no measured master memory use (ram_used_gb) in the inventory: no smallest size to advise");
        size_lines(out, r);
        return;
    };
    let measured: Vec<String> = s
        .measured
        .iter()
        .map(|m| match m.ram_gb {
            Some(ram) => format!("{} uses {} GB of {} GB", m.name, gb(m.used_gb), gb(ram)),
            None => format!("{} uses {} GB", m.name, gb(m.used_gb)),
        })
        .collect();
    let _ = writeln!(out, "  measured: {}", measured.join(", "));
    let _ = writeln!(
        out,
        "  a master must hold {} GB ({}% of it kept free above the use): smallest size {} GB",
        gb(needed),
        gb(s.master_ram_headroom_percent),
        gb(smallest)
    );
    size_lines(out, r);
}

fn size_lines(out: &mut String, r: &CapacityReport) {
    let s = &r.sizing;
    let existing: Vec<&plan_model::capacity::MeasuredMaster> = s.measured.iter().collect();
    for option in &s.sizes {
        let peaks: Vec<String> =
            option.hypervisors.iter().map(|h| format!("{} {} of {} GB", h.hypervisor, gb(h.peak_gb), gb(h.limit_gb))).collect();
        let standing =
            if option.fits { format!("fits, {} GB spare", gb(option.spare_gb)) } else { format!("{} GB to free", gb(option.to_free_gb)) };
        let mut line = format!("  {:>5} GB: peak {}: {standing}", gb(option.size_gb), peaks.join(", "));
        let resized: Vec<String> = existing
            .iter()
            .filter_map(|m| m.ram_gb.filter(|ram| *ram != option.size_gb).map(|ram| format!("{} at {} GB", m.name, gb(ram))))
            .collect();
        if !resized.is_empty() {
            let keeping = if option.fits_keeping_existing {
                "fits".to_string()
            } else {
                format!("{} GB to free", gb(option.to_free_keeping_existing_gb))
            };
            let _ = write!(line, "; keeping {}: {keeping}", resized.join(", "));
        }
        if option.size_gb == s.planned_size_gb {
            line.push_str("  (planned)");
        }
        let _ = writeln!(out, "{line}");
    }
}

fn exposure_text(out: &mut String, r: &CapacityReport) {
    let e = &r.exposure;
    let _ = writeln!(out, "\nSingle points of failure (one machine whose loss stops part of the control plane)");
    let state = |x: &plan_model::capacity::StateExposure| {
        format!(
            "{} etcd {}, tolerates {}: {}",
            x.voters,
            if x.voters == 1 { "voter" } else { "voters" },
            x.tolerance,
            names(&x.single_points)
        )
    };
    let _ = writeln!(out, "  before  {}", state(&e.before));
    let _ = writeln!(out, "  after   {}", state(&e.after));
    let _ = writeln!(out, "\n  {:<6} {:>10} {:>12} {:>9}  single points of failure", "phase", "time", "etcd", "tolerates");
    for p in &e.phases {
        let _ = writeln!(
            out,
            "  {:<6} {:>10} {:>12} {:>9}  {}",
            p.phase,
            format_duration(p.duration_s),
            voters(p.voters_min, p.voters_max),
            p.tolerance,
            names(&p.single_points)
        );
    }
    let _ = writeln!(out, "\n  Exposure windows (consecutive steps with the same exposure):");
    for w in &e.windows {
        let steps = if w.from_step == w.to_step { w.from_step.clone() } else { format!("{}-{}", w.from_step, w.to_step) };
        let _ = writeln!(
            out,
            "  {:<12} {:>10}  {}, tolerates {}",
            steps,
            format_duration(w.duration_s),
            voters(w.voters_min, w.voters_max),
            w.tolerance
        );
        for p in &w.single_points {
            let _ = writeln!(out, "      {}: {}", p.machine, p.impact.summary());
        }
    }
    let timed: Vec<String> = e.single_point_time.iter().map(|s| format!("{} {}", s.machine, format_duration(s.duration_s))).collect();
    let _ =
        writeln!(out, "\n  time as a single point of failure: {}", if timed.is_empty() { "none".to_string() } else { timed.join(", ") });
    let _ = writeln!(
        out,
        "  time with an etcd that tolerates no failure: {} of {}",
        format_duration(e.tolerance_zero_s),
        format_duration(r.plan_duration_s)
    );

    let res = &e.resilience;
    let _ = writeln!(out, "\nAfter the migration ({} etcd voters, tolerates {})", e.after.voters, e.after.tolerance);
    let masters = match res.master_vm_failure {
        Survival::Survivable => "survivable".to_string(),
        other => format!("{}: {} cannot fail alone", other.label(), res.masters_single_points.join(", ")),
    };
    let _ = writeln!(out, "  a master VM fails:        {masters}");
    let lb_name = &r.exposure.after.single_points.iter().find(|p| p.kind == plan_model::capacity::MachineKind::LoadBalancer);
    let lb = match (res.load_balancer_failure, lb_name) {
        _ if res.vip_on_masters.is_some() => {
            let v = res.vip_on_masters.as_ref().expect("checked");
            format!("no such machine: {} holds the VIP on the masters (about {} s to move it when its holder fails)", v.kind, v.failover_s)
        }
        (Survival::Survivable, _) => "survivable".to_string(),
        (other, Some(point)) => format!("{} ({}): {}", other.label(), point.machine, point.impact.summary()),
        (other, None) => other.label().to_string(),
    };
    let _ = writeln!(out, "  the load balancer fails:  {lb}");
    let _ = writeln!(out, "  a hypervisor fails:       {}", res.hypervisor_failure.label());
    for h in &res.hypervisors {
        let verdict = if h.survivable { "survivable".to_string() } else { h.impact.summary() };
        let held = if h.masters.is_empty() {
            "no master".to_string()
        } else {
            format!("{}; {}", h.masters.join(", "), plural(h.voters, "voter", "voters"))
        };
        let _ = writeln!(out, "      {} ({held}): {verdict}", h.hypervisor);
    }
    let conclusion = match (res.master_vm_failure, res.hypervisor_failure) {
        (Survival::Survivable, Survival::Survivable) => "HA against a master VM failure and a host failure",
        (Survival::Survivable, Survival::PartlySurvivable) => "HA against a master VM failure; against a host failure only for some hosts",
        (Survival::Survivable, Survival::NotSurvivable) => "HA against a master VM failure, not against a host failure",
        _ => "not HA: a single master VM failure stops part of the control plane",
    };
    let _ = writeln!(out, "  => {conclusion}");
}

fn text(r: &CapacityReport, edited: bool) -> String {
    let mut out = format!(
        "plan capacity: scenario {}{}, {} -> {} masters, plan about {}\n",
        r.scenario,
        if edited { " (edited plan)" } else { "" },
        r.masters_before,
        r.masters_after,
        format_duration(r.plan_duration_s)
    );
    let vcpu_policy = match r.policy.vcpu_per_core_max {
        Some(ratio) => format!("at most {} vCPU per core", gb(ratio)),
        None => "vCPU reported, not judged (no vcpu_per_core_max)".to_string(),
    };
    let _ = writeln!(
        out,
        "  policy: keep {}% of each hypervisor's RAM free; masters keep {}% free above measured use; {vcpu_policy}",
        gb(r.policy.ram_headroom_percent),
        gb(r.policy.master_ram_headroom_percent)
    );
    if let Some(halt) = &r.plan_halted {
        let _ = writeln!(out, "  the plan halts at step {} without any fault ({}): figures stop there", halt.step, halt.reason);
    }
    let _ = writeln!(out, "\nHypervisors");
    for h in &r.hypervisors {
        hypervisor_text(&mut out, h);
    }
    sizing_text(&mut out, r);
    exposure_text(&mut out, r);
    if !r.triggers.is_empty() {
        let _ = writeln!(out, "\nRevisit triggers of the source plan");
    }
    for t in &r.triggers {
        let state = match t.state {
            TriggerState::Met => "met",
            TriggerState::NotMet => "not met",
            TriggerState::Unknown => "unknown",
        };
        let _ = writeln!(out, "  [{state}] {}\n      {}", t.source, t.evidence);
    }
    let verdict = match r.verdict {
        CapacityVerdict::Fits => {
            let peaks: Vec<String> =
                r.hypervisors.iter().filter(|h| h.migration_adds).map(|h| format!("{} peak {} GB", h.name, h.peak_sum())).collect();
            let fits = crate::output::paint(crate::output::GOOD, "FITS");
            if peaks.is_empty() {
                fits
            } else {
                format!("{fits}: {}", peaks.join("; "))
            }
        }
        CapacityVerdict::OverCommitted => {
            format!("{}: {}", crate::output::paint(crate::output::BAD, "OVER-COMMITTED"), over_committed_line(r))
        }
    };
    let _ = writeln!(out, "\nVerdict: {verdict}");
    out
}
