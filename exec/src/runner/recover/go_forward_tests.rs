//! A go-forward through the executor: the machine down for good written off at the halt, the
//! write-off journalled, and the resume running the rest of the plan without it.

use super::super::tests::{options, FailsAt};
use super::tests::{halted_at_with, scenario, HostDown, Watching};
use super::*;
use crate::journal::Journal;
use crate::runner::{plan_to_run, Outcome, RunOptions, Runner};
use crate::transport::Recorder;
use plan_model::plan::Plan;
use plan_model::topology::Topology;

/// The scenario with its infra repo in a temporary directory holding the load balancer's
/// bootstrap script, which the write-off's deploy uploads from there.
fn with_infra_repo(file: &str) -> (tempfile::TempDir, Topology, Plan) {
    let (t, _) = scenario(file);
    let repo = tempfile::tempdir().expect("a temporary directory");
    let mut s = t.scenario.clone();
    s.infra_repo = repo.path().display().to_string();
    let script = repo.path().join(s.load_balancer.bootstrap_script());
    std::fs::create_dir_all(script.parent().expect("in a directory")).expect("the scripts directory");
    std::fs::write(&script, "<?php // the bootstrap script\n").expect("the script");
    let t = Topology::new(&s);
    let plan = plan_model::planner::generate(&t);
    (repo, t, plan)
}

fn addresses(t: &Topology, names: &[&str]) -> String {
    let address = |n: &&str| t.nodes.iter().find(|x| x.name == *n).map(|x| format!("\"{}\"", x.address)).expect("a node");
    names.iter().map(address).collect::<Vec<_>>().join(", ")
}

/// What the write-off's pool edit says (pfSense's bootstrap script: the masters left, each with
/// its address) and the command its deploy runs on the load balancer.
fn write_off_lb_commands(t: &Topology, left: &[&str]) -> (String, String) {
    let pool: Vec<String> =
        left.iter().map(|n| format!("['{n}', '{}']", t.nodes.iter().find(|x| x.name == *n).expect("a node").address)).collect();
    let script = t.scenario.load_balancer.bootstrap_script();
    let file = script.rsplit('/').next().expect("a file name");
    (format!("pool [{}]", pool.join(", ")), format!("php /tmp/{file}"))
}

#[test]
fn the_first_master_lost_after_the_cut_over_is_written_off_and_the_run_goes_on_without_it() {
    // Five masters at 3b.2: the rest runs phase 3b's upload-certs and create-token on the first
    // master left, and stops where 3b.5's join discovers the cluster through the dead one.
    for (file, halted) in [("homelab.yaml", "4.5"), ("five-masters.yaml", "4.5"), ("homelab.yaml", "5.2"), ("five-masters.yaml", "3b.2")] {
        let (_repo, t, plan) = with_infra_repo(file);
        let m0 = t.name(t.existing_master()).to_string();
        let (mut journal, _) = halted_at_with(&t, &plan, halted, &mut FailsAt { step: halted.to_string(), inner: Recorder::default() });
        // The first master stops answering: the twin's best for what is observed is going on.
        let observing = RunOptions { observe: true, ..options(true) };
        let mut down = HostDown::of(&m0);
        let mut operator = Watching::default();
        let outcome = Runner::new(&t, &plan, &mut down, &mut journal, &mut operator, observing.clone()).recover(Pick::Best);
        let RollbackOutcome::Done { recovery, reopened, .. } = outcome.expect("carried out") else { panic!("{file} {halted}") };
        assert_eq!(recovery, RecoveryKind::GoForward.describe(), "{file} {halted}");
        assert_eq!(reopened, [halted], "{file} {halted}");
        let progress = Progress::from_records(&journal.records);
        let written_off = progress.written_off().cloned().expect("the write-off is journalled");
        assert_eq!((written_off.step.as_str(), written_off.nodes.clone()), (halted, vec![m0.clone()]), "{file}");
        assert!(written_off.state.written_off.contains(t.existing_master()) && !written_off.state.members().contains(t.existing_master()));
        // The write-off ran: the member removed and the Node deleted by hand; the pool and the
        // config stack's hosts edited as the plan's own operations edit them, with the masters
        // left, and the load balancer deployed by the plan's own commands on its host.
        let ran = |place: &str, what: &str| operator.started.iter().any(|(p, c)| p == place && c.contains(what));
        assert!(ran("operator", &format!("write off {m0}")), "{file}: {:?}", operator.started);
        let names = |set: plan_model::topology::NodeSet| set.iter().map(|n| t.name(n)).collect::<Vec<_>>();
        let (pool, stack_hosts) = (names(written_off.state.lb_declared.pool), names(written_off.state.stack_hosts_declared));
        assert!(
            !pool.is_empty() && !pool.contains(&m0.as_str()) && !stack_hosts.contains(&m0.as_str()),
            "{file}: {pool:?} {stack_hosts:?}"
        );
        let (pool_edit, deploy) = write_off_lb_commands(&t, &pool);
        assert!(ran("operator", &pool_edit), "{file}: {pool_edit} in {:?}", operator.started);
        assert!(ran(&t.scenario.load_balancer.name, &deploy), "{file}: {deploy} in {:?}", operator.started);
        let stack =
            format!("{}s = [{}]", t.scenario.config_stack.as_ref().expect("a config stack").host_variable, addresses(&t, &stack_hosts));
        assert!(ran("operator", &stack), "{file}: {stack} in {:?}", operator.started);
        assert!(!operator.started.iter().any(|(_, c)| c.contains(&format!("'{m0}'"))), "{file}: {m0} is in no list");

        // The plan it follows from here names the first master nowhere from the halted step on,
        // where the plan it started did (4.6 revokes the tokens there, 6.1 reboots it).
        let going_on = plan_to_run(&t, &plan, &journal).expect("fits").expect("a plan going on");
        let from = plan.steps.iter().position(|s| s.id == halted).expect("the halted step");
        let on_m0 = |plan: &Plan| crate::invocation::compile(&t, plan)[from..].iter().flatten().filter(|i| i.place_label() == m0).count();
        assert!(on_m0(&plan) > 0, "{file}: the plan it started runs commands on {m0} after {halted}");
        assert_eq!(on_m0(&going_on), 0, "{file}: the plan going on does not");
        assert_eq!(progress.plan_digest, Some(crate::runner::plan_digest(&going_on)), "{file}");

        // A fresh run over that journal (allowed after a recovery) is the plan from its start, as
        // the twin predicts it from the scenario: it completes, where a prediction kept from the
        // write-off would stop it where the go-forward stops.
        let mut fresh = Journal::in_memory();
        fresh.records = journal.records.clone();
        let outcome = Runner::new(&t, &plan, &mut Recorder::default(), &mut fresh, &mut Watching::default(), options(false)).run();
        assert!(matches!(outcome, Ok(Outcome::Completed)), "{file} {halted}: a fresh run: {outcome:?}");

        // Resumed on that plan, against hosts where the first master still does not answer: it
        // runs every step left, none of them on the first master, up to where the twin's own
        // go-forward stops (the acceptance criteria want every master) and halts there.
        let twin = plan_sim::run::Engine::new(&t, &plan, plan_sim::run::Recording::default()).run(&[plan_sim::run::Injection {
            at: plan_sim::run::Point { step: from as u16, action: 0 },
            fault: plan_model::fault::Fault::NodeDown { node: t.existing_master(), lasts_s: None },
        }]);
        let plan_sim::run::Outcome::WentOn { stopped_at: Some(stopped_at), .. } = &twin.outcome else {
            panic!("{file}: {:?}", twin.outcome)
        };
        let stop = stopped_at.step.as_str();
        down.inner.commands.clear();
        let outcome = Runner::new(&t, &going_on, &mut down, &mut journal, &mut Watching::default(), observing).run();
        let Ok(Outcome::Halted(halt)) = &outcome else { panic!("{file} {halted}: {outcome:?}") };
        assert_eq!(halt.step, stop, "{file}: {}", halt.reason);
        assert!(halt.reason.contains("the twin refuses") && halt.reason.ends_with(&stopped_at.why), "{}", halt.reason);
        assert!(down.inner.commands.iter().all(|c| c.place != m0), "{file}: nothing asked of {m0}");
        let ran: std::collections::BTreeSet<&str> = down.inner.commands.iter().map(|c| c.step.as_str()).collect();
        let compiled = crate::invocation::compile(&t, &going_on);
        let runs = |k: &usize| compiled[*k].iter().any(|i| matches!(i.work, crate::invocation::Work::Shell { .. }));
        let stop_at = going_on.steps.iter().position(|s| s.id == stop).expect("the step it stops at");
        let last = (from..stop_at).rev().find(runs).expect("a step before it that runs a command");
        assert!(ran.contains(halted) && ran.contains(going_on.steps[last].id.as_str()), "{file}: {ran:?}");
        assert!(!ran.contains(stop), "{file}: {stop} ran: {ran:?}");
        // The plan it started is no longer the one the journal follows.
        let refused = Runner::new(&t, &plan, &mut Recorder::default(), &mut journal, &mut Watching::default(), options(true)).run();
        assert!(matches!(&refused, Err(ExecError::Input(why)) if why.contains("another plan")), "{file}: {refused:?}");
    }
}
