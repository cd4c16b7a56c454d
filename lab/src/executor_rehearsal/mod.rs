//! A rehearsal through the real executor: the plan, or a slice of it, run by `plan execute`'s
//! runner over SSH against fixture hosts on loopback, and its result set beside the twin's.
//!
//! What is real on the lab and what stands in: the crate's summary and docs/lab.md. The twin
//! starts where the whole plan stands before the slice's first step ([`predict_slice`]), and the lab
//! sets that state up; the executor runs with the loopback guard on, and its file, etcd, load
//! balancer and Kubernetes API observers compare the lab with the twin before and after every step.
//! The lab is also the operator: it confirms every phase and carries out the by-hand work.
//!
//! The parts, each in a file of its own: the lab set up and owned ([`rig`]), the kubelet stand-in
//! and its thread ([`kubelet`]), the operator ([`operator`]), the run with its recovery ([`run`]),
//! the report and its rows ([`report`], [`rows`]), the files kubeadm would have written
//! ([`shims`]), a lab that stays up for `plan execute` ([`standing`]).

mod kubelet;
mod operator;
mod report;
mod rig;
mod rows;
mod run;
mod shims;
mod standing;

pub use report::ExecutorRehearsal;
pub use standing::{carry_out_by_hand, Connection, StandingLab};

use crate::error::LabError;
pub use crate::executor_fault::Drill;
use plan_exec::predict::Prediction;
use plan_exec::ExecError;
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// What `plan rehearse` runs by default: every step of the plan.
pub const SLICE_DEFAULT: [&str; 1] = ["all"];
/// Deadline of each command the executor runs on the lab.
pub const COMMAND_TIMEOUT_S: u64 = 60;
pub use crate::scratch::SCRATCH_DIR;
/// How long the lab waits for a write to commit when it asks whether etcd has quorum: room for
/// an election when the fault froze or killed the leader (20 election timeouts: at six
/// rehearsals on two cores, 2 s once ran out while two of three voters elected a leader).
pub const QUORUM_WRITE_TIMEOUT_MS: u64 = 5000;
/// How long a rebooting lab host stays down, the plan's reboot once the operator waits for the
/// node, or a reboot fault (the model charges 90 s; the lab's etcd and apiserver come back in
/// about a second once started).
pub const LAB_REBOOT_MS: u64 = 1500;
/// How long the plan's own reboot keeps its host down when nothing waits for the node. The model
/// boots the machine after the reboot's watch through the VIP ([`plan_model::operation::Operation::commands_through`]):
/// a real reboot (50–90 s) lasts through that watch (90 s), where the lab's commands take a few
/// seconds, so the lab's host comes back once `kubectl wait` asks for the node, or after this.
pub const LAB_REBOOT_UNWAITED_MS: u64 = 10 * LAB_REBOOT_MS;
/// How long the executor waits on the lab for a host that does not answer before it takes it as
/// dead (`plan execute --wait-for-host`, by default the twin's reboot time): the lab's reboot
/// with room for its sshd and etcd to start again on a loaded machine (twice the reboot failed a
/// partition's rehearsal once, at load 10–15 with six test threads).
pub const LAB_HOST_WAIT_MS: u64 = 4 * LAB_REBOOT_MS;
/// How long a fault that clears (a reboot, a partition) lasts on the lab at least: longer than one
/// look at the hosts takes (a frozen member's health check runs into its timeout, about 2 s), and
/// it lasts until the executor has seen it (`KubeletStandIn::clears_now`): a 1.5 s partition once
/// healed inside the first look and was never seen.
pub const FAULT_CLEARS_AFTER_MS: u64 = 2 * LAB_REBOOT_MS;
/// How long the executor on the lab looks again at what differs after a step, or lags before
/// one, before it halts (`plan execute`'s 20 s, `RunOptions::settle`): the lab's stand-ins settle
/// within a second (its kubelet stand-in looks every 100 ms, HAProxy checks every 100 ms, etcd
/// elects in 500 ms), and a look at a cluster without quorum takes 2 s, so 20 s cost every
/// rehearsal of a master lost after a step's commands about ten such looks. A reboot seen
/// within it ends [`LAB_REBOOT_MS`] after the executor says it looks: the rest, 10.5 s, is for
/// its sshd and etcd to answer again (a loaded machine once took more than 6 s).
pub const LAB_SETTLE_MS: u64 = 8 * LAB_REBOOT_MS;
/// When a fault that clears clears if the executor never said it waits for it (it should: every
/// fault that clears silences something it looks at), well inside [`LAB_HOST_WAIT_CLEARING_MS`],
/// and past the executor's look after a step ([`LAB_SETTLE_MS`]), which does not see a fault the
/// twin's run has over only after a halt.
pub const FAULT_UNSEEN_CLEARS_AFTER_MS: u64 = LAB_SETTLE_MS + 4 * LAB_REBOOT_MS;
/// How long the executor waits on the lab when the rehearsed fault clears by itself (a reboot,
/// a partition): far past [`FAULT_CLEARS_AFTER_MS`], as an operator's `--wait-for-host` is set
/// past a reboot, so a loaded machine's slow boot is still waited for (at the suite's four test
/// threads on two cores, a rebooted host's sshd and etcd once took longer than [`LAB_HOST_WAIT_MS`]). A
/// host that answers ends the wait at its next look (every second on the lab), so the bound costs
/// nothing when the fault clears.
pub const LAB_HOST_WAIT_CLEARING_MS: u64 = 30 * LAB_REBOOT_MS;
/// How often the kubelet stand-in looks at the hosts.
pub const KUBELET_TICK_MS: u64 = 100;
/// How long the end's Ready rows give a node's kubelet to reach an apiserver once (far below the
/// node controller's 40 s grace: a down apiserver still fails every try).
pub const READY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// The file the plan's step 0.2 edits by hand, in the host's `/tmp`.
const KUBEADM_NEW: &str = "kubeadm-new.yaml";
/// The pid file of the member a join started, in the host's directory, and the command (run in
/// the host) that starts it again on its data after a boot.
const JOINED_MEMBER_PID: &str = "etcd-member/pid";
const JOINED_MEMBER_START: &str =
    "m=$PLAN_FIXTURE_HOST_DIR/etcd-member; setsid /usr/bin/etcd $(cat $m/args) >> $m/etcd.log 2>&1 < /dev/null & echo $! > $m/pid";

/// kube-public/cluster-info's kubeconfig, under the lab's root (kubeadm wrote it at `init`).
const CLUSTER_INFO: &str = "cluster-info.yaml";
/// The apiserver's static pod manifest, under `/etc/kubernetes`.
const APISERVER_MANIFEST: &str = "manifests/kube-apiserver.yaml";
const ETCD_MANIFEST: &str = "manifests/etcd.yaml";
/// The name the workstation's fixture host goes by.
const WORKSTATION: &str = "workstation";

fn not_rehearsable(what: impl Into<String>, why: impl Into<String>) -> LabError {
    LabError::NotRehearsable { what: what.into(), why: why.into() }
}

/// The plan with only `steps` (in the plan's order) and their phases; `all` is every step.
///
/// # Errors
/// A step id the plan does not have.
pub fn slice(plan: &Plan, steps: &[String]) -> Result<Plan, LabError> {
    if steps.iter().any(|s| s == "all") {
        return Ok(plan.clone());
    }
    if let Some(missing) = steps.iter().find(|id| !plan.steps.iter().any(|s| &s.id == *id)) {
        return Err(not_rehearsable(format!("step {missing}"), "the plan has no such step"));
    }
    let mut sliced = plan.clone();
    sliced.steps.retain(|s| steps.contains(&s.id));
    sliced.phases.retain(|p| sliced.steps.iter().any(|s| s.phase == p.id));
    Ok(sliced)
}

/// Runs `steps` of `plan` (`all`: the whole plan) through the executor on a fresh lab of fixture
/// hosts and compares the result with the twin.
///
/// # Caveats
/// The executor connects to the inventory's addresses, so a scenario off loopback is moved onto
/// it first ([`crate::address::LoopbackMap`]: `10.0.20.100` -> `127.0.20.100`), the plan's text
/// with it; an address a command names that is no address of the scenario stays, and the loopback
/// guard refuses it.
/// Each lab claims a loopback range of its own (`127.N.0.0/16`, the lowest free, see
/// [`crate::scratch::LabRange`]) and moves the scenario into it, one on loopback already too
/// (`127.0.20.10` -> `127.1.20.10` in range 1), so that rehearsals at once do not meet on the
/// scenario's port (6443). Needs root, sshd, unshare ([`crate::host::usable`]), openssl, curl,
/// python3, etcd and haproxy.
///
/// # Errors
/// The lab cannot start (no sshd, a port taken), an address off loopback, a step the plan lacks,
/// or the executor could not run at all (its journal). A halt is an outcome, not an error.
pub fn rehearse_through_executor(
    scenario_t: &Topology,
    scenario_plan: &Plan,
    steps: &[String],
    drill: Option<Drill>,
) -> Result<ExecutorRehearsal, LabError> {
    rehearse_through_executor_checked(scenario_t, scenario_plan, steps, drill, &mut |_, _| Ok(()))
}

/// Where a rehearsal through the executor stands: what [`rehearse_through_executor_checked`] tells
/// its checkpoint, with the lab's root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Everything of the lab runs (hosts, etcd, HAProxy, stand-ins, the kubelet thread, the probe);
    /// the executor has not started.
    LabUp,
    /// The executor's run (and its recovery) is over; the rows are not read yet.
    RunDone,
}

/// [`rehearse_through_executor`], calling `checkpoint` at each [`Checkpoint`]: an error it returns
/// ends the rehearsal there with that error, and everything the lab started stops as on any
/// other error (a test makes a rehearsal fail midway with it).
///
/// # Errors
/// As [`rehearse_through_executor`], and the checkpoint's.
pub fn rehearse_through_executor_checked(
    scenario_t: &Topology,
    scenario_plan: &Plan,
    steps: &[String],
    drill: Option<Drill>,
    checkpoint: &mut dyn FnMut(Checkpoint, &Path) -> Result<(), LabError>,
) -> Result<ExecutorRehearsal, LabError> {
    let rig = rig::Rig::up(scenario_t, scenario_plan, steps, drill)?;
    checkpoint(Checkpoint::LabUp, rig.root())?;
    let run = run::Run::through(&rig)?;
    checkpoint(Checkpoint::RunDone, rig.root())?;
    report::ExecutorRehearsal::of(rig, run)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The twin over the slice, from the state the whole plan reaches before the slice's first step:
/// the plan's earlier steps are taken as done (the lab sets up their files and etcd members), the
/// steps the slice leaves out after that are skipped. An edited plan (`--plan`) that lacks a step
/// starts without its effect.
pub fn predict_slice(t: &Topology, plan: &Plan, sliced: &Plan) -> Prediction {
    let whole = Prediction::new(t, plan);
    let first = sliced.steps.first().and_then(|s| plan.steps.iter().position(|p| p.id == s.id)).unwrap_or(0);
    Prediction::from(t, sliced, *whole.before(first))
}

fn exec_error(what: &str, e: ExecError) -> LabError {
    LabError::Command { command: format!("executor: {what}"), message: e.to_string() }
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::shims::cluster_configuration;
    use super::*;
    use crate::executor_lab::LabPaths;
    use crate::host;

    fn homelab() -> Topology {
        let text = include_str!("../../../scenarios/homelab.yaml");
        Topology::new(&plan_model::validate::parse_scenario(text).expect("the homelab parses"))
    }

    #[test]
    fn a_slice_keeps_the_plans_order_and_refuses_an_unknown_step() {
        let t = homelab();
        let plan = plan_model::planner::generate(&t);
        let sliced = slice(&plan, &["4.3".to_string(), "0.2".to_string()]).expect("both exist");
        assert_eq!(sliced.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["0.2", "4.3"]);
        assert_eq!(sliced.phases.len(), 2);
        assert_eq!(slice(&plan, &["all".to_string()]).expect("all").steps.len(), plan.steps.len());
        assert!(matches!(slice(&plan, &["9.9".to_string()]), Err(LabError::NotRehearsable { .. })));
    }

    #[test]
    fn the_lab_moves_the_workstation_paths_into_its_scratch_directory() {
        let t = homelab();
        let plan = plan_model::planner::generate(&t);
        let paths = LabPaths::under(Path::new("/dev/shm/lab-x"));
        let moved = paths.plan(&t, &plan).expect("the plan fits the lab");
        let text: String = moved.steps.iter().flat_map(|s| &s.commands).map(|c| c.run.clone()).collect();
        assert!(!text.contains(&t.scenario.infra_repo) && !text.contains(&t.scenario.etcd_backup.path), "no scenario path is left");
        assert!(text.contains("cd /dev/shm/lab-x/infra && scripts/tg apply"), "{text}");
        assert_eq!(paths.topology(&t).scenario.infra_repo, "/dev/shm/lab-x/infra");
        // Every login is the lab's root; a path with the user's name in it is not a login.
        assert!(!text.contains("wizard@") && !text.contains("admin@"), "{text}");
        assert!(text.contains("ssh root@k8s-master-2.viktorbarzin.lan"), "{text}");
        let moved_t = paths.topology(&t);
        assert_eq!((moved_t.scenario.ssh_user.as_str(), moved_t.scenario.load_balancer.ssh_user.as_str()), ("root", "root"));
    }

    #[test]
    fn the_shims_configuration_has_the_vip_sans_only_when_asked() {
        let t = homelab();
        assert!(!cluster_configuration(&t, false).contains("certSANs"));
        let on = cluster_configuration(&t, true);
        assert!(on.contains("controlPlaneEndpoint: 10.0.20.99:6443") && on.contains("  - 10.0.20.99\n"), "{on}");
    }

    #[test]
    fn a_homelab_whose_addresses_clash_on_loopback_is_refused_before_anything_starts() {
        if let Err(e) = host::usable() {
            host::skip_test(&format!("fixture hosts cannot run: {e}"));
            return;
        }
        // k8s-master-2 at 10.9.20.100 would land on k8s-master's 127.0.20.100.
        let text = include_str!("../../../scenarios/homelab.yaml").replace("address: 10.0.20.110", "address: 10.9.20.100");
        let t = Topology::new(&plan_model::validate::parse_scenario(&text).expect("parses"));
        let plan = plan_model::planner::generate(&t);
        match rehearse_through_executor(&t, &plan, &["4.3".to_string()], None) {
            Err(LabError::AddressClash { node, other, .. }) => assert_eq!((node.as_str(), other.as_str()), ("k8s-master-2", "k8s-master")),
            other => panic!("refused: {:?}", other.map(|r| r.executor_outcome)),
        }
    }
}
