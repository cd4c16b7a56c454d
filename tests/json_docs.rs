//! Keeps docs/json.md honest: every field the JSON of `plan show`, `plan check` and
//! `plan simulate` prints is documented in the doc's tables, every documented field is printed,
//! and every enumeration value printed is listed under the doc's "Values". The fidelity rows of
//! `plan rehearse`, which needs the lab, are observed from rows of the type it prints; the listing
//! of `plan recover --list`, which observes the hosts, from the executor's own proposal for a
//! halted run whose hosts a fake transport plays.
//!
//! The doc's format, as parsed here:
//! - a `## ` heading containing `` `plan show``, `` `plan check``, `` `plan simulate``,
//!   `` `plan recover`` or `` `plan rehearse`` opens that command's section (its `### ` subsections belong to it); any other `## ` heading closes it;
//! - in a command's section, each table row starting with ``| `PATH` |`` documents a field:
//!   `a.b` for nested objects, `a[]` for the elements of an array, `<kind>` for the keys of
//!   `downtime.consumers`; arrays themselves are documented, their elements (`a[]`) are not;
//! - under `## Values`, each `### ` heading names in backticks the field paths its table applies
//!   to, and each row starting with ``| `VALUE` |`` lists a value.
//!
//! What is observed is the union of real runs of the binary and, for variants those runs do not
//! reach (an outcome `restored-from-snapshot`, a `drift` halt, a fault schedule in a violation),
//! values of the very serde types the commands print, placed where the commands print them. The
//! variant lists below match exhaustively, so a new variant does not compile until it is listed
//! here, and then fails until docs/json.md documents it.

mod common;

use common::{plan, scenario};
use plan_exec::runner::Undo;
use plan_lab::fidelity::{Evidence, FidelityRow, Observed as Seen, Verdict as RowVerdict};
use plan_model::action::{Refusal, RefusalKind};
use plan_model::fault::FaultKind;
use plan_model::invariant::{InvariantClass, INVARIANTS};
use plan_model::plan::{Command, RunsOn};
use plan_model::topology::Topology;
use plan_sim::explore::{Exposure, Finding, Placed, Verdict, Violation};
use plan_sim::recovery::RecoveryKind;
use plan_sim::run::{Broken, Event, EventKind, Halt, Outcome, Undeclared};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const DOC: &str = include_str!("../docs/json.md");
const COMMANDS: [&str; 5] = ["show", "check", "simulate", "recover", "rehearse"];
/// Commands that need hosts or the lab: observed from samples of their types only (tests/loopback/lab.rs and
/// tests/loopback/lab_executor.rs check the real output of `plan rehearse` against the doc).
const SAMPLED: [&str; 2] = ["recover", "rehearse"];

/// Field rows a command's section has at least: fewer means its heading was not recognised.
fn fields_min(command: &str) -> usize {
    if SAMPLED.contains(&command) {
        5
    } else {
        10
    }
}

/// What docs/json.md says.
#[derive(Debug, Default)]
struct Doc {
    /// Documented field paths per command.
    fields: BTreeMap<&'static str, BTreeSet<String>>,
    /// (field paths, values) of each table under "Values".
    values: Vec<(Vec<String>, BTreeSet<String>)>,
}

/// What the commands print.
#[derive(Debug, Default, Clone)]
struct Observed {
    /// Every path, array elements (`a[]`) included.
    paths: BTreeSet<String>,
    /// The strings printed at each path.
    strings: BTreeMap<String, BTreeSet<String>>,
}

/// The backticked text at the start of `text` (after `| `), if any.
fn first_code(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("| `")?;
    rest.split_once('`').map(|(code, _)| code)
}

fn parse_doc(text: &str) -> Result<Doc, Vec<String>> {
    enum Section {
        Other,
        Command(&'static str),
        Values,
    }
    let mut doc = Doc::default();
    let mut problems = Vec::new();
    let mut section = Section::Other;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(heading) = line.strip_prefix("## ") {
            section = match COMMANDS.iter().find(|c| heading.contains(&format!("`plan {c}"))) {
                Some(c) => Section::Command(c),
                None if heading.trim() == "Values" => Section::Values,
                None => Section::Other,
            };
            continue;
        }
        if let (Some(heading), Section::Values) = (line.strip_prefix("### "), &section) {
            let paths: Vec<String> = heading.split('`').skip(1).step_by(2).map(str::to_string).collect();
            if paths.is_empty() {
                problems.push(format!("docs/json.md:{n}: a Values heading names no field path in backticks"));
            }
            doc.values.push((paths, BTreeSet::new()));
            continue;
        }
        let Some(code) = first_code(line) else { continue };
        match section {
            Section::Command(c) => {
                if !doc.fields.entry(c).or_default().insert(code.to_string()) {
                    problems.push(format!("docs/json.md:{n}: `{code}` is documented twice for plan {c}"));
                }
            }
            Section::Values => match doc.values.last_mut() {
                Some((_, values)) => {
                    values.insert(code.to_string());
                }
                None => problems.push(format!("docs/json.md:{n}: value `{code}` before any Values heading")),
            },
            Section::Other => {}
        }
    }
    for c in COMMANDS {
        let count = doc.fields.get(c).map_or(0, BTreeSet::len);
        if count < fields_min(c) {
            problems.push(format!("docs/json.md: only {count} field rows found for plan {c}: is its `## ` heading still `plan {c} ...`?"));
        }
    }
    if doc.values.len() < 5 {
        problems.push(format!("docs/json.md: only {} Values tables found", doc.values.len()));
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(problems)
    }
}

/// Records `value` and everything in it, at `path`.
fn walk(value: &Value, path: &str, observed: &mut Observed) {
    if !path.is_empty() {
        observed.paths.insert(path.to_string());
    }
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                // The keys of a downtime map are consumer kinds, documented as `<kind>`.
                let key = if path.ends_with("downtime.consumers") { "<kind>" } else { key.as_str() };
                walk(child, &join(key), observed);
            }
        }
        Value::Array(items) => {
            let element = format!("{path}[]");
            for item in items {
                walk(item, &element, observed);
            }
        }
        Value::String(text) => {
            observed.strings.entry(path.to_string()).or_default().insert(text.clone());
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn run_json(args: &[&str]) -> Value {
    let out = plan(args);
    assert!(out.code == 0 || out.code == 1, "plan {args:?} exited {}: {}", out.code, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("plan {args:?} does not print JSON ({e}): {}", out.stdout))
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serialises")
}

// Every variant of the enums the commands print. A new variant fails to compile in the match:
// add it to the list, and to docs/json.md.

fn outcomes() -> Vec<Outcome> {
    let all = vec![
        Outcome::Completed,
        Outcome::RolledBack { phase: "2".into() },
        Outcome::Halted { step: "5.1".into() },
        Outcome::WentOn {
            without: vec!["k8s-master".into()],
            stopped_at: Some(plan_sim::run::StoppedAt { step: "8.1".into(), why: "acceptance criteria".into() }),
        },
        Outcome::QuorumRecovered,
        Outcome::RestoredFromSnapshot { lost_s: 3600 },
        Outcome::Stuck { why: "no recovery applies".into() },
    ];
    for o in &all {
        match o {
            Outcome::Completed
            | Outcome::RolledBack { .. }
            | Outcome::Halted { .. }
            | Outcome::WentOn { .. }
            | Outcome::QuorumRecovered
            | Outcome::RestoredFromSnapshot { .. }
            | Outcome::Stuck { .. } => {}
        }
    }
    all
}

fn fault_kinds() -> Vec<FaultKind> {
    for k in FaultKind::ALL {
        match k {
            FaultKind::Crash
            | FaultKind::Reboot
            | FaultKind::HypervisorFailure
            | FaultKind::LbReload
            | FaultKind::LbReboot
            | FaultKind::Partition
            | FaultKind::OperatorAway
            | FaultKind::StepFailsHalfway
            | FaultKind::ExecutorCrash => {}
        }
    }
    FaultKind::ALL.to_vec()
}

fn halts() -> Vec<Halt> {
    let refusal_kinds =
        [RefusalKind::Precondition, RefusalKind::HostDown, RefusalKind::NoQuorum, RefusalKind::Expired, RefusalKind::CheckFailed];
    for k in refusal_kinds {
        match k {
            RefusalKind::Precondition | RefusalKind::HostDown | RefusalKind::NoQuorum | RefusalKind::Expired | RefusalKind::CheckFailed => {
            }
        }
    }
    let mut all: Vec<Halt> = refusal_kinds.into_iter().map(|kind| Halt::Refused(Refusal { kind, reason: "refused".into() })).collect();
    all.push(Halt::Drift("the node is down".into()));
    all.push(Halt::HalfWay);
    for h in &all {
        match h {
            Halt::Refused(_) | Halt::Drift(_) | Halt::HalfWay => {}
        }
    }
    all
}

fn recovery_kinds() -> Vec<RecoveryKind> {
    let all = vec![
        RecoveryKind::WaitAndRetry,
        RecoveryKind::Renew,
        RecoveryKind::Resume,
        RecoveryKind::Rollback { phase: "2".into() },
        RecoveryKind::Hold,
        RecoveryKind::GoForward,
        RecoveryKind::QuorumRecovery,
        RecoveryKind::WorstCase,
    ];
    for r in &all {
        match r {
            RecoveryKind::WaitAndRetry
            | RecoveryKind::Renew
            | RecoveryKind::Resume
            | RecoveryKind::Rollback { .. }
            | RecoveryKind::Hold
            | RecoveryKind::GoForward
            | RecoveryKind::QuorumRecovery
            | RecoveryKind::WorstCase => {}
        }
    }
    all
}

fn event_kinds() -> Vec<EventKind> {
    let all = vec![
        EventKind::Action,
        EventKind::Fault,
        EventKind::Heal,
        EventKind::Halt,
        EventKind::Recovery,
        EventKind::Skipped,
        EventKind::Wait,
    ];
    for k in &all {
        match k {
            EventKind::Action
            | EventKind::Fault
            | EventKind::Heal
            | EventKind::Halt
            | EventKind::Recovery
            | EventKind::Skipped
            | EventKind::Wait => {}
        }
    }
    all
}

fn runs_on() -> Vec<RunsOn> {
    let all = vec![
        RunsOn::Node("k8s-master".into()),
        RunsOn::LoadBalancer("pfsense".into()),
        RunsOn::Hypervisor("pve".into()),
        RunsOn::InfraRepo,
        RunsOn::Workstation,
    ];
    for r in &all {
        match r {
            RunsOn::Node(_) | RunsOn::LoadBalancer(_) | RunsOn::Hypervisor(_) | RunsOn::InfraRepo | RunsOn::Workstation => {}
        }
    }
    all
}

/// One fidelity row of each verdict, each evidence among them.
fn fidelity_rows() -> Vec<FidelityRow> {
    let t = Topology::new(&plan_model::validate::parse_scenario(include_str!("../scenarios/homelab.yaml")).expect("the homelab parses"));
    let row =
        |twin: bool, lab: bool, evidence| FidelityRow::new(&t, "2.5", "quorum after the fault", Seen::Yes(twin), Seen::Yes(lab), evidence);
    let rows = vec![
        row(true, true, Evidence::Real),
        row(true, false, Evidence::Real),
        row(false, false, Evidence::StandIn),
        row(true, true, Evidence::NotRehearsed),
    ];
    for r in &rows {
        match r.verdict() {
            RowVerdict::Agree | RowVerdict::Disagree | RowVerdict::StandIn | RowVerdict::NotRehearsed => {}
        }
        match r.evidence() {
            Evidence::Real | Evidence::StandIn | Evidence::NotRehearsed => {}
        }
    }
    rows
}

fn classes() -> Vec<InvariantClass> {
    let all = vec![InvariantClass::Safety, InvariantClass::Availability];
    for c in &all {
        match c {
            InvariantClass::Safety | InvariantClass::Availability => {}
        }
    }
    all
}

fn broken(invariant: &'static str, class: InvariantClass) -> Broken {
    Broken { invariant, class, step: "2.5".into(), clock_s: 7085, why: "broken".into() }
}

/// Values of the printed types, each with the path where the command prints it.
fn samples(command: &str) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    match command {
        "show" => {
            out.extend(runs_on().iter().map(|r| ("steps[].runs_on", to_value(r))));
            let secret = Command { run: "kubeadm init phase upload-certs --upload-certs".into(), secret: true, ..Command::default() };
            out.push(("steps[].commands[]", to_value(&secret)));
            out.push(("rollbacks[].commands[]", to_value(&secret)));
        }
        "check" => {
            out.extend(outcomes().iter().map(|o| ("no_fault.outcome", to_value(o))));
            out.extend([Verdict::Pass, Verdict::Fail].iter().map(|v| {
                match v {
                    Verdict::Pass | Verdict::Fail => {}
                }
                ("verdict", to_value(v))
            }));
            let schedule: Vec<Placed> = fault_kinds()
                .into_iter()
                .map(|fault| Placed { step: "2.5".into(), after_action: 1, fault, description: "a fault".into() })
                .collect();
            for class in classes() {
                for invariant in INVARIANTS.iter().map(|i| i.name) {
                    let violation = Violation {
                        invariant: invariant.into(),
                        class,
                        step: "2.5".into(),
                        why: "broken".into(),
                        schedule: schedule.clone(),
                        schedules: 1,
                        trace: vec!["2.5 ...".into()],
                        injections: Vec::new(),
                    };
                    out.push(("violations[]", to_value(&violation)));
                }
            }
            let finding = Finding {
                fault: "k8s-master-2 goes down (stays down)".into(),
                from_step: "2.5".into(),
                to_step: "3.5".into(),
                placements: 16,
                recovery: "quorum recovery".into(),
                why: "host is down".into(),
            };
            out.push(("findings[]", to_value(&finding)));
            let exposure = Exposure {
                fault: "k8s-master goes down (stays down)".into(),
                from_step: "0.1".into(),
                to_step: "4.5.2".into(),
                placements: 76,
                why: "no quorum".into(),
            };
            out.push(("exposures[]", to_value(&exposure)));
        }
        "simulate" => {
            // `fault` names the fault as the command line does: every `--fault` kind, with the
            // node, hypervisor and duration fields the kinds can carry.
            for kind in fault_kinds() {
                let mut fault = serde_json::json!({ "kind": kind.as_str() });
                if matches!(kind, FaultKind::Crash | FaultKind::Reboot | FaultKind::Partition) {
                    fault["node"] = "k8s-master-2".into();
                }
                if kind == FaultKind::HypervisorFailure {
                    fault["hypervisor"] = "pve".into();
                }
                if matches!(
                    kind,
                    FaultKind::Reboot | FaultKind::HypervisorFailure | FaultKind::LbReboot | FaultKind::Partition | FaultKind::OperatorAway
                ) {
                    fault["lasts_s"] = 90.into();
                }
                out.push(("fault", fault));
            }
            out.extend(outcomes().iter().map(|o| ("outcome", to_value(o))));
            out.extend(halts().iter().map(|h| ("halt", to_value(h))));
            out.extend(recovery_kinds().iter().map(|r| ("recoveries[]", to_value(r))));
            // A documented recovery beaten: the better one is any kind (no generated plan of
            // scenarios/ has one beaten by a phase's rollback any more).
            out.extend(recovery_kinds().iter().map(|r| ("dominated[].chosen", to_value(r))));
            for invariant in INVARIANTS {
                out.push(("broken[]", to_value(&broken(invariant.name, invariant.class))));
                out.push(("final_unavailable[]", to_value(&broken(invariant.name, invariant.class))));
                out.push(("undeclared[]", to_value(&Undeclared { step: "2.5".into(), invariant: invariant.name, why: "down".into() })));
            }
            for kind in event_kinds() {
                let event = Event {
                    clock_s: 840,
                    step: "0.4".into(),
                    kind,
                    what: "restart kube-apiserver".into(),
                    changes: vec!["serving VIP SAN += k8s-master".into()],
                    flipped: vec!["apiserver: ready -> not ready".into()],
                    broke: INVARIANTS.iter().map(|i| i.name.to_string()).collect(),
                    transient: Some(("kube-apiserver restarts".into(), 30)),
                };
                out.push(("events[]", to_value(&event)));
            }
        }
        "recover" => {
            out.push(("", to_value(&recover::proposal())));
            out.push(("", to_value(&recover::proposal_with_a_hypervisor_down())));
            for undo in [Undo::Nothing, Undo::Recoveries] {
                match undo {
                    Undo::Nothing | Undo::Recoveries => {}
                }
                out.push(("undo", to_value(&undo)));
            }
            out.extend(recovery_kinds().iter().map(|r| ("candidates[]", to_value(r))));
        }
        // The report around the rows is documented in docs/lab.md: the table is placed alone.
        "rehearse" => out.push(("", serde_json::json!({ "rows": fidelity_rows() }))),
        other => panic!("no samples for {other}"),
    }
    out
}

/// The embedded plan exported without its quorum recovery procedure: the plan then documents
/// a rollback the twin's quorum recovery beats, so `dominated` fields are printed for real.
fn plan_without_quorum_recovery() -> String {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let exported = plan(&["show", "--format", "yaml"]).stdout;
        let start = exported.find("- id: RQ\n").expect("the quorum recovery procedure");
        let end = start + 1 + exported[start + 1..].find("- id: ").expect("a procedure after it");
        let path = format!("{}/json-docs-plan-without-rq.yaml", env!("CARGO_TARGET_TMPDIR"));
        std::fs::write(&path, format!("{}{}", &exported[..start], &exported[end..])).expect("written");
        path
    })
    .clone()
}

/// The real runs of each command.
fn runs(command: &str) -> Vec<Vec<String>> {
    let without_rq = plan_without_quorum_recovery();
    let legacy = scenario("legacy-1.28.yaml");
    let five = scenario("five-masters.yaml");
    let three_hypervisors = scenario("three-hypervisors.yaml");
    let words = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    match command {
        "show" => vec![words(&["show", "--format", "json"]), words(&["--scenario", &five, "show", "--format", "json"])],
        "check" => vec![
            words(&["check", "--format", "json"]),
            words(&["--scenario", &legacy, "check", "--format", "json"]),
            words(&["--plan", &without_rq, "check", "--format", "json"]),
        ],
        "simulate" => vec![
            words(&["simulate", "--fail", "master-2", "--at", "2.5", "--format", "json"]),
            words(&["--scenario", &legacy, "simulate", "--fail", "cp-2", "--at", "2.5", "--format", "json"]),
            // Without --at: every placement, summarised in `placements`.
            words(&["simulate", "--fail", "master-2", "--format", "json"]),
            words(&["simulate", "--fault", "hypervisor-failure", "--at", "2.5", "--format", "json"]),
            words(&["--plan", &without_rq, "simulate", "--fail", "master-2", "--at", "2.6", "--format", "json"]),
            // The first master lost after the third master joined (1.31): gone on, its consumers
            // and kubelets moved to the VIP.
            words(&["--scenario", &three_hypervisors, "simulate", "--fail", "cp-alpha", "--at", "3.6", "--format", "json"]),
        ],
        // It needs the lab: tests/loopback/lab.rs runs it.
        "rehearse" => Vec::new(),
        // It observes the hosts: sampled from the executor's proposal (`recover::proposal`).
        "recover" => Vec::new(),
        other => panic!("no runs for {other}"),
    }
}

/// Per command: what the real runs print, and that plus the samples.
struct Observations {
    real: BTreeMap<&'static str, Observed>,
    all: BTreeMap<&'static str, Observed>,
}

fn observations() -> &'static Observations {
    static CELL: OnceLock<Observations> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut real = BTreeMap::new();
        let mut all = BTreeMap::new();
        for command in COMMANDS {
            let mut observed = Observed::default();
            for args in runs(command) {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                walk(&run_json(&args), "", &mut observed);
            }
            let mut with_samples = observed.clone();
            for (at, value) in samples(command) {
                walk(&value, at, &mut with_samples);
            }
            real.insert(command, observed);
            all.insert(command, with_samples);
        }
        Observations { real, all }
    })
}

/// Everything docs/json.md gets wrong about `observations`.
fn problems(doc_text: &str, observations: &Observations) -> Vec<String> {
    let doc = match parse_doc(doc_text) {
        Ok(doc) => doc,
        Err(problems) => return problems,
    };
    let mut problems = Vec::new();
    for command in COMMANDS {
        // A sample must sit where the command really prints that type.
        for (at, _) in samples(command).into_iter().filter(|_| !SAMPLED.contains(&command)) {
            let container = at.trim_end_matches("[]");
            if !observations.real[command].paths.contains(container) {
                problems.push(format!("plan {command}: the test places samples at `{at}`, but the output has no `{container}`"));
            }
        }
        let printed: BTreeSet<&str> = observations.all[command].paths.iter().map(String::as_str).filter(|p| !p.ends_with("[]")).collect();
        let documented: BTreeSet<&str> = doc.fields.get(command).map(|f| f.iter().map(String::as_str).collect()).unwrap_or_default();
        for path in printed.difference(&documented) {
            problems.push(format!("plan {command} --format json prints `{path}`, which docs/json.md does not document"));
        }
        for path in documented.difference(&printed) {
            problems.push(format!("docs/json.md documents `{path}` for plan {command}, which its JSON does not have"));
        }
    }
    for (paths, values) in &doc.values {
        for path in paths {
            let printed: Vec<&BTreeSet<String>> = observations.all.values().filter_map(|o| o.strings.get(path)).collect();
            if printed.is_empty() {
                problems.push(format!("docs/json.md lists values for `{path}`, which no output prints as a string"));
            }
            for value in printed.into_iter().flatten() {
                if !values.contains(value) {
                    problems.push(format!("`{path}` is printed as `{value}`, which its Values table in docs/json.md does not list"));
                }
            }
        }
    }
    problems
}

#[test]
fn docs_json_md_matches_the_json_output() {
    let problems = problems(DOC, observations());
    assert!(problems.is_empty(), "docs/json.md is out of date:\n  {}", problems.join("\n  "));
}

#[test]
fn a_stale_doc_fails_the_check() {
    let observations = observations();
    let row = |path: &str| DOC.lines().find(|l| first_code(l) == Some(path)).unwrap_or_else(|| panic!("the doc has a row for {path}"));
    // A printed field left out of the doc.
    let without_fired = DOC.replace(&format!("{}\n", row("fired")), "");
    assert!(problems(&without_fired, observations).iter().any(|p| p.contains("prints `fired`")));
    // A documented field the output lacks.
    let with_bogus = DOC.replace(row("fired"), &format!("{}\n| `fired_twice` | integer | Not a field. |", row("fired")));
    assert!(problems(&with_bogus, observations).iter().any(|p| p.contains("documents `fired_twice`")));
    // An enumeration value left out.
    let without_stuck = DOC.replace(&format!("{}\n", row("stuck")), "");
    assert!(problems(&without_stuck, observations).iter().any(|p| p.contains("printed as `stuck`")));
    // A fidelity row's field, and one of its verdicts, left out.
    let without_verdict = DOC.replace(&format!("{}\n", row("rows[].verdict")), "");
    assert!(problems(&without_verdict, observations).iter().any(|p| p.contains("plan rehearse --format json prints `rows[].verdict`")));
    let without_stand_in = DOC.replace(&format!("{}\n", row("stand-in")), "");
    assert!(problems(&without_stand_in, observations).iter().any(|p| p.contains("`rows[].verdict` is printed as `stand-in`")));
    // A command's section no longer recognised.
    let renamed = DOC.replace("## `plan check --format json`", "## Check");
    assert!(problems(&renamed, observations).iter().any(|p| p.contains("field rows found for plan check")));
}

/// What `plan recover --list --format json` prints, made by the executor for a halted run on the
/// embedded homelab: step 2.6 failed, then k8s-master-2 answers nothing (quorum lost), so the
/// twin's candidates include some that cannot be carried out. A fake transport plays the hosts.
mod recover {
    use plan_exec::journal::Journal;
    use plan_exec::observe::Probes;
    use plan_exec::runner::{Operator, Outcome, Proposal, Recovery, RunOptions, Runner};
    use plan_exec::target::{HostTarget, Place};
    use plan_exec::transport::{Completed, FileRead, Request, Transport};
    use plan_exec::ExecError;
    use plan_model::plan::{Phase, Step};
    use plan_model::topology::Topology;
    use std::time::Duration;

    /// Every command of `fail` fails; the hosts `down` answer nothing over SSH.
    struct Hosts {
        fail: &'static str,
        down: &'static [&'static str],
    }

    impl Transport for Hosts {
        fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
            if let Place::Host(host) = place {
                if self.down.contains(&host.name.as_str()) {
                    return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".into() });
                }
            }
            let exit = if request.step == self.fail { 1 } else { 0 };
            Ok(Completed { exit: Some(exit), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
        }

        fn read_file(&mut self, host: &HostTarget, _path: &str) -> Result<FileRead, ExecError> {
            if self.down.contains(&host.name.as_str()) {
                return Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".into() });
            }
            Ok(FileRead::Unobserved)
        }
    }

    struct Yes;

    impl Operator for Yes {
        fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
            true
        }
        fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
            true
        }
        fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
            true
        }
        fn starting(&mut self, _: &Step, _: usize, _: &plan_exec::invocation::Invocation, _: u32) {}
        fn finished(&mut self, _: &Step, _: &plan_exec::invocation::Invocation, _: &Result<Completed, String>) {}
    }

    fn options(observe: bool) -> RunOptions {
        RunOptions { resume: observe, observe, ..RunOptions::new(Duration::from_secs(1), Probes::files_only()) }
    }

    pub fn proposal() -> Proposal {
        let proposal = halted(include_str!("../scenarios/homelab.yaml"), "2.6", &["k8s-master-2"]);
        assert!(proposal.candidates.iter().any(|c| c.refused.is_some()) && !proposal.drift.is_empty(), "{proposal:?}");
        proposal
    }

    /// Three hypervisors halted in 3.6, cp-gamma and its hypervisor hv-east silent: the rollback
    /// passes over the VM's destruction.
    pub fn proposal_with_a_hypervisor_down() -> Proposal {
        let proposal = halted(include_str!("../scenarios/three-hypervisors.yaml"), "3.6", &["cp-gamma", "hv-east"]);
        assert!(proposal.candidates.iter().any(|c| !c.passed_over.is_empty()), "{proposal:?}");
        proposal
    }

    /// The proposal for a run of `scenario` halted by a failed command in `step`, the hosts `down`
    /// silent since.
    fn halted(scenario: &str, step: &'static str, down: &'static [&'static str]) -> Proposal {
        let t = Topology::new(&plan_model::validate::parse_scenario(scenario).expect("the scenario parses"));
        let plan = plan_model::planner::generate(&t);
        let mut journal = Journal::in_memory();
        let mut hosts = Hosts { fail: step, down: &[] };
        let outcome = Runner::new(&t, &plan, &mut hosts, &mut journal, &mut Yes, options(false)).run().expect("journalled");
        assert!(matches!(outcome, Outcome::Halted(_)), "{outcome:?}");
        hosts.down = down;
        Runner::new(&t, &plan, &mut hosts, &mut journal, &mut Yes, options(true)).proposal().expect("a halt")
    }
}
