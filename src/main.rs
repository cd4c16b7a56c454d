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
    let args = cli::Args::parse();
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
