//! Reading the inventory and plan files, and turning command-line words into model values.

use crate::cli::Global;
use crate::Failure;
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::{check_flow_nesting, parse_scenario_every_problem, syntax_error, ScenarioError};
use std::io::Read;
use std::path::Path;

/// The embedded homelab scenario, used when no `--scenario` is given.
pub const HOMELAB: &str = include_str!("../scenarios/homelab.yaml");

/// Scenario and plan files larger than this are refused before parsing.
pub const INPUT_BYTES_MAX: u64 = 1 << 20;

/// A scenario and the plan to run on it.
pub struct Loaded {
    pub topology: Topology,
    pub plan: Plan,
    /// The plan came from `--plan` rather than the planner.
    pub edited: bool,
    /// The `--scenario` file, as given; None for the embedded homelab.
    pub scenario_path: Option<std::path::PathBuf>,
}

/// Reads a text file with a size limit and a clear message for every way it can fail.
pub fn read_text(path: &Path, what: &str) -> Result<String, Failure> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| Failure::Input(format!("{what} {shown}: {}", io_reason(&e))))?;
    if metadata.is_dir() {
        return Err(Failure::Input(format!("{what} {shown} is a directory")));
    }
    // A pipe (`--plan <(...)`) is read like a file; a device or socket is refused: /dev/zero
    // would never end, and a socket is not a file to open.
    if !metadata.is_file() && !is_fifo(&metadata) {
        return Err(Failure::Input(format!("{what} {shown} is not a regular file")));
    }
    if metadata.len() > INPUT_BYTES_MAX {
        return Err(Failure::Input(format!("{what} {shown} is {} bytes; the limit is {INPUT_BYTES_MAX} bytes", metadata.len())));
    }
    // Read at most one byte past the limit: a pipe has no length, and a file can grow after
    // `metadata`.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(INPUT_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| Failure::Input(format!("{what} {shown}: {}", io_reason(&e))))?;
    if bytes.len() as u64 > INPUT_BYTES_MAX {
        return Err(Failure::Input(format!("{what} {shown} is more than {INPUT_BYTES_MAX} bytes, the limit")));
    }
    String::from_utf8(bytes)
        .map_err(|e| Failure::Input(format!("{what} {shown} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

#[cfg(unix)]
fn is_fifo(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    metadata.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::Metadata) -> bool {
    false
}

/// The reason an IO operation failed, in words for the operator.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ if e.raw_os_error() == Some(40) => "too many levels of symbolic links".to_string(),
        _ => e.to_string(),
    }
}

/// The refusal of the scenario file `name` for `problems` (at least one): one problem on one line,
/// `FILE:LINE:COLUMN: MESSAGE (FIELD)`; several counted on the first line, then one such line
/// each, in the file's order (a problem the file gives no place for last).
fn scenario_problems(name: &str, mut problems: Vec<ScenarioError>) -> String {
    let line = |e: &ScenarioError| {
        let at = match e.position {
            Some(p) => format!("{name}:{}:{}", p.line, p.column),
            None => name.to_string(),
        };
        format!("{at}: {}", e.message_and_field())
    };
    if let [only] = problems.as_slice() {
        return line(only);
    }
    problems.sort_by_key(|e| e.position.map_or((usize::MAX, 0), |p| (p.line, p.column)));
    let lines: Vec<String> = problems.iter().map(|e| format!("  {}", line(e))).collect();
    format!("{name}: {} problems:\n{}", problems.len(), lines.join("\n"))
}

/// Loads the scenario (embedded or `--scenario`) and the plan (generated or `--plan`).
pub fn load(global: &Global) -> Result<Loaded, Failure> {
    let (text, name) = match &global.scenario {
        Some(path) => (read_text(path, "scenario")?, path.display().to_string()),
        None => (HOMELAB.to_string(), "<embedded homelab>".to_string()),
    };
    let scenario = parse_scenario_every_problem(&text).map_err(|problems| Failure::Input(scenario_problems(&name, problems)))?;
    let topology = Topology::new(&scenario);
    let generated = planner::generate(&topology);
    let (plan, edited) = match &global.plan {
        Some(path) => {
            let text = read_text(path, "plan")?;
            let shown = path.display();
            check_flow_nesting(&text).map_err(|e| {
                let at = e.position.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default();
                Failure::Input(format!("{shown}{at}: {}", e.message))
            })?;
            let file: Plan = serde_yaml_ng::from_str(&text).map_err(|e| {
                let e = syntax_error(&text, &e);
                let at = e.position.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default();
                Failure::Input(format!("{shown}{at}: {}", e.message))
            })?;
            let plan = Plan::from_edited(&topology, &generated, &file).map_err(|e| Failure::Input(format!("{shown}: {e}")))?;
            (plan, true)
        }
        None => (generated, false),
    };
    tracing::info!(scenario = %topology.scenario.name, file = %name, edited, steps = plan.steps.len(), "scenario and plan loaded");
    Ok(Loaded { topology, plan, edited, scenario_path: global.scenario.clone() })
}

/// The units a duration takes, as the refusals name them.
const DURATION_UNITS: &str = "s, m, h or d";

/// Parses `90s`, `10m`, `3h`, `2h30m`, `1d`. A bare number is refused: `--for 3` could mean
/// three seconds or three hours, and a wrong guess changes what the simulation shows.
pub fn parse_duration(text: &str) -> Result<u32, Failure> {
    let bad = || Failure::Input(format!("duration {text:?}: use a number with a unit, {DURATION_UNITS} (90s, 10m, 2h30m)"));
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::Input(format!("duration {text:?} has no unit: write {text}s, {text}m or {text}h (units: {DURATION_UNITS})")));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 || total > u32::MAX as u64 / 2 {
        return Err(bad());
    }
    Ok(total as u32)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").ok(), Some(90));
        assert_eq!(parse_duration("10m").ok(), Some(600));
        assert_eq!(parse_duration("2h30m").ok(), Some(9000));
        assert_eq!(parse_duration("1d").ok(), Some(86400));
        assert!(parse_duration("45").is_err(), "a bare number has no unit");
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
