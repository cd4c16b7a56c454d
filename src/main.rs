//! `plan`: moves a kubeadm cluster from one control-plane node to an HA control plane, simulation first.

mod capacity;
mod check;
mod cli;
mod execute;
mod input;
mod lab;
mod logging;
mod output;
mod preflight;
mod report;
mod show;
mod simulate;
mod status;

use clap::Parser;
use std::process::ExitCode;

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
    let mut tips = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("error: ") {
            reason = rest.to_string();
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            tips.push(tip.to_string());
        } else if let Some(values) = line.strip_prefix("[possible values: ").and_then(|v| v.strip_suffix(']')) {
            tips.push(format!("possible values: {values}"));
        }
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
        cli::Command::Rollback(options) => execute::rollback(&loaded, args.global.scenario.as_deref(), &options, &json_log),
        cli::Command::Lab(options) => lab::run(&loaded, &options),
        cli::Command::Rehearse(options) => lab::rehearse(&loaded, &options),
        cli::Command::Completions(_) | cli::Command::Man => unreachable!("answered before the scenario is loaded"),
    }
}
