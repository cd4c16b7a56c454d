//! `plan show`: the plan as text, markdown, JSON, YAML (the editable plan file), dot or mermaid.

use crate::cli::{ShowFormat, ShowOptions, View};
use crate::input::Loaded;
use crate::Failure;
use plan_model::plan::{format_duration, Plan, Step};
use plan_model::topology::{NodeKind, Topology};
use serde::Serialize;
use std::fmt::Write;

/// The JSON document of `plan show --format json` (version 1).
#[derive(Serialize)]
struct ShowDocument<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    duration_s: u32,
    learner_mode: bool,
    kubernetes: String,
}

/// Refuses an option the chosen format would ignore: an operator who asked for it expects it
/// to change what is printed.
fn refuse_ignored_options(options: &ShowOptions) -> Result<View, Failure> {
    let format = match options.format {
        ShowFormat::Text => "text",
        ShowFormat::Markdown => "markdown",
        ShowFormat::Json => "json",
        ShowFormat::Yaml => "yaml",
        ShowFormat::Dot => "dot",
        ShowFormat::Mermaid => "mermaid",
    };
    match (options.view, options.format) {
        (Some(View::Topology), ShowFormat::Json | ShowFormat::Yaml) => Err(Failure::Input(format!(
            "--view topology has no {format} form (it is drawn as text, markdown, dot or mermaid); drop --view for the plan as {format}"
        ))),
        (Some(View::Topology), _) if options.phase.is_some() => {
            Err(Failure::Input("--phase selects steps, and --view topology draws no steps: drop one of them".to_string()))
        }
        (view, _) => Ok(view.unwrap_or(View::Steps)),
    }
}

/// The shell word for `path` in a command to copy: quoted when it holds anything but plain
/// path characters.
fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The comment that opens an exported plan file: how to use it, or why it cannot be used.
fn yaml_header(loaded: &Loaded, plan: &Plan) -> String {
    match &plan.only_phase {
        Some(phase) => format!(
            "# phase {phase} only of the plan for scenario {}: a partial plan to read; `plan check --plan` refuses it (export without --phase to edit)\n",
            plan.scenario
        ),
        None => {
            let scenario = loaded.scenario_path.as_deref().map(|p| format!(" --scenario {}", shell_word(p))).unwrap_or_default();
            format!("# plan for scenario {}: reorder, delete or add steps, change operations (docs/operations.md), then: plan{scenario} --plan FILE check\n", plan.scenario)
        }
    }
}

pub fn run(loaded: &Loaded, options: &ShowOptions) -> Result<(), Failure> {
    let view = refuse_ignored_options(options)?;
    let mut plan = loaded.plan.clone();
    if let Some(phase) = &options.phase {
        if !plan.phases.iter().any(|p| &p.id == phase) {
            let known: Vec<&str> = plan.phases.iter().map(|p| p.id.as_str()).collect();
            return Err(Failure::Input(format!("unknown phase {phase:?} (phases: {})", known.join(", "))));
        }
        plan.steps.retain(|s| &s.phase == phase);
        plan.phases.retain(|p| &p.id == phase);
    }
    let t = &loaded.topology;
    let out = match (options.format, view) {
        (ShowFormat::Json, _) => {
            let doc = ShowDocument {
                plan: &plan,
                duration_s: plan.duration_s(),
                learner_mode: t.learner_mode,
                kubernetes: t.scenario.kubernetes.version.clone(),
            };
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Input(e.to_string()))? + "\n"
        }
        (ShowFormat::Yaml, _) => {
            // The file itself says it is a part, so `--plan` refuses it whatever its header says.
            let plan = Plan { only_phase: options.phase.clone(), ..plan.clone() };
            let mut text = yaml_header(loaded, &plan);
            text += &serde_yaml_ng::to_string(&plan).map_err(|e| Failure::Input(e.to_string()))?;
            text
        }
        (ShowFormat::Dot, View::Steps) => steps_dot(&plan),
        (ShowFormat::Mermaid, View::Steps) => steps_mermaid(&plan),
        (ShowFormat::Dot, View::Topology) => topology_dot(t),
        (ShowFormat::Mermaid, View::Topology) => topology_mermaid(t),
        (ShowFormat::Text, View::Topology) | (ShowFormat::Markdown, View::Topology) => topology_text(t),
        (ShowFormat::Text, View::Steps) => text(&plan, t),
        (ShowFormat::Markdown, View::Steps) => markdown(&plan, t),
    };
    crate::output::print(&out)?;
    Ok(())
}

fn header(plan: &Plan, t: &Topology) -> String {
    let masters = t.target_masters().len();
    format!(
        "Plan for {}: 1 -> {masters} control-plane nodes behind {}:{} (Kubernetes {}, etcd learner mode {}), {} steps, about {}",
        plan.scenario,
        t.scenario.control_plane_endpoint.vip,
        t.scenario.control_plane_endpoint.port,
        t.scenario.kubernetes.version,
        if t.learner_mode { "on" } else { "off" },
        plan.steps.len(),
        format_duration(plan.duration_s())
    )
}

fn text(plan: &Plan, t: &Topology) -> String {
    let mut out = header(plan, t) + "\n";
    // What `plan execute` runs, part by part, where it runs: the lines `--dry-run` prints.
    let compiled = plan_exec::invocation::compile(t, plan);
    for phase in &plan.phases {
        let steps: Vec<&Step> = plan.steps.iter().filter(|s| s.phase == phase.id).collect();
        if steps.is_empty() {
            continue;
        }
        let total: u32 = steps.iter().map(|s| s.duration_s).sum();
        let _ = writeln!(out, "\nPhase {} - {} (~{})", phase.id, phase.title, format_duration(total));
        for s in steps {
            let _ = writeln!(out, "  {:<6} {}  [{}, {}]", s.id, s.title, s.runs_on, format_duration(s.duration_s));
            let i = plan.steps.iter().position(|x| std::ptr::eq(x, s)).expect("a step of the plan");
            for invocation in &compiled[i] {
                let _ = writeln!(out, "           {}", invocation.line());
            }
            for c in &s.checks {
                let _ = writeln!(out, "           check: {c}");
            }
            if let Some(d) = &s.disruption {
                let _ = writeln!(out, "           disruption: {d}");
            }
            for r in &s.rollback {
                let _ = writeln!(out, "           rollback: {r}");
            }
            if !s.after.is_empty() {
                let _ = writeln!(out, "           after: {}", s.after.iter().map(|d| d.step.as_str()).collect::<Vec<_>>().join(", "));
            }
            if let Some(n) = &s.note {
                let _ = writeln!(out, "           note: {n}");
            }
        }
    }
    if !plan.rollbacks.is_empty() && plan.phases.len() > 1 {
        let _ = writeln!(out, "\nRollback procedures");
        for r in &plan.rollbacks {
            let _ = writeln!(out, "  {:<6} {} (when: {})", r.id, r.title, r.when);
            for c in &r.commands {
                let _ = writeln!(out, "           $ {}", c.run);
            }
        }
    }
    out
}

fn markdown(plan: &Plan, t: &Topology) -> String {
    let mut out = format!("# {}\n", header(plan, t));
    for phase in &plan.phases {
        let _ = writeln!(out, "\n## Phase {} - {}\n", phase.id, phase.title);
        for s in plan.steps.iter().filter(|s| s.phase == phase.id) {
            let _ = writeln!(out, "- [ ] **{} {}** ({}, {})", s.id, s.title, s.runs_on, format_duration(s.duration_s));
            for c in &s.commands {
                let _ = writeln!(out, "  - `{}`", c.run.replace('`', "'"));
            }
            for c in &s.checks {
                let _ = writeln!(out, "  - check: {c}");
            }
            if let Some(d) = &s.disruption {
                let _ = writeln!(out, "  - disruption: {d}");
            }
            if let Some(n) = &s.note {
                let _ = writeln!(out, "  - note: {n}");
            }
        }
    }
    if plan.phases.len() > 1 {
        let _ = writeln!(out, "\n## Rollback\n");
        for r in &plan.rollbacks {
            let _ = writeln!(out, "- **{} {}** (when: {})", r.id, r.title, r.when);
            for c in &r.commands {
                let _ = writeln!(out, "  - `{}`", c.run.replace('`', "'"));
            }
        }
    }
    out
}

fn node_id(step: &str) -> String {
    format!("s{}", step.replace('.', "_"))
}

fn escape(text: &str) -> String {
    text.replace('"', "'")
}

fn steps_dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
    for phase in &plan.phases {
        let _ =
            writeln!(out, "  subgraph \"cluster_{}\" {{\n    label=\"Phase {} - {}\";", node_id(&phase.id), phase.id, escape(&phase.title));
        for s in plan.steps.iter().filter(|s| s.phase == phase.id) {
            let _ = writeln!(out, "    {} [label=\"{} {}\"];", node_id(&s.id), s.id, escape(&s.title));
        }
        out += "  }\n";
    }
    for s in &plan.steps {
        for d in &s.after {
            if plan.step(&d.step).is_some() {
                let _ = writeln!(out, "  {} -> {};", node_id(&d.step), node_id(&s.id));
            }
        }
    }
    out + "}\n"
}

fn steps_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for phase in &plan.phases {
        let _ = writeln!(out, "  subgraph {}[\"Phase {} - {}\"]", node_id(&phase.id), phase.id, escape(&phase.title));
        for s in plan.steps.iter().filter(|s| s.phase == phase.id) {
            let _ = writeln!(out, "    {}[\"{} {}\"]", node_id(&s.id), s.id, escape(&s.title));
        }
        out += "  end\n";
    }
    for s in &plan.steps {
        for d in &s.after {
            if plan.step(&d.step).is_some() {
                let _ = writeln!(out, "  {} --> {}", node_id(&d.step), node_id(&s.id));
            }
        }
    }
    out
}

fn masters(t: &Topology) -> Vec<&plan_model::topology::Node> {
    t.nodes.iter().filter(|n| n.kind != NodeKind::Worker).collect()
}

fn topology_text(t: &Topology) -> String {
    let s = &t.scenario;
    let m0 = t.node(t.existing_master());
    let mut out = format!("Before: {} ({}) runs apiserver + etcd; every client and kubelet talks to it directly.\n", m0.name, m0.address);
    let _ = writeln!(
        out,
        "After:  {} HAProxy at {}:{} ({}) in front of:",
        s.load_balancer.name,
        s.control_plane_endpoint.vip,
        s.control_plane_endpoint.port,
        match t.health_check {
            plan_model::scenario::HealthCheck::Tcp => "TCP health check",
            plan_model::scenario::HealthCheck::HttpsReadyz => "HTTPS /readyz health check",
        }
    );
    for n in masters(t) {
        let _ = writeln!(
            out,
            "        {:<16} {:<15} hypervisor {} (apiserver + etcd)",
            n.name,
            n.address.to_string(),
            s.hypervisors[n.hypervisor].name
        );
    }
    let count = masters(t).len() as u32;
    let _ = writeln!(out, "        etcd quorum: {count} members, tolerates {} down", (count - 1) / 2);
    out
}

fn topology_mermaid(t: &Topology) -> String {
    let s = &t.scenario;
    let m0 = t.node(t.existing_master());
    let mut out = String::from("flowchart TB\n  subgraph before[\"Before\"]\n");
    let _ = writeln!(out, "    b0[\"{}<br/>{}<br/>apiserver + etcd\"]\n  end", m0.name, m0.address);
    out += "  subgraph after[\"After\"]\n";
    let _ = writeln!(
        out,
        "    lb[\"{} HAProxy<br/>{}:{}\"]",
        s.load_balancer.name, s.control_plane_endpoint.vip, s.control_plane_endpoint.port
    );
    for (i, n) in masters(t).iter().enumerate() {
        let _ = writeln!(out, "    m{i}[\"{}<br/>{}<br/>apiserver + etcd\"]\n    lb --> m{i}", n.name, n.address);
    }
    out + "  end\n"
}

fn topology_dot(t: &Topology) -> String {
    let s = &t.scenario;
    let m0 = t.node(t.existing_master());
    let mut out = String::from("digraph topology {\n  node [shape=box];\n  subgraph cluster_before {\n    label=\"Before\";\n");
    let _ = writeln!(out, "    b0 [label=\"{}\\n{}\\napiserver + etcd\"];\n  }}", m0.name, m0.address);
    out += "  subgraph cluster_after {\n    label=\"After\";\n";
    let _ = writeln!(
        out,
        "    lb [label=\"{} HAProxy\\n{}:{}\"];",
        s.load_balancer.name, s.control_plane_endpoint.vip, s.control_plane_endpoint.port
    );
    for (i, n) in masters(t).iter().enumerate() {
        let _ = writeln!(out, "    m{i} [label=\"{}\\n{}\\napiserver + etcd\"];\n    lb -> m{i};", n.name, n.address);
    }
    out + "  }\n}\n"
}
