//! RAM per hypervisor before the plan, at its peak and after, as bars against the headroom limit
//! and physical RAM.

use super::markup::{escape, id_part, px};
use plan_model::capacity::{gb, HypervisorCapacity};
use std::fmt::Write;

const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 760.0;
const HEADER_H: f64 = 26.0;
const ROW_H: f64 = 24.0;
const BAR_H: f64 = 16.0;
const BLOCK_GAP: f64 = 16.0;
/// The scale runs this far past the largest figure, so the physical line never sits on the edge.
const SCALE_MARGIN: f64 = 1.08;
/// Room right of the plot for the physical line's label.
const LABEL_ROOM_RIGHT: f64 = 110.0;

/// Where a RAM figure stands against the hypervisor's limits, as a bar's class.
fn standing(committed_gb: f64, limit_gb: f64, physical_gb: f64) -> &'static str {
    if committed_gb > physical_gb {
        "over-physical"
    } else if committed_gb > limit_gb {
        "over-limit"
    } else {
        "within-limit"
    }
}

fn block_height() -> f64 {
    HEADER_H + 3.0 * ROW_H + BLOCK_GAP
}

fn verdict(h: &HypervisorCapacity) -> &'static str {
    match (h.fits, h.migration_adds) {
        (true, _) => "fits",
        (false, false) => "over its limit before the migration (the plan adds nothing here)",
        (false, true) => "OVER-COMMITTED",
    }
}

/// A vertical line across a hypervisor's bars.
#[derive(Clone, Copy)]
enum Mark {
    /// Physical RAM less the headroom policy.
    Limit,
    Physical,
}

/// Draws `mark` at `x`: the limit's label stands left of its line and physical RAM's right of
/// its own, so the two never cover each other.
fn mark_line(out: &mut String, mark: Mark, x: f64, top: f64, gb_value: f64) {
    let (class, label, label_x) = match mark {
        Mark::Limit => ("limit", format!("limit {} GB", gb(gb_value)), x - 4.0),
        Mark::Physical => ("physical", format!("physical {} GB", gb(gb_value)), x + 4.0),
    };
    let bottom = top + HEADER_H + 3.0 * ROW_H;
    let _ = writeln!(
        out,
        "<line class=\"{class}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"{class}-label\" x=\"{}\" y=\"{}\">{}</text>",
        px(top + HEADER_H - 6.0),
        px(bottom),
        px(label_x),
        px(top + HEADER_H - 9.0),
        escape(&label),
        x = px(x)
    );
}

fn hypervisor_block(out: &mut String, h: &HypervisorCapacity, top: f64) {
    let ram = &h.ram;
    let largest = [ram.physical_gb, ram.limit_gb, ram.before_gb, ram.peak_gb, ram.after_gb].into_iter().fold(0.0, f64::max);
    let scale = PLOT_W / (largest * SCALE_MARGIN).max(1.0);
    let _ = writeln!(
        out,
        "<text class=\"hypervisor-name\" x=\"8\" y=\"{}\">{}: {}</text>",
        px(top + 17.0),
        escape(&h.name),
        escape(verdict(h))
    );
    let peak = match &ram.peak_step {
        Some(step) => format!("peak (from step {step})"),
        None => "peak".to_string(),
    };
    let rows = [("before", "before", ram.before_gb), ("peak", peak.as_str(), ram.peak_gb), ("after", "after", ram.after_gb)];
    for (i, (moment, label, value)) in rows.into_iter().enumerate() {
        let y = top + HEADER_H + i as f64 * ROW_H;
        let _ = writeln!(
            out,
            "<g><title>{name} {label}: {value} GB committed against {physical} GB physical, limit {limit} GB</title><text class=\"row-label\" x=\"16\" y=\"{ty}\">{label_short} {value} GB</text><rect class=\"bar ram {moment} {standing}\" id=\"ram-{id}-{moment}\" x=\"{x}\" y=\"{by}\" width=\"{w}\" height=\"{bh}\"/></g>",
            name = escape(&h.name),
            label = escape(label),
            label_short = moment,
            value = gb(value),
            physical = gb(ram.physical_gb),
            limit = gb(ram.limit_gb),
            ty = px(y + 16.0),
            id = id_part(&h.name),
            standing = standing(value, ram.limit_gb, ram.physical_gb),
            x = px(LABEL_W),
            by = px(y + (ROW_H - BAR_H) / 2.0),
            w = px((value * scale).max(1.0)),
            bh = px(BAR_H),
        );
    }
    mark_line(out, Mark::Limit, LABEL_W + ram.limit_gb * scale, top, ram.limit_gb);
    mark_line(out, Mark::Physical, LABEL_W + ram.physical_gb * scale, top, ram.physical_gb);
}

/// The RAM of every hypervisor as one `<svg>` element, a block of three bars each.
pub fn svg(hypervisors: &[HypervisorCapacity]) -> String {
    let width = LABEL_W + PLOT_W + LABEL_ROOM_RIGHT;
    let height = block_height() * hypervisors.len() as f64;
    let mut out = format!(
        "<svg class=\"ram\" id=\"ram-bars\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"RAM per hypervisor before, at the peak and after the migration\">\n",
        w = px(width),
        h = px(height)
    );
    for (i, h) in hypervisors.iter().enumerate() {
        hypervisor_block(&mut out, h, i as f64 * block_height());
    }
    out + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_judged_against_the_limit_and_physical_ram() {
        assert_eq!(standing(200.0, 253.7, 267.0), "within-limit");
        assert_eq!(standing(253.7, 253.7, 267.0), "within-limit", "at the limit is within it");
        assert_eq!(standing(260.0, 253.7, 267.0), "over-limit");
        assert_eq!(standing(326.0, 253.7, 267.0), "over-physical");
    }
}
