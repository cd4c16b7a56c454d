//! A lab that stays up: the executor's rig with no run of its own, for `plan execute` started in
//! another shell (`plan lab up`). The process that holds a [`StandingLab`] is the
//! lab: its kubelet thread, apiserver stand-ins and probe live there, and dropping it stops every
//! process of the lab and removes its directory, as a rehearsal's rig does.
//!
//! What the executor needs to reach it is a [`Connection`]: the ssh config of the fixture hosts,
//! the workstation's host, the operator's kubeconfig, etcd's client URLs and the load balancer's
//! paths. The scenario moved onto the lab's loopback range, with its workstation paths in the lab's
//! directory, is [`StandingLab::topology`]; the plan `plan execute` derives from it is the lab's.
//!
//! Nobody acts as the operator inside the lab: by-hand work is done by the person (or test) at the
//! executor, with [`carry_out_by_hand`] where the lab can make the change itself.

use super::lock;
use super::rig::Rig;
use super::shims::cluster_configuration;
use crate::error::LabError;
use crate::executor_lab::{self, ByHand, LabPaths};
use crate::host;
use plan_model::hand::HandTask;
use plan_model::plan::Plan;
use plan_model::topology::Topology;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The executor's lab, up until dropped, with no run of its own.
pub struct StandingLab {
    rig: Rig,
}

/// How `plan execute` reaches a standing lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The lab's directory: its hosts, the infra repo, the etcd backup.
    pub root: PathBuf,
    /// The fixture hosts' ssh config (`--ssh-config`).
    pub ssh_config: PathBuf,
    /// The workstation's host as an ssh destination (`--workstation`): the plan's workstation and
    /// infra-repo commands run there, where the lab's shims and `/etc/hosts` are.
    pub workstation: String,
    /// The operator's kubeconfig, the infra repo's first kubeconfig consumer (`--kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// etcd's client URLs, every master's, for the operator's own etcdctl. `plan execute` asks
    /// kubeadm's local endpoint on a master, as on real hosts (its default `--etcd-endpoint`; the
    /// lab's etcdctl dials that host's member), in plain http (`--etcd-pki none`).
    pub etcd_endpoints: String,
    /// HAProxy's config and stats socket on the load balancer's host.
    pub haproxy_config: String,
    pub haproxy_socket: String,
    /// `10.0.20.100 -> 127.1.20.100` per address moved onto the lab's range.
    pub moved_to_loopback: Vec<String>,
    /// The lab's loopback range, `127.N.0.0/16`: every address of the lab's scenario is in it.
    /// (Empty in the record of a lab started before the field: `plan lab down` still reads it.)
    #[serde(default)]
    pub loopback_range: String,
}

impl Connection {
    /// The options of `plan execute` (after the subcommand) that point it at the lab; the journal
    /// goes to `state_dir`.
    pub fn execute_args(&self, state_dir: &Path) -> Vec<String> {
        let kubeconfig = self.kubeconfig.as_ref().map(|k| ("--kubeconfig", k.display().to_string()));
        [
            ("--ssh-config", self.ssh_config.display().to_string()),
            ("--workstation", self.workstation.clone()),
            ("--etcd-pki", "none".to_string()),
            ("--haproxy-config", self.haproxy_config.clone()),
            ("--haproxy-socket", self.haproxy_socket.clone()),
            ("--state-dir", state_dir.display().to_string()),
        ]
        .into_iter()
        .chain(kubeconfig)
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

impl StandingLab {
    /// Starts the executor's lab for the whole plan of `t`, as a rehearsal through the executor
    /// does before its first step, and leaves it up.
    ///
    /// # Errors
    /// As [`super::rehearse_through_executor`] before the executor runs: what the lab does not
    /// replicate, no sshd or privilege, an address clash, a process that does not start.
    pub fn up(t: &Topology, plan: &Plan) -> Result<StandingLab, LabError> {
        Ok(StandingLab { rig: Rig::up(t, plan, &["all".to_string()], None)? })
    }

    /// The scenario on the lab: on its loopback range, its workstation paths in its directory,
    /// every login `root`.
    pub fn topology(&self) -> &Topology {
        &self.rig.t
    }

    /// The plan on the lab ([`Self::topology`]'s).
    pub fn plan(&self) -> &Plan {
        &self.rig.sliced
    }

    pub fn root(&self) -> &Path {
        self.rig.root()
    }

    pub fn connection(&self) -> Connection {
        let t = &self.rig.t;
        Connection {
            root: self.rig.root().to_path_buf(),
            ssh_config: self.rig.hosts.ssh_config(),
            workstation: format!("{}@{}", executor_lab::LAB_USER, self.rig.workstation),
            kubeconfig: self.rig.paths.kubeconfig(t),
            etcd_endpoints: lock(&self.rig.kubelet).etcd.all_client_urls().join(","),
            haproxy_config: executor_lab::lb_files(t).0.to_string(),
            haproxy_socket: executor_lab::lb_files(t).1.to_string(),
            moved_to_loopback: self.rig.moved_to_loopback.clone(),
            loopback_range: self.rig.loopback_range(),
        }
    }
}

/// The by-hand work of `task` (a command of `step` in the lab's plan), carried out on the lab at
/// `root` as the lab's operator carries it out in a rehearsal: an edit of the infra repo, the
/// kubeadm configuration written on `host` (the host the step's commands run on). Work elsewhere
/// (a pfSense GUI, a docs page) and an edit of a file the lab's repo lacks have nothing to do on
/// the lab: what was to be done is returned, and the work counts as done, as in a rehearsal.
///
/// # Errors
/// An edit the lab cannot make (the text to replace is not in the file), a recovery (a standing
/// lab carries out none by hand), a file that cannot be written.
pub fn carry_out_by_hand(root: &Path, host: Option<&str>, t: &Topology, task: &HandTask) -> Result<String, LabError> {
    match by_hand(root, host, t, task)? {
        ByHand::Edited(what) => Ok(what),
        ByHand::NoCounterpart if matches!(task, HandTask::Elsewhere) => {
            Ok("nothing on the lab: the work is outside its machines".to_string())
        }
        ByHand::NoCounterpart => Ok("nothing on the lab: its infra repo has no counterpart of this file".to_string()),
        ByHand::Unreadable(why) => Err(LabError::NotRehearsable { what: "by-hand work".to_string(), why }),
    }
}

/// [`carry_out_by_hand`]'s work, the rehearsal's operator's too: what was made (`in the infra
/// repo: …`, `on HOST: …`), nothing to do on the lab, or why the lab cannot make it.
pub(super) fn by_hand(root: &Path, host: Option<&str>, t: &Topology, task: &HandTask) -> Result<ByHand, LabError> {
    match task {
        HandTask::Repo(edits) => Ok(match executor_lab::carry_out(&LabPaths::under(root).infra_repo, edits) {
            ByHand::Edited(what) => ByHand::Edited(format!("in the infra repo: {what}")),
            other => other,
        }),
        HandTask::KubeadmConfig { file, endpoint, cert_sans } => {
            let Some(host) = host else { return Ok(ByHand::Unreadable(format!("no host runs the step that edits {file}"))) };
            let dir = root.join("hosts").join(host);
            if !dir.is_dir() {
                return Ok(ByHand::Unreadable(format!("the lab has no host {host} (in {})", root.display())));
            }
            let sans: String = cert_sans.iter().map(|s| format!("  - {s}\n")).collect();
            let text = format!("{}controlPlaneEndpoint: {endpoint}\napiServer:\n  certSANs:\n{sans}", cluster_configuration(t, false));
            host::write_file(&dir.join(file.trim_start_matches('/')), &text)?;
            Ok(ByHand::Edited(format!("on {host}: {file} gets controlPlaneEndpoint {endpoint} and certSANs")))
        }
        HandTask::Recovery(action) => {
            Ok(ByHand::Unreadable(format!("{} is a recovery; a standing lab does not carry out recoveries", action.describe(t))))
        }
        HandTask::Elsewhere => Ok(ByHand::NoCounterpart),
    }
}
