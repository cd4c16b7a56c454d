//! Real etcd: the flags a lab member starts with, and `etcdctl` as the operator runs it.
//!
//! Every request carries etcdctl's own dial and command timeouts, and the lab kills an
//! `etcdctl` that outlives them. A request etcd refuses (no quorum, not enough started members,
//! a timeout) comes back as [`Refused`], an observation, not as an error.

use crate::error::LabError;
use crate::process::POLL_MS;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's etcd-server.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Debian's etcd-client.
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
/// Raft heartbeat; etcd's default is 100 ms. Half of it, so an election takes half a second, not
/// seconds; not smaller: at 25 ms three idle members spent 13 % of a core on heartbeats (6.7 %
/// at 50 ms), and the suite runs four labs at once on two cores.
pub const HEARTBEAT_MS: u32 = 50;
/// Raft election timeout (10 heartbeats, as etcd's defaults); etcd's default is 1000 ms.
pub const ELECTION_TIMEOUT_MS: u32 = 500;
/// etcdctl's bound on connecting to an endpoint.
pub const DIAL_TIMEOUT_MS: u64 = 500;
/// etcdctl's bound on one request (member add, remove, promote, list).
pub const COMMAND_TIMEOUT_MS: u64 = 2000;
/// Slack past etcdctl's own timeouts before the lab kills it.
pub const ETCDCTL_GRACE_MS: u64 = 3000;

// A member as `etcdctl member list -w json` prints it, and voting or not: the executor's own
// types and parser, so the lab reads etcd exactly as the executor does.
pub use plan_exec::etcd::{EtcdMember, Membership};

#[derive(Deserialize)]
struct CountOnly {
    #[serde(default)]
    count: u64,
}

/// Real etcd said no (or did not answer in time): what it said, first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What real etcd did with a request.
pub type Real<T> = Result<T, Refused>;

/// etcd's answer read with `read` (its JSON): unreadable JSON is an error, a refusal stays one.
fn read_answer<T, E: std::fmt::Display>(
    args: &[&str],
    answer: Real<String>,
    read: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Real<T>, LabError> {
    match answer {
        Ok(text) => read(&text)
            .map(Ok)
            .map_err(|e| LabError::Command { command: format!("etcdctl {}", args.join(" ")), message: format!("unreadable JSON: {e}") }),
        Err(refused) => Ok(Err(refused)),
    }
}

/// A snapshot file as `etcdctl snapshot status -w json` reads it: its integrity hash checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    pub hash: u64,
    /// The store's revision when the snapshot was taken.
    pub revision: i64,
    /// Keys in the store (the lab's own probe and seed keys, and etcd's internal ones).
    #[serde(rename = "totalKey")]
    pub total_keys: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Where `etcdctl snapshot restore` puts a new one-member cluster.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    pub name: String,
    pub peer_url: String,
    /// Must not exist yet: etcdctl refuses to restore over a data directory.
    pub data_dir: PathBuf,
    /// Sets the restored cluster's id apart from the one it was taken from.
    pub cluster_token: String,
}

/// How a lab member starts: its identity, where it listens, and how it finds its cluster.
#[derive(Debug, Clone)]
pub struct EtcdFlags {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    /// `name=peer-url` for every member, itself included.
    pub initial_cluster: String,
    pub cluster_state: ClusterState,
    pub force_new_cluster: bool,
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

impl EtcdFlags {
    /// These flags for a member that starts again on its data: `--initial-cluster-state=existing`.
    pub fn existing(&self) -> EtcdFlags {
        EtcdFlags { cluster_state: ClusterState::Existing, ..self.clone() }
    }

    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.client_url),
            format!("--advertise-client-urls={}", self.client_url),
            format!("--listen-peer-urls={}", self.peer_url),
            format!("--initial-advertise-peer-urls={}", self.peer_url),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-state={}", if self.cluster_state == ClusterState::New { "new" } else { "existing" }),
            format!("--heartbeat-interval={HEARTBEAT_MS}"),
            format!("--election-timeout={ELECTION_TIMEOUT_MS}"),
        ];
        if self.force_new_cluster {
            args.push("--force-new-cluster".to_string());
        }
        args
    }
}

/// `etcdctl` ([`ETCDCTL_BIN`]) against some endpoints.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    endpoints: Vec<String>,
}

impl Etcdctl {
    /// A client of `endpoints` (the lab passes loopback URLs only).
    pub fn new(endpoints: Vec<String>) -> Etcdctl {
        Etcdctl { endpoints }
    }

    /// Runs one etcdctl command against the endpoints; `Err` only when etcdctl itself cannot run.
    fn run(&self, args: &[&str], command_timeout_ms: u64) -> Result<Real<String>, LabError> {
        if self.endpoints.is_empty() {
            return Ok(Err(Refused("no etcd member is running to ask".to_string())));
        }
        self.execute(args, command_timeout_ms)
    }

    /// Runs one etcdctl command; without endpoints it dials nothing (the snapshot file commands).
    fn execute(&self, args: &[&str], command_timeout_ms: u64) -> Result<Real<String>, LabError> {
        let shown = format!("etcdctl {}", args.join(" "));
        let mut command = Command::new(ETCDCTL_BIN);
        command.env("ETCDCTL_API", "3");
        if !self.endpoints.is_empty() {
            command.arg(format!("--endpoints={}", self.endpoints.join(",")));
        }
        let mut child = command
            .arg(format!("--dial-timeout={DIAL_TIMEOUT_MS}ms"))
            .arg(format!("--command-timeout={command_timeout_ms}ms"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::io(format!("start {ETCDCTL_BIN}"), e))?;
        let limit = Duration::from_millis(DIAL_TIMEOUT_MS + command_timeout_ms + ETCDCTL_GRACE_MS);
        let start = Instant::now();
        // Outputs are small (a member list, a count), far below a pipe's buffer, so waiting
        // before reading cannot deadlock.
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| LabError::io(&shown, e))? {
                break status;
            }
            if start.elapsed() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Err(Refused(format!("{shown}: no answer within {} ms", limit.as_millis()))));
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut stdout).map_err(|e| LabError::io(&shown, e))?;
        }
        if let Some(mut err) = child.stderr.take() {
            err.read_to_string(&mut stderr).map_err(|e| LabError::io(&shown, e))?;
        }
        if status.success() {
            Ok(Ok(stdout))
        } else {
            // etcdctl prints client retries as JSON log lines, then "Error: <reason>".
            let reason = stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("Error:"))
                .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("failed without a message")
                .trim_start_matches("Error:")
                .trim()
                .to_string();
            Ok(Err(Refused(reason)))
        }
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, args: &[&str], timeout_ms: u64) -> Result<Real<T>, LabError> {
        read_answer(args, self.run(args, timeout_ms)?, |text| serde_json::from_str(text))
    }

    /// `etcdctl member list`: the membership as the answering member knows it.
    pub fn member_list(&self) -> Result<Real<Vec<EtcdMember>>, LabError> {
        let args = ["-w", "json", "member", "list"];
        read_answer(&args, self.run(&args, COMMAND_TIMEOUT_MS)?, plan_exec::etcd::parse_member_list)
    }

    /// `etcdctl member list` as etcd 3.5 and later answer it: linearizably, so refused without
    /// quorum (docs/facts.md E9), where the lab's etcd 3.4 answers from the asked member's own
    /// copy. A linearizable read goes first; its refusal is the list's.
    pub fn member_list_linearizable(&self) -> Result<Real<Vec<EtcdMember>>, LabError> {
        if let Err(refused) = self.run(&["get", "--consistency=l", "lab-linearizable-member-list"], COMMAND_TIMEOUT_MS)? {
            return Ok(Err(refused));
        }
        self.member_list()
    }

    /// `etcdctl member remove ID`.
    pub fn member_remove(&self, member: &EtcdMember) -> Result<Real<()>, LabError> {
        Ok(self.run(&["member", "remove", &member.hex_id()], COMMAND_TIMEOUT_MS)?.map(|_| ()))
    }

    /// A linearizable write: it commits only with a quorum of voters.
    pub fn put(&self, key: &str, value: &str, timeout_ms: u64) -> Result<Real<()>, LabError> {
        Ok(self.run(&["put", key, value], timeout_ms)?.map(|_| ()))
    }

    /// How many keys under `prefix` the answering member holds (a serializable read: it answers
    /// without quorum).
    pub fn count_serializable(&self, prefix: &str) -> Result<Real<u64>, LabError> {
        Ok(self
            .json::<CountOnly>(&["-w", "json", "get", prefix, "--prefix", "--keys-only", "--consistency=s"], COMMAND_TIMEOUT_MS)?
            .map(|c| c.count))
    }

    /// `etcdctl snapshot save FILE` from the (single) endpoint: a consistent copy of its store.
    pub fn snapshot_save(&self, file: &Path) -> Result<Real<()>, LabError> {
        let file = file.display().to_string();
        Ok(self.run(&["snapshot", "save", &file], COMMAND_TIMEOUT_MS)?.map(|_| ()))
    }

    /// `etcdctl snapshot status FILE`: reads the file and checks its hash (dials nothing).
    pub fn snapshot_status(&self, file: &Path) -> Result<Real<SnapshotStatus>, LabError> {
        let file = file.display().to_string();
        let args = ["-w", "json", "snapshot", "status", file.as_str()];
        read_answer(&args, self.execute(&args, COMMAND_TIMEOUT_MS)?, |text| serde_json::from_str(text))
    }

    /// `etcdctl snapshot restore FILE` into a new data directory, as a one-member cluster of
    /// `target` alone (dials nothing).
    pub fn snapshot_restore(&self, file: &Path, target: &RestoreTarget) -> Result<Real<()>, LabError> {
        let file = file.display().to_string();
        let name = format!("--name={}", target.name);
        let cluster = format!("--initial-cluster={}={}", target.name, target.peer_url);
        let peer = format!("--initial-advertise-peer-urls={}", target.peer_url);
        let token = format!("--initial-cluster-token={}", target.cluster_token);
        let data_dir = format!("--data-dir={}", target.data_dir.display());
        let args = ["snapshot", "restore", file.as_str(), &name, &cluster, &peer, &token, &data_dir];
        Ok(self.execute(&args, COMMAND_TIMEOUT_MS)?.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_parse_with_unstarted_members_and_big_ids() {
        let text = r#"{"header":{"cluster_id":5255523156195162639},"members":[
            {"ID":7343497533873324030,"peerURLs":["http://127.0.20.110:32380"],"isLearner":true},
            {"ID":18119304111459433505,"name":"m1","peerURLs":["http://127.0.20.100:32380"],"clientURLs":["http://127.0.20.100:32379"]}]}"#;
        let members = plan_exec::etcd::parse_member_list(text).expect("parses");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].name, "", "a member never started has no name");
        assert_eq!(members[0].membership(), Membership::Learner);
        assert_eq!(members[1].id, 18119304111459433505, "ids past 2^53 stay exact");
        assert_eq!(members[1].hex_id(), "fb74b316d4d07c21");
    }

    #[test]
    fn flags_carry_the_fast_timings_and_force_new_cluster_only_when_asked() {
        let flags = EtcdFlags {
            name: "k8s-master".to_string(),
            data_dir: PathBuf::from("/tmp/x"),
            client_url: "http://127.0.20.100:2379".to_string(),
            peer_url: "http://127.0.20.100:2380".to_string(),
            initial_cluster: "k8s-master=http://127.0.20.100:2380".to_string(),
            cluster_state: ClusterState::New,
            force_new_cluster: false,
        };
        let args = flags.args();
        assert!(args.contains(&format!("--election-timeout={ELECTION_TIMEOUT_MS}")));
        assert!(args.contains(&format!("--heartbeat-interval={HEARTBEAT_MS}")));
        assert!(args.contains(&"--initial-cluster-state=new".to_string()));
        assert!(!args.iter().any(|a| a == "--force-new-cluster"));
        assert!(EtcdFlags { force_new_cluster: true, ..flags }.args().iter().any(|a| a == "--force-new-cluster"));
    }

    #[test]
    fn snapshot_status_parses_etcdctl_json() {
        let status: SnapshotStatus =
            serde_json::from_str(r#"{"hash":3525745405,"revision":14,"totalKey":13,"totalSize":20480}"#).expect("parses");
        assert_eq!(status, SnapshotStatus { hash: 3525745405, revision: 14, total_keys: 13, total_size: 20480 });
    }

    #[test]
    fn a_missing_snapshot_file_is_a_refusal_not_an_error() {
        if !Path::new(ETCDCTL_BIN).is_file() {
            crate::host::skip_test(&format!("{ETCDCTL_BIN} missing: install etcd-client"));
            return;
        }
        let ctl = Etcdctl::new(vec![]);
        let answer = ctl.snapshot_status(Path::new("/nonexistent/plan-lab/snapshot.db")).expect("etcdctl runs");
        assert!(answer.is_err(), "{answer:?}");
    }

    #[test]
    fn no_endpoint_is_a_refusal_not_an_error() {
        let ctl = Etcdctl::new(vec![]);
        assert!(matches!(ctl.member_list(), Ok(Err(Refused(_)))));
    }
}
