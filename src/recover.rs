//! `plan recover` (alias `plan rollback`): the twin's numbered recoveries for the journalled halt,
//! listed (`--list`), or one carried out: the best, or the one the operator chooses (`--choose N`).

use crate::cli::ReportFormat;
use crate::execute::{
    exec_failure, guard_every_host, need_a_person_or_yes, report_cut, start_json_log, state_dir, transport, ObserveArgs, SshArgs,
    StateArgs, TerminalOperator,
};
use crate::input::{parse_duration, Loaded};
use crate::logging::JsonLog;
use crate::Failure;
use plan_exec::guard::Guard;
use plan_exec::journal::Journal;
use plan_exec::lock::Lock;
use plan_exec::runner::{Choice, Operator, Pick, Proposal, RollbackOutcome, RunOptions, Runner, Undo, KIND_NAMES};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// Print the twin's numbered recoveries for the halt, with what each leaves and the commands
    /// it would run; run nothing, take no lock.
    #[arg(long, conflicts_with = "choose")]
    pub list: bool,
    /// Carry out recovery N as `--list` numbers it, or the best of a kind (hold, rollback,
    /// quorum-recovery, worst-case, wait-and-retry, renew, resume), instead of the twin's best. A
    /// kind names the same recovery if a new look at the hosts ranks them differently.
    #[arg(long, value_name = "N|KIND", value_parser = parse_choice)]
    pub choose: Option<Pick>,
    /// text, or json (with --list only: the listing is the JSON document; carrying out prints text).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, requires_if("json", "list"))]
    pub format: ReportFormat,
    /// Do not ask before running the recovery.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

/// `--choose N|KIND`: a recovery's number, from 1, or its kind.
fn parse_choice(text: &str) -> Result<Pick, String> {
    if let Some(name) = KIND_NAMES.iter().find(|k| **k == text) {
        return Ok(Pick::Kind(name));
    }
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Pick::Number(n)),
        _ => Err(format!("a recovery's number as `plan recover --list` shows it (1, 2, ...) or its kind ({})", KIND_NAMES.join(", "))),
    }
}

/// The run options of a recovery: the hosts observed, no wait for a silent host.
fn run_options(options: &RecoverArgs) -> Result<RunOptions, Failure> {
    let timeout = Duration::from_secs(parse_duration(&options.ssh.command_timeout)? as u64);
    Ok(RunOptions { resume: true, ..RunOptions::new(timeout, options.observe.probes(Guard::from_env())?) })
}

/// The journal of `dir`, refused when it holds no run.
fn journal_records(dir: &Path) -> Result<plan_exec::journal::Contents, Failure> {
    let contents = plan_exec::journal::read(dir).map_err(exec_failure)?;
    if contents.records.is_empty() {
        return Err(Failure::Input(format!("no journal in {}: nothing to recover from", dir.display())));
    }
    Ok(contents)
}

pub fn run(loaded: &Loaded, scenario: Option<&Path>, options: &RecoverArgs, log: &JsonLog) -> Result<(), Failure> {
    let run_options = run_options(options)?;
    if options.list {
        return list(loaded, scenario, options, run_options);
    }
    need_a_person_or_yes(options.yes)?;
    let dir = state_dir(scenario, &options.state);
    journal_records(&dir)?;
    guard_every_host(loaded, &options.ssh)?;
    let _lock = Lock::take(&dir).map_err(exec_failure)?;
    let _cluster_lock = Lock::take_cluster(&loaded.topology, &dir, &plan_exec::lock::cluster_lock_dir()).map_err(exec_failure)?;
    crate::execute::close_stale_masters(&dir)?;
    let mut journal = Journal::open(&dir).map_err(exec_failure)?;
    report_cut(&journal);
    start_json_log(log, &dir)?;
    let mut transport = transport(&options.ssh, &dir)?;
    let mut operator = TerminalOperator::new(options.yes, 0);
    let pick = options.choose.unwrap_or(Pick::Best);
    let going_on = plan_exec::runner::plan_to_run(&loaded.topology, &loaded.plan, &journal).map_err(exec_failure)?;
    let plan = going_on.as_ref().unwrap_or(&loaded.plan);
    let outcome = Runner::new(&loaded.topology, plan, &mut transport, &mut journal, &mut operator, run_options).recover(pick);
    operator.bar.finish_and_clear();
    match outcome.map_err(exec_failure)? {
        RollbackOutcome::Done { step, recovery, candidate, reopened } => {
            let which = candidate.map_or(String::new(), |n| format!("recovery {n}, "));
            crate::output::print(&format!(
                "plan recover: {which}{recovery}, done for the halt at step {step}; the hosts match the twin\n"
            ))?;
            if reopened.is_empty() {
                // Waiting undoes nothing: the step stays as it was cut, and the resume finishes it.
                crate::output::print(&format!("step {step} stays as it was cut; `plan execute --resume` finishes it\n"))?;
            } else {
                crate::output::print(&format!("pending again: {}; `plan execute --resume` runs them\n", reopened.join(", ")))?;
            }
            Ok(())
        }
        RollbackOutcome::NothingToUndo { step } => {
            crate::output::print(&format!("plan recover: nothing to undo: {}\n", nothing_ran(&step)))
        }
        RollbackOutcome::Declined => Err(Failure::Violation("recovery not run: declined".to_string())),
        RollbackOutcome::Failed { step, reason, drift } => {
            let mut out = format!("RECOVERY of the halt at step {step} FAILED: {reason}\n");
            for d in &drift {
                let _ = writeln!(out, "  {d}");
            }
            crate::output::print(&out)?;
            Err(Failure::Violation(format!("the recovery for step {step} failed")))
        }
    }
}

/// `--list`: reads the journal (no lock: an executor may hold it) and the hosts, prints the
/// proposal, runs nothing.
fn list(loaded: &Loaded, scenario: Option<&Path>, options: &RecoverArgs, run_options: RunOptions) -> Result<(), Failure> {
    let dir = state_dir(scenario, &options.state);
    let contents = journal_records(&dir)?;
    if let Some(damage) = &contents.damage {
        // Left in place: cutting it is for the next run that appends, which holds the lock.
        crate::output::eprint(&format!(
            "plan: note: the journal is unreadable from line {} ({}); listed from the records before it\n",
            damage.line, damage.reason
        ));
    }
    guard_every_host(loaded, &options.ssh)?;
    // In memory: the listing appends nothing. The ssh masters of this state directory are not
    // closed: without the lock they may be another executor's.
    let mut journal = Journal::in_memory();
    journal.records = contents.records;
    let mut transport = transport(&options.ssh, &dir)?;
    let mut operator = Listing;
    let going_on = plan_exec::runner::plan_to_run(&loaded.topology, &loaded.plan, &journal).map_err(exec_failure)?;
    let plan = going_on.as_ref().unwrap_or(&loaded.plan);
    let proposal =
        Runner::new(&loaded.topology, plan, &mut transport, &mut journal, &mut operator, run_options).proposal().map_err(exec_failure)?;
    match options.format {
        ReportFormat::Text => crate::output::print(&plan_exec::redact::redact(&proposal_text(&proposal))),
        ReportFormat::Json => {
            let mut json = serde_json::to_value(&proposal).map_err(|e| Failure::Input(format!("cannot write the JSON document: {e}")))?;
            plan_exec::redact::redact_json(&mut json);
            crate::output::print_json(&json)
        }
    }
}

/// The operator of a listing: it is asked nothing (a proposal runs nothing).
struct Listing;

impl Operator for Listing {
    fn confirm_phase(&mut self, _phase: &plan_model::plan::Phase, _steps: &[&plan_model::plan::Step]) -> bool {
        false
    }
    fn confirm_recovery(&mut self, _recovery: &plan_exec::runner::Recovery) -> bool {
        false
    }
    fn by_hand(&mut self, _step: &plan_model::plan::Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        false
    }
    fn starting(&mut self, _: &plan_model::plan::Step, _: usize, _: &plan_exec::invocation::Invocation, _: u32) {}
    fn finished(
        &mut self,
        _: &plan_model::plan::Step,
        _: &plan_exec::invocation::Invocation,
        _: &Result<plan_exec::transport::Completed, String>,
    ) {
    }
}

/// Why nothing is proposed to undo, and the way on.
fn nothing_ran(step: &str) -> String {
    format!("no command of step {step} ran and the hosts are as the twin expects before it; fix the cause and `plan execute --resume`")
}

/// The listing for people: the halt, what ran, the drift, and every candidate with its commands.
pub fn proposal_text(proposal: &Proposal) -> String {
    let mut out = format!("plan recover: the run halted at step {}: {}\n", proposal.step, proposal.reason);
    if proposal.undo == Undo::Nothing {
        let _ = writeln!(out, "Nothing to undo: {}", nothing_ran(&proposal.step));
        return out;
    }
    let _ = writeln!(out, "Commands of step {} that ran: {}", proposal.step, proposal.commands_ran);
    if !proposal.drift.is_empty() {
        let _ = writeln!(out, "Drift (the hosts against the twin):");
        for d in &proposal.drift {
            let _ = writeln!(out, "  {d}");
        }
    }
    write_choices(&mut out, &proposal.candidates, Detail::Commands);
    match proposal.candidates.iter().find(|c| c.best) {
        Some(best) => {
            let mut kinds: Vec<&str> = Vec::new();
            for choice in &proposal.candidates {
                let name = choice.kind.name();
                if !kinds.contains(&name) {
                    kinds.push(name);
                }
            }
            let _ = writeln!(
                out,
                "Nothing was run. `plan recover` carries out {}; `plan recover --choose N` carries out N, `--choose KIND` the best of a kind ({}), the same one if a new look at the hosts ranks them differently.",
                best.number,
                kinds.join(", ")
            );
        }
        None => {
            let _ = writeln!(out, "Nothing was run. None can be carried out: `plan recover` holds, running nothing.");
        }
    }
    out
}

/// How much of each candidate [`write_choices`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Its number, name, marks and cost (the halt's message).
    Summary,
    /// And the commands it would run (`plan recover --list`).
    Commands,
}

/// The twin's numbered recoveries, as `plan recover --choose N` numbers them.
pub fn write_choices(out: &mut String, choices: &[Choice], detail: Detail) {
    let _ = writeln!(
        out,
        "Recoveries the twin weighs for what the hosts show, best first (a renewal or a wait where one applies; then data kept, \
         safety, availability; among equal ones the plan's documented recovery; then leftovers, downtime, time):"
    );
    for choice in choices {
        let mut marks = Vec::new();
        if choice.best {
            marks.push("best");
        }
        if choice.documented {
            marks.push("the plan's documented recovery");
        }
        let marks = if marks.is_empty() { String::new() } else { format!(" [{}]", marks.join("; ")) };
        let _ = writeln!(out, "  {}. {}{marks}: {}", choice.number, choice.recovery, choice.summary);
        if detail == Detail::Commands {
            if choice.commands.is_empty() {
                let _ = writeln!(out, "       (no command)");
            }
            // An action rendered as several commands (an upload and its run) is named once, above them.
            let mut named: Option<&str> = None;
            for command in &choice.commands {
                if named != Some(command.action.as_str()) {
                    let _ = writeln!(out, "     - {}", command.action);
                    named = Some(&command.action);
                }
                let _ = writeln!(out, "         {:<12} {}", command.place, command.command);
            }
            for skipped in &choice.passed_over {
                let _ = writeln!(out, "     - passed over, its machine is down: {skipped}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_exec::journal::Event;
    use plan_exec::observe::Probes;
    use plan_exec::target::Place;
    use plan_exec::transport::{Completed, Recorder, Request, Transport};
    use plan_exec::ExecError;
    use plan_model::plan::Plan;
    use plan_model::topology::Topology;

    fn scenario(file: &str) -> (Topology, Plan) {
        let text = std::fs::read_to_string(format!("{}/scenarios/{file}", env!("CARGO_MANIFEST_DIR"))).expect("a shipped scenario");
        let t = Topology::new(&plan_model::validate::parse_scenario(&text).expect("valid"));
        let plan = plan_model::planner::generate(&t);
        (t, plan)
    }

    /// The listing for a journal that halted at `step`, after its first command failed or before
    /// any ran; the hosts not observed (the twin's state stands for them).
    fn listed(t: &Topology, plan: &Plan, step: &str, ran: bool) -> String {
        listed_through(t, plan, step, ran, &mut Recorder::default(), false)
    }

    /// [`listed`], the hosts observed through `transport` when `observe`.
    fn listed_through(t: &Topology, plan: &Plan, step: &str, ran: bool, transport: &mut dyn Transport, observe: bool) -> String {
        let mut journal = Journal::in_memory();
        let mut events = vec![
            Event::RunStarted {
                scenario: t.scenario.name.clone(),
                plan_digest: plan_exec::runner::plan_digest(plan),
                steps: plan.steps.iter().map(|s| s.id.clone()).collect(),
                check: "pass".into(),
                override_check: None,
                resume: false,
                pid: 1,
            },
            Event::StepStarted { step: step.into() },
        ];
        if ran {
            events.push(Event::CommandStarted { step: step.into(), index: 0, place: "infra-repo".into(), command: "$ x".into() });
            events.push(Event::CommandFinished { step: step.into(), index: 0, exit: Some(1), duration_ms: 1, output: String::new() });
        }
        events.push(Event::Halted {
            step: step.into(),
            reason: "r".into(),
            drift: vec![],
            recovery: "x".into(),
            recovery_actions: vec![],
            by_hand: None,
            expired: None,
        });
        for event in events {
            journal.append(event).expect("in memory");
        }
        let options = RunOptions { resume: true, observe, ..RunOptions::new(Duration::from_secs(1), Probes::files_only()) };
        let proposal = Runner::new(t, plan, transport, &mut journal, &mut Listing, options).proposal().expect("a halt");
        proposal_text(&proposal)
    }

    /// Records; the hosts `silent` refuse SSH.
    struct Silent {
        silent: &'static [&'static str],
        inner: Recorder,
    }

    impl Transport for Silent {
        fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
            match place {
                Place::Host(host) if self.silent.contains(&host.name.as_str()) => {
                    Err(ExecError::Ssh { host: host.name.clone(), reason: "connection refused".into() })
                }
                _ => self.inner.run(place, request),
            }
        }
    }

    /// Three hypervisors halted in 3.6, cp-gamma and its hypervisor hv-east silent: the listing
    /// says, under the phase 3 rollback, that the VM's destruction is passed over, and why.
    #[test]
    fn the_listing_says_what_a_recovery_passes_over() {
        let (t, plan) = scenario("three-hypervisors.yaml");
        let mut silent = Silent { silent: &["cp-gamma", "hv-east"], inner: Recorder::default() };
        let text = listed_through(&t, &plan, "3.6", true, &mut silent, true);
        let rollback = text.find("phase 3 rollback").expect("the rollback is listed");
        let passed = "     - passed over, its machine is down: destroy VM cp-gamma: tg destroy: hypervisor unreachable";
        assert!(text[rollback..].contains(passed), "{text}");
        // Nothing is passed over where the hypervisor answers.
        let mut silent = Silent { silent: &["cp-gamma"], inner: Recorder::default() };
        assert!(!listed_through(&t, &plan, "3.6", true, &mut silent, true).contains("passed over"));
    }

    #[test]
    fn the_listing_numbers_each_recovery_with_its_cost_and_commands() {
        for (file, master) in [("homelab.yaml", "k8s-master-2"), ("five-masters.yaml", "ctl-b")] {
            let (t, plan) = scenario(file);
            let text = listed(&t, &plan, "2.6", true);
            let expected = [
                "plan recover: the run halted at step 2.6: r".to_string(),
                "Commands of step 2.6 that ran: 1".to_string(),
                "  1. phase 2 rollback [best; the plan's documented recovery]: data kept, API up for every consumer, 12 min".to_string(),
                format!("     - kubeadm reset on {master}\n         {master:<12} $ sudo kubeadm reset --force"),
                format!("     - etcdctl member remove {master}\n         operator     by hand: etcdctl member remove {master}"),
                "  2. stop, remove dead members, keep the cluster running: ".to_string(),
                "       (no command)\n  3. worst case: etcd snapshot restore (RW): ".to_string(),
                "Nothing was run. `plan recover` carries out 1; `plan recover --choose N` carries out N, `--choose KIND` the best of a kind (rollback, hold, worst-case), the same one if a new look at the hosts ranks them differently.\n".to_string(),
            ];
            let mut from = 0;
            for line in &expected {
                let at = text[from..].find(line.as_str()).unwrap_or_else(|| panic!("{file}: {line:?} after byte {from} of\n{text}"));
                from += at + line.len();
            }
        }
    }

    /// The Linux HAProxy profile's LB deploy is several commands (the config uploaded, checked,
    /// installed, HAProxy reloaded): the rollback names the action once, above all of them.
    #[test]
    fn an_action_of_several_commands_is_named_once_above_them() {
        let (t, plan) = scenario("haproxy-libvirt.yaml");
        let text = listed(&t, &plan, "2.8", true);
        let rollback = text.split("\n  2. ").next().expect("the first choice");
        let names: Vec<&str> = rollback.lines().filter(|l| l.starts_with("     - ")).collect();
        let commands = rollback.lines().filter(|l| l.starts_with("         ")).count();
        assert!(commands > names.len(), "some action runs several commands:\n{rollback}");
        let deploy = names.iter().filter(|l| l.contains("install the HAProxy config on lb-1")).count();
        assert_eq!(deploy, 1, "{rollback}");
    }

    #[test]
    fn where_nothing_ran_the_listing_says_there_is_nothing_to_undo() {
        let (t, plan) = scenario("homelab.yaml");
        assert_eq!(
            listed(&t, &plan, "2.6", false),
            "plan recover: the run halted at step 2.6: r\nNothing to undo: no command of step 2.6 ran and the hosts are as the twin expects before it; fix the cause and `plan execute --resume`\n"
        );
    }

    #[test]
    fn rollback_parses_as_recover() {
        use clap::Parser;
        for command in ["recover", "rollback"] {
            let args = crate::cli::Args::try_parse_from(["plan", command, "--choose", "2", "--yes"]).expect("parses");
            let crate::cli::Command::Recover(options) = args.command else { panic!("{command}: {:?}", args.command) };
            assert_eq!((options.choose, options.yes, options.list), (Some(Pick::Number(2)), true, false), "{command}");
        }
        for (text, pick) in [("hold", Pick::Kind("hold")), ("quorum-recovery", Pick::Kind("quorum-recovery")), ("7", Pick::Number(7))] {
            let args = crate::cli::Args::try_parse_from(["plan", "recover", "--choose", text]).expect("parses");
            let crate::cli::Command::Recover(options) = args.command else { panic!("{:?}", args.command) };
            assert_eq!(options.choose, Some(pick), "{text}");
        }
        for wrong in ["0", "holdd", "2.5", ""] {
            let error = crate::cli::Args::try_parse_from(["plan", "recover", "--choose", wrong]).expect_err(wrong).to_string();
            assert!(error.contains("worst-case") && error.contains("1, 2"), "{wrong}: {error}");
        }
    }
}
