//! The exposure along the plan as a Gantt chart: phases, etcd fault tolerance and each single
//! point of failure against the plan's clock, and the same per phase as a table.

use super::markup::{clock, escape, id_part, px};
use plan_model::capacity::{ExposureReport, ExposureWindow, MachineKind, SinglePoint};
use plan_model::plan::format_duration;
use std::fmt::Write;

const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 1000.0;
const AXIS_H: f64 = 26.0;
const ROW_H: f64 = 28.0;
const BAR_H: f64 = 20.0;
/// A bar never narrower than this, so a 30-second window in a day-long plan still shows.
const BAR_W_MIN: f64 = 2.0;
/// The most ticks on the time axis.
const TICKS_MAX: u32 = 12;

/// Consecutive exposure windows in which one machine is a single point of failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglePointRun {
    pub machine: String,
    pub kind: MachineKind,
    /// Indexes into the windows, both included.
    pub first_window: usize,
    pub last_window: usize,
    /// What its failure stops, each distinct summary once, in window order.
    pub impacts: Vec<String>,
}

/// Every machine's runs as a single point of failure, machines in the order the report names
/// them (nodes, load balancer, hypervisors), runs in time order.
pub fn single_point_runs(exposure: &ExposureReport) -> Vec<SinglePointRun> {
    let mut runs: Vec<SinglePointRun> = Vec::new();
    for timed in &exposure.single_point_time {
        let mut current: Option<SinglePointRun> = None;
        for (i, window) in exposure.windows.iter().enumerate() {
            match (window.single_points.iter().find(|p| p.machine == timed.machine), current.as_mut()) {
                (Some(point), Some(run)) => {
                    run.last_window = i;
                    let summary = point.impact.summary();
                    if !run.impacts.contains(&summary) {
                        run.impacts.push(summary);
                    }
                }
                (Some(point), None) => current = Some(start_run(point, i)),
                (None, Some(_)) => runs.extend(current.take()),
                (None, None) => {}
            }
        }
        runs.extend(current);
    }
    runs
}

fn start_run(point: &SinglePoint, window: usize) -> SinglePointRun {
    SinglePointRun {
        machine: point.machine.clone(),
        kind: point.kind,
        first_window: window,
        last_window: window,
        impacts: vec![point.impact.summary()],
    }
}

fn kind_class(kind: MachineKind) -> &'static str {
    match kind {
        MachineKind::Master => "master",
        MachineKind::Worker => "worker",
        MachineKind::LoadBalancer => "load-balancer",
        MachineKind::Hypervisor => "hypervisor",
    }
}

/// The class of a tolerance bar: 0, 1, or 2 for two and more.
fn tolerance_class(tolerance: u32) -> u32 {
    tolerance.min(2)
}

/// A tick every this many seconds: the smallest round step that keeps the ticks at most [`TICKS_MAX`].
fn tick_step_s(total_s: u32) -> u32 {
    const STEPS_S: [u32; 11] = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    STEPS_S.into_iter().find(|step| total_s / step <= TICKS_MAX).unwrap_or(86400 * (total_s / 86400 / TICKS_MAX + 1))
}

/// The plan's clock mapped onto the plot.
struct Scale {
    total_s: u32,
}

impl Scale {
    fn x(&self, seconds: u32) -> f64 {
        LABEL_W + PLOT_W * f64::from(seconds) / f64::from(self.total_s.max(1))
    }

    fn width(&self, from_s: u32, duration_s: u32) -> f64 {
        (self.x(from_s + duration_s) - self.x(from_s)).max(BAR_W_MIN)
    }
}

/// Start of each window on the plan's clock: windows follow each other without a gap.
fn starts(durations: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut at = 0;
    durations
        .map(|d| {
            let start = at;
            at += d;
            start
        })
        .collect()
}

/// One bar of the chart: a row, a span of the plan's clock, how it looks and what it says.
struct Bar<'a> {
    row: usize,
    from_s: u32,
    duration_s: u32,
    class: &'a str,
    /// Written on the bar where it fits; empty for none.
    label: &'a str,
    tooltip: &'a str,
}

fn bar(out: &mut String, scale: &Scale, b: &Bar) {
    let x = scale.x(b.from_s);
    let w = scale.width(b.from_s, b.duration_s);
    let y = AXIS_H + b.row as f64 * ROW_H + (ROW_H - BAR_H) / 2.0;
    let _ = write!(
        out,
        "<g><title>{}</title><rect class=\"bar {}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
        escape(b.tooltip),
        b.class,
        px(x),
        px(y),
        px(w),
        px(BAR_H)
    );
    // A label only where it fits (about 6.5 px a character).
    if !b.label.is_empty() && w > b.label.chars().count() as f64 * 6.5 + 6.0 {
        let _ = write!(out, "<text class=\"bar-label\" x=\"{}\" y=\"{}\">{}</text>", px(x + 4.0), px(y + 14.0), escape(b.label));
    }
    out.push_str("</g>\n");
}

fn row_label(out: &mut String, row: usize, label: &str, class: &str) {
    let y = AXIS_H + row as f64 * ROW_H;
    let _ = writeln!(
        out,
        "<rect class=\"gantt-row{}\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/><text class=\"row-label {class}\" x=\"8\" y=\"{}\">{}</text>",
        if row % 2 == 1 { " odd" } else { "" },
        px(y),
        px(LABEL_W + PLOT_W + 10.0),
        px(ROW_H),
        px(y + 18.0),
        escape(label)
    );
}

fn axis(out: &mut String, scale: &Scale, rows: usize) {
    let step = tick_step_s(scale.total_s);
    let bottom = AXIS_H + rows as f64 * ROW_H;
    let mut at = 0;
    while at <= scale.total_s {
        let x = scale.x(at);
        let _ = writeln!(
            out,
            "<line class=\"tick\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"tick-label\" x=\"{x}\" y=\"16\">{}</text>",
            px(AXIS_H - 4.0),
            px(bottom),
            clock(at),
            x = px(x)
        );
        at += step;
    }
}

fn window_steps(w: &ExposureWindow) -> String {
    if w.from_step == w.to_step {
        format!("step {}", w.from_step)
    } else {
        format!("steps {} to {}", w.from_step, w.to_step)
    }
}

fn voters(min: u32, max: u32) -> String {
    match (min, max) {
        (1, 1) => "1 etcd voter".to_string(),
        (a, b) if a == b => format!("{a} etcd voters"),
        (a, b) => format!("{a}-{b} etcd voters"),
    }
}

/// The Gantt chart of `exposure` as one `<svg>` element.
pub fn svg(exposure: &ExposureReport) -> String {
    let scale = Scale { total_s: exposure.windows.iter().map(|w| w.duration_s).sum() };
    let runs = single_point_runs(exposure);
    let machines: Vec<&str> = exposure.single_point_time.iter().map(|s| s.machine.as_str()).collect();
    let rows = 2 + machines.len();
    let height = AXIS_H + rows as f64 * ROW_H + 4.0;
    let width = LABEL_W + PLOT_W + 10.0;
    let mut out = format!(
        "<svg class=\"gantt\" id=\"exposure-gantt\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Exposure along the plan: phases, etcd fault tolerance, single points of failure\">\n",
        w = px(width),
        h = px(height)
    );
    row_label(&mut out, 0, "phase", "");
    row_label(&mut out, 1, "etcd tolerates", "");
    for (i, machine) in machines.iter().enumerate() {
        row_label(&mut out, 2 + i, machine, "machine");
    }
    axis(&mut out, &scale, rows);
    let phase_starts = starts(exposure.phases.iter().map(|p| p.duration_s));
    for (p, from) in exposure.phases.iter().zip(phase_starts) {
        let tooltip =
            format!("Phase {} - {} (steps {} to {}, {})", p.phase, p.title, p.first_step, p.last_step, format_duration(p.duration_s));
        bar(
            &mut out,
            &scale,
            &Bar { row: 0, from_s: from, duration_s: p.duration_s, class: "phase-bar", label: &p.phase, tooltip: &tooltip },
        );
    }
    let window_starts = starts(exposure.windows.iter().map(|w| w.duration_s));
    for (w, from) in exposure.windows.iter().zip(&window_starts) {
        let tooltip = format!(
            "{}, {}: {}, tolerates {} failure(s)",
            window_steps(w),
            format_duration(w.duration_s),
            voters(w.voters_min, w.voters_max),
            w.tolerance
        );
        let class = format!("tolerance tolerance-{}", tolerance_class(w.tolerance));
        let label = w.tolerance.to_string();
        bar(&mut out, &scale, &Bar { row: 1, from_s: *from, duration_s: w.duration_s, class: &class, label: &label, tooltip: &tooltip });
    }
    for run in &runs {
        let row = 2 + machines.iter().position(|m| *m == run.machine).unwrap_or_default();
        let windows = &exposure.windows[run.first_window..=run.last_window];
        let duration: u32 = windows.iter().map(|w| w.duration_s).sum();
        let tooltip = format!(
            "{} is a single point of failure from step {} to step {} ({}): its loss means {}",
            run.machine,
            windows[0].from_step,
            windows[windows.len() - 1].to_step,
            format_duration(duration),
            run.impacts.join(", or ")
        );
        let class = format!("single-point {}", kind_class(run.kind));
        let from_s = window_starts[run.first_window];
        bar(&mut out, &scale, &Bar { row, from_s, duration_s: duration, class: &class, label: "", tooltip: &tooltip });
    }
    out + "</svg>\n"
}

fn single_point_names(points: &[SinglePoint]) -> String {
    if points.is_empty() {
        "none".to_string()
    } else {
        points.iter().map(|p| p.machine.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// The exposure per phase as an HTML table (what `plan capacity` prints as text).
pub fn phase_table(exposure: &ExposureReport) -> String {
    let mut out = String::from(
        "<table class=\"phases\" id=\"exposure-phases\"><thead><tr><th>phase</th><th>title</th><th>steps</th><th>time</th><th>etcd</th><th>tolerates</th><th>single points of failure</th></tr></thead><tbody>\n",
    );
    for p in &exposure.phases {
        let _ = writeln!(
            out,
            "<tr id=\"exposure-phase-{}\"><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td><td>{}</td><td class=\"tolerance-{}\">{}</td><td>{}</td></tr>",
            id_part(&p.phase),
            escape(&p.phase),
            escape(&p.title),
            escape(&p.first_step),
            escape(&p.last_step),
            format_duration(p.duration_s),
            voters(p.voters_min, p.voters_max),
            tolerance_class(p.tolerance),
            p.tolerance,
            escape(&single_point_names(&p.single_points))
        );
    }
    out + "</tbody></table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::capacity::{Impact, Resilience, StateExposure, Survival};

    /// An exposure report with one minute-long window per entry of `windows`.
    fn exposure_report(windows: &[&[SinglePoint]]) -> ExposureReport {
        let state = StateExposure { voters: 1, voters_live: 1, quorum: true, tolerance: 0, single_points: Vec::new() };
        let mut machines: Vec<String> = windows.iter().flat_map(|w| w.iter().map(|p| p.machine.clone())).collect();
        machines.dedup();
        ExposureReport {
            before: state.clone(),
            after: state,
            phases: Vec::new(),
            windows: windows
                .iter()
                .enumerate()
                .map(|(i, points)| ExposureWindow {
                    from_step: format!("0.{i}"),
                    to_step: format!("0.{i}"),
                    steps: 1,
                    duration_s: 60,
                    voters_min: 1,
                    voters_max: 1,
                    tolerance: 0,
                    single_points: points.to_vec(),
                })
                .collect(),
            single_point_time: machines
                .into_iter()
                .map(|machine| plan_model::capacity::SinglePointTime { machine, kind: MachineKind::Master, duration_s: 60 })
                .collect(),
            tolerance_zero_s: 60 * windows.len() as u32,
            resilience: Resilience {
                master_vm_failure: Survival::NotSurvivable,
                masters_single_points: Vec::new(),
                load_balancer_failure: Survival::Survivable,
                vip_on_masters: None,
                hypervisor_failure: Survival::NotSurvivable,
                hypervisors: Vec::new(),
            },
        }
    }

    fn point(machine: &str, quorum_lost: bool) -> SinglePoint {
        SinglePoint { machine: machine.to_string(), kind: MachineKind::Master, impact: Impact { quorum_lost, ..Impact::default() } }
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step_s(50 * 60), 300);
        assert_eq!(tick_step_s(10 * 3600), 3600);
        assert_eq!(tick_step_s(30 * 86400), 3 * 86400, "past a day a tick is whole days");
        for total in [0, 59, 3599, 7 * 3600, 86400, 40 * 86400] {
            assert!(total / tick_step_s(total) <= TICKS_MAX, "{total} s");
        }
    }

    #[test]
    fn windows_start_where_the_previous_ends() {
        assert_eq!(starts([60, 120, 30].into_iter()), [0, 60, 180]);
    }

    #[test]
    fn a_short_bar_keeps_a_visible_width() {
        let scale = Scale { total_s: 86400 };
        assert_eq!(scale.width(0, 1), BAR_W_MIN);
        assert!((scale.width(0, 43200) - PLOT_W / 2.0).abs() < 1e-9);
        assert_eq!(Scale { total_s: 0 }.x(0), LABEL_W, "an empty plan does not divide by zero");
    }

    #[test]
    fn runs_join_consecutive_windows_and_break_at_a_gap() {
        let report = exposure_report(&[&[point("m", true)], &[point("m", false)], &[], &[point("m", true)]]);
        let runs = single_point_runs(&report);
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].first_window, runs[0].last_window), (0, 1));
        assert_eq!(runs[0].impacts, ["etcd quorum lost", "nothing stops"]);
        assert_eq!((runs[1].first_window, runs[1].last_window), (3, 3));
    }
}
