//! `plan`: moves a kubeadm cluster from one control-plane node to an HA control plane, simulation first.

mod capacity;
mod check;
mod cli;
mod execute;
mod init;
mod input;
mod lab;
mod lab_standing;
mod logging;
mod output;
mod preflight;
mod recover;
mod report;
mod show;
mod simulate;
mod status;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: plan_allocator::Allocator = plan_allocator::Allocator;

/// What went wrong, and so which exit code: 1 for a finding, 2 for bad input or usage.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The input cannot be used (exit 2).
    #[error("{0}")]
    Input(String),
    /// The check found a violation or the run halted unsafe (exit 1); the report is printed.
    #[error("{0}")]
    Violation(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Violation(_) => 1,
            Failure::Input(_) => 2,
        }
    }
}

fn main() -> ExitCode {
    // Small pages, predictable times: see plan_allocator::small_pages_unless_asked.
    plan_allocator::small_pages_unless_asked();
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(&e),
    };
    // SIGPIPE stays ignored (Rust's default) for every command: a closed stdout is handled where
    // everything is printed (`output::print`), and a signal would also kill an executor mid-step
    // when a child process's pipe closes.
    match try_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Failure::Input(message) = &failure {
                output::eprint(&format!("plan: {} {message}\n", output::paint(output::ERROR, "error:")));
            } else {
                output::eprint(&format!("plan: {failure}\n"));
            }
            ExitCode::from(failure.code())
        }
    }
}

/// A command line clap refuses, said like every other refusal: one `plan: error:` line with
/// clap's reason and tips, exit 2. Help and version print as clap prints them.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit();
    }
    output::eprint(&format!("plan: {} {}\n", output::paint(output::ERROR, "error:"), usage_message(&e.render().to_string())));
    ExitCode::from(2)
}

/// clap's rendering (`error: …`, `tip: …`, usage, `For more information…`) in one line.
fn usage_message(rendered: &str) -> String {
    let mut reason = String::new();
    let mut listed = Vec::new();
    let mut tips = Vec::new();
    let mut in_list = false;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("error: ") {
            reason = rest.trim_end_matches(':').to_string();
            in_list = rest.ends_with(':');
        } else if let Some(tip) = trimmed.strip_prefix("tip: ") {
            tips.push(tip.to_string());
        } else if let Some(values) = trimmed.strip_prefix("[possible values: ").and_then(|v| v.strip_suffix(']')) {
            tips.push(format!("possible values: {values}"));
        } else if in_list && line.starts_with("  ") && !trimmed.is_empty() {
            // What a "the following ... were not provided:" error lists, one per line.
            listed.push(trimmed.to_string());
        } else {
            in_list = false;
        }
    }
    if !listed.is_empty() {
        reason = format!("{reason}: {}", listed.join(", "));
    }
    let tips = if tips.is_empty() { String::new() } else { format!(" ({})", tips.join("; ")) };
    format!("{reason}{tips}; see plan --help")
}

fn try_main(args: cli::Args) -> Result<(), Failure> {
    // Completions and the man page describe the command line: no scenario is read for them.
    match &args.command {
        cli::Command::Completions(options) => return output::print(&cli::completions(options.shell)),
        cli::Command::Man => return output::print(&cli::man_page()?),
        _ => {}
    }
    let json_log = logging::init(args.global.verbose)?;
    // plan init writes a scenario: none is read for it.
    if let cli::Command::Init(options) = &args.command {
        return init::run(options);
    }
    let loaded = input::load(&args.global)?;
    match args.command {
        cli::Command::Show(options) => show::run(&loaded, &options),
        cli::Command::Check(options) => check::run(&loaded, &options),
        cli::Command::Simulate(options) => simulate::run(&loaded, &options),
        cli::Command::Capacity(options) => capacity::run(&loaded, &options),
        cli::Command::Report(options) => report::run(&loaded, &options),
        cli::Command::Preflight(options) => preflight::run(&loaded, args.global.scenario.as_deref(), &options),
        cli::Command::Execute(options) => execute::run(&loaded, args.global.scenario.as_deref(), &options, &json_log),
        cli::Command::Status(options) => status::status(&loaded, args.global.scenario.as_deref(), &options),
        cli::Command::Recover(options) => recover::run(&loaded, args.global.scenario.as_deref(), &options, &json_log),
        cli::Command::Lab(options) => lab::run(&loaded, &options),
        cli::Command::Rehearse(options) => lab::rehearse(&loaded, &options),
        cli::Command::Completions(_) | cli::Command::Man | cli::Command::Init(_) => {
            unreachable!("answered before the scenario is loaded")
        }
    }
}
