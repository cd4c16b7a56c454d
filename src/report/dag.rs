//! The step DAG as SVG: a lane per phase, a box per step, an arrow per dependency, by-hand steps marked.

use super::lanes::{self, Arrangement, Slot};
use super::markup::{escape, id_part, px, wrap};
use plan_exec::invocation::{Compiler, Invocation};
use plan_model::plan::{format_duration, Plan};
use plan_model::topology::Topology;
use std::fmt::Write;

const LABEL_W: f64 = 190.0;
const STEP_W: f64 = 134.0;
const STEP_H: f64 = 52.0;
const COLUMN_GAP: f64 = 30.0;
const ROW_GAP: f64 = 8.0;
const LANE_PAD: f64 = 10.0;
/// Characters of a step title that fit a line of its box at the drawing's font size.
const STEP_TITLE_CHARS_MAX: usize = 22;
const LANE_TITLE_CHARS_MAX: usize = 30;
/// Lines of a title under the step id, and under the phase's name.
const TITLE_LINES_MAX: usize = 2;
const TITLE_LINE_H: f64 = 13.0;

/// `<text>` elements, one per line of `title` wrapped to fit, the first at `(x, y)`.
fn title_lines(title: &str, chars_max: usize, class: &str, x: f64, y: f64) -> String {
    wrap(title, chars_max, TITLE_LINES_MAX)
        .iter()
        .enumerate()
        .map(|(i, line)| {
            format!("<text class=\"{class}\" x=\"{}\" y=\"{}\">{}</text>", px(x), px(y + i as f64 * TITLE_LINE_H), escape(line))
        })
        .collect()
}

/// Who carries out a step's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Every command is one the executor runs (or the step has none).
    Executor,
    /// Some commands are instructions for a person, others the executor runs.
    PartlyByHand,
    /// Every command is an instruction for a person.
    ByHand,
}

impl Execution {
    fn class(self) -> &'static str {
        match self {
            Execution::Executor => "step",
            Execution::PartlyByHand => "step partly-by-hand",
            Execution::ByHand => "step by-hand",
        }
    }
}

/// How one step is carried out, and what a person does in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepExecution {
    pub execution: Execution,
    /// The by-hand instructions, redacted as the executor shows them.
    pub instructions: Vec<String>,
}

fn step_execution(invocations: &[Invocation]) -> StepExecution {
    let instructions: Vec<String> = invocations.iter().filter(|i| i.is_manual()).map(Invocation::display).collect();
    let execution = match instructions.len() {
        0 => Execution::Executor,
        n if n == invocations.len() => Execution::ByHand,
        _ => Execution::PartlyByHand,
    };
    StepExecution { execution, instructions }
}

/// How every step of `plan` is carried out, in plan order: the executor's own reading of the
/// commands (`plan execute` asks the operator for exactly these instructions).
pub fn executions(t: &Topology, plan: &Plan) -> Vec<StepExecution> {
    // One compiler for the whole plan, as the executor uses it: it follows secret files from
    // the step that writes them to the steps that read them.
    let mut compiler = Compiler::new(t);
    plan.steps.iter().map(|step| step_execution(&compiler.step(step))).collect()
}

/// Where lanes and boxes go, in pixels.
struct Geometry {
    lane_top: Vec<f64>,
    lane_height: Vec<f64>,
    width: f64,
    height: f64,
}

impl Geometry {
    fn of(a: &Arrangement) -> Geometry {
        let lane_height: Vec<f64> = a.lanes.iter().map(|l| l.rows as f64 * (STEP_H + ROW_GAP) - ROW_GAP + 2.0 * LANE_PAD).collect();
        let mut lane_top = Vec::with_capacity(lane_height.len());
        let mut top = 0.0;
        for h in &lane_height {
            lane_top.push(top);
            top += h;
        }
        Geometry { lane_top, lane_height, width: LABEL_W + a.columns as f64 * (STEP_W + COLUMN_GAP), height: top }
    }

    /// The top-left corner of a step's box.
    fn corner(&self, slot: Slot) -> (f64, f64) {
        let x = LABEL_W + COLUMN_GAP / 2.0 + slot.column as f64 * (STEP_W + COLUMN_GAP);
        let y = self.lane_top[slot.lane] + LANE_PAD + slot.row as f64 * (STEP_H + ROW_GAP);
        (x, y)
    }
}

/// The DAG of `plan` as one `<svg>` element.
pub fn svg(plan: &Plan, executions: &[StepExecution]) -> String {
    let a = lanes::arrange(plan);
    let g = Geometry::of(&a);
    let mut out = format!(
        "<svg class=\"dag\" id=\"dag-drawing\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"The plan's steps by phase, with their dependencies\">\n",
        w = px(g.width),
        h = px(g.height)
    );
    out += "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" class=\"arrow-head\"/></marker></defs>\n";
    lanes_svg(&mut out, plan, &a, &g);
    edges_svg(&mut out, plan, &a, &g);
    steps_svg(&mut out, plan, &a, &g, executions);
    out + "</svg>\n"
}

fn lanes_svg(out: &mut String, plan: &Plan, a: &Arrangement, g: &Geometry) {
    for (i, lane) in a.lanes.iter().enumerate() {
        let title = lane.phase.map(|p| plan.phases[p].title.as_str()).unwrap_or_default();
        let (top, height) = (g.lane_top[i], g.lane_height[i]);
        let _ = writeln!(
            out,
            "<g class=\"lane\" id=\"lane-{id}\"><title>Phase {phase} - {title_full}</title><rect class=\"lane-band{odd}\" x=\"0\" y=\"{y}\" width=\"{w}\" height=\"{h}\"/><text class=\"lane-label\" x=\"8\" y=\"{y1}\">Phase {phase}</text>{title}</g>",
            id = id_part(&lane.phase_id),
            phase = escape(&lane.phase_id),
            title_full = escape(title),
            odd = if i % 2 == 1 { " odd" } else { "" },
            y = px(top),
            w = px(g.width),
            h = px(height),
            y1 = px(top + 22.0),
            title = title_lines(title, LANE_TITLE_CHARS_MAX, "lane-title", 8.0, top + 38.0),
        );
    }
}

fn edges_svg(out: &mut String, plan: &Plan, a: &Arrangement, g: &Geometry) {
    let index: std::collections::HashMap<&str, usize> = plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    out.push_str("<g class=\"edges\">\n");
    for (to, step) in plan.steps.iter().enumerate() {
        for dependency in &step.after {
            // A dependency on a removed step, or one placed later (never in a checked plan), has no edge.
            let Some(&from) = index.get(dependency.step.as_str()).filter(|&&from| from < to) else { continue };
            let (x1, y1) = g.corner(a.slots[from]);
            let (x2, y2) = g.corner(a.slots[to]);
            let (x1, y1, y2) = (x1 + STEP_W, y1 + STEP_H / 2.0, y2 + STEP_H / 2.0);
            let bend = ((x2 - x1) / 2.0).max(COLUMN_GAP);
            let _ = writeln!(
                out,
                "<path class=\"edge\" d=\"M{} {} C{} {} {} {} {} {}\" marker-end=\"url(#arrow)\"><title>{} needs {}: {}</title></path>",
                px(x1),
                px(y1),
                px(x1 + bend),
                px(y1),
                px(x2 - bend),
                px(y2),
                px(x2),
                px(y2),
                escape(&step.id),
                escape(&dependency.step),
                escape(&dependency.why)
            );
        }
    }
    out.push_str("</g>\n");
}

fn steps_svg(out: &mut String, plan: &Plan, a: &Arrangement, g: &Geometry, executions: &[StepExecution]) {
    for (i, step) in plan.steps.iter().enumerate() {
        let (x, y) = g.corner(a.slots[i]);
        let execution = executions.get(i).map_or(Execution::Executor, |e| e.execution);
        let mut tooltip = format!("{} {}\non {}, about {}", step.id, step.title, step.runs_on, format_duration(step.duration_s));
        for instruction in executions.get(i).map(|e| e.instructions.as_slice()).unwrap_or_default() {
            let _ = write!(tooltip, "\n{instruction}");
        }
        let marker = match execution {
            Execution::Executor => String::new(),
            Execution::PartlyByHand => {
                format!("<text class=\"hand-mark\" x=\"{}\" y=\"{}\">part by hand</text>", px(x + STEP_W - 5.0), px(y + 14.0))
            }
            Execution::ByHand => format!("<text class=\"hand-mark\" x=\"{}\" y=\"{}\">by hand</text>", px(x + STEP_W - 5.0), px(y + 14.0)),
        };
        let _ = writeln!(
            out,
            "<g class=\"{class}\" id=\"step-{id}\"><title>{tooltip}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"4\"/><text class=\"step-id\" x=\"{tx}\" y=\"{y1}\">{step_id}</text>{marker}{title}</g>",
            class = execution.class(),
            id = id_part(&step.id),
            tooltip = escape(&tooltip),
            x = px(x),
            y = px(y),
            w = px(STEP_W),
            h = px(STEP_H),
            tx = px(x + 6.0),
            y1 = px(y + 15.0),
            step_id = escape(&step.id),
            title = title_lines(&step.title, STEP_TITLE_CHARS_MAX, "step-title", x + 6.0, y + 30.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_exec::invocation::Work;

    fn invocation(work: Work) -> Invocation {
        Invocation { work, secret: false, command: 0 }
    }

    fn shell() -> Invocation {
        invocation(Work::Shell { place: plan_exec::target::Place::here(None), shell: "kubectl get nodes".to_string() })
    }

    fn by_hand() -> Invocation {
        invocation(Work::Manual { instruction: "edit config.tfvars: add the VIP".to_string(), task: Default::default() })
    }

    #[test]
    fn a_step_is_by_hand_when_every_command_is_an_instruction() {
        assert_eq!(step_execution(&[by_hand()]).execution, Execution::ByHand);
        assert_eq!(step_execution(&[shell(), by_hand()]).execution, Execution::PartlyByHand);
        assert_eq!(step_execution(&[shell()]).execution, Execution::Executor);
        assert_eq!(step_execution(&[]).execution, Execution::Executor, "nothing to do, nothing by hand");
        assert_eq!(step_execution(&[shell(), by_hand()]).instructions, ["by hand: edit config.tfvars: add the VIP"]);
    }
}
