//! A running lab: its state directory, its real processes, and the etcd operations a rehearsal
//! performs on them.
//!
//! The state (pids, layout) lives in `lab.json` in the state directory, so `plan lab up`, `status`
//! and `down` work across invocations. A lab that a test or a rehearsal owns kills its processes
//! when dropped (also on panic), and the kernel kills them if the owning thread dies first.

use crate::address::{LabHost, LabLayout};
use crate::error::LabError;
use crate::etcd::{ClusterState, EtcdFlags, EtcdMember, Etcdctl, Membership, ETCDCTL_BIN, ETCD_BIN, PROBE_TIMEOUT_MS};
use crate::haproxy::{self, Backend, HAPROXY_BIN};
use crate::process::{self, Lifetime, Signal};
use plan_model::topology::{NodeIx, Topology};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

mod backup;
mod membership;

pub use backup::{twin_data_note, Backup, CommittedData, AFTER_BACKUP_KEYS, AFTER_BACKUP_PREFIX, BACKUP_FILE, BEFORE_RESTORE_DIR};

/// The state file in a lab's directory.
pub const STATE_FILE: &str = "lab.json";
/// Bound on a member becoming writable after `lab up` or a forced new cluster.
pub const READY_TIMEOUT_MS: u64 = 10_000;
/// Bound on a joining member answering (a voter) or finding its leader (a learner).
pub const JOIN_TIMEOUT_MS: u64 = 5_000;
/// Bound on a learner becoming promotable (in sync with the leader).
pub const PROMOTE_TIMEOUT_MS: u64 = 5_000;
/// Bound on a process exiting after a signal.
pub const STOP_TIMEOUT_MS: u64 = 5_000;
/// Bound on a removed member's etcd exiting on its own before the lab kills it.
pub const REMOVED_EXIT_MS: u64 = 1_000;
/// Bound on retrying a member add that etcd refuses as "unhealthy cluster" (etcd's
/// HealthInterval is 5 s).
pub const ADD_TIMEOUT_MS: u64 = 8_000;
/// etcd's refusal while a member is down or connected for less than 5 s.
const UNHEALTHY: &str = "unhealthy cluster";
/// Pause between retries inside a bounded wait.
pub const RETRY_MS: u64 = 100;
/// Where the lab's committed data lives.
pub const SEED_PREFIX: &str = "/plan-lab/data/";
/// How long quorum probes keep writing before they conclude "no quorum" (a leader election
/// with these timings takes well under a second).
pub const QUORUM_SETTLE_MS: u64 = 2_000;
/// The key quorum probes write.
pub const PROBE_KEY: &str = "/plan-lab/probe";

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub state_dir: PathBuf,
    /// Added to every port (2379, 2380, the VIP port); distinct offsets let labs run side by side.
    pub offset: u16,
    pub haproxy: bool,
    pub lifetime: Lifetime,
    /// Keys written before anything else: the data that must survive every recovery.
    pub seed_keys: u32,
}

/// What `lab.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub scenario: String,
    pub layout: LabLayout,
    /// Host name -> pid of its etcd.
    pub etcd: BTreeMap<String, u32>,
    /// Hosts whose etcd is frozen (SIGSTOP).
    #[serde(default)]
    pub frozen: BTreeSet<String>,
    /// Hosts whose member is a learner (learners serve no writes, so clients skip them).
    #[serde(default)]
    pub learners: BTreeSet<String>,
    pub haproxy: Option<u32>,
    pub seed_keys: u32,
    /// The newest etcd backup: a real `etcdctl snapshot save` taken after the seed keys (absent
    /// in the state of a lab from before backups).
    #[serde(default)]
    pub backup: Option<Backup>,
}

/// A lab: real processes on loopback, and what the lab knows about them.
pub struct Lab {
    dir: PathBuf,
    state: LabState,
    children: Vec<Child>,
    lifetime: Lifetime,
    etcd_bin: PathBuf,
    etcdctl_bin: PathBuf,
    /// A private lab's directory, removed after its processes are gone.
    scratch: Option<tempfile::TempDir>,
}

/// One host as `plan lab status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub loopback: String,
    pub client_url: String,
    /// `running (pid N)`, `frozen (pid N)`, `stopped`.
    pub etcd: String,
    /// `voter`, `learner`, or absent when not a member.
    pub membership: Option<Membership>,
}

/// The lab at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub scenario: String,
    pub dir: String,
    pub hosts: Vec<HostStatus>,
    /// The member list, or why nobody answered.
    pub members: Result<Vec<EtcdMember>, String>,
    pub quorum: QuorumProbe,
    pub vip: String,
    pub backends: Option<Result<Vec<Backend>, String>>,
    /// `GET /health` through the VIP answered healthy (`None` without HAProxy).
    pub vip_healthy: Option<Result<bool, String>>,
}

/// Writes through the running voters: one commits only with quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumProbe {
    pub holds: bool,
    /// Until the verdict: the write that committed, or the settle bound.
    pub elapsed_ms: u64,
    /// When the first write was refused, if one was.
    pub first_refusal_ms: Option<u64>,
    /// etcd's answer when the write failed.
    pub refused: Option<String>,
}

fn check_binary(path: &str, binary: &'static str, package: &'static str) -> Result<PathBuf, LabError> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::BinaryMissing { binary, path, package })
    }
}

/// Whether the lab's binaries are installed (etcd and etcdctl; HAProxy when `haproxy`).
///
/// # Errors
/// [`LabError::BinaryMissing`] naming the Debian package to install.
pub fn check_binaries(haproxy: bool) -> Result<(), LabError> {
    check_binary(ETCD_BIN, "etcd", "etcd-server")?;
    check_binary(ETCDCTL_BIN, "etcdctl", "etcd-client")?;
    if haproxy {
        check_binary(HAPROXY_BIN, "haproxy", "haproxy")?;
    }
    Ok(())
}

/// A scratch directory on tmpfs when there is one: etcd fsyncs every commit.
pub fn scratch_dir() -> Result<tempfile::TempDir, LabError> {
    let shm = Path::new("/dev/shm");
    let made =
        if shm.is_dir() { tempfile::Builder::new().prefix("plan-lab-").tempdir_in(shm) } else { Err(std::io::Error::other("no /dev/shm")) };
    match made {
        Ok(dir) => Ok(dir),
        Err(_) => tempfile::Builder::new().prefix("plan-lab-").tempdir().map_err(|e| LabError::io("create a lab directory", e)),
    }
}

impl Lab {
    /// Starts the scenario's "before" control plane: the existing master's etcd as a one-member
    /// cluster holding `seed_keys` keys, the newest backup (a real snapshot of them, the
    /// scenario's nightly one) and [`AFTER_BACKUP_KEYS`] keys written after it, and HAProxy at the
    /// VIP when asked.
    ///
    /// # Errors
    /// A binary is missing, a lab is already up in the directory, an address clashes, or etcd
    /// does not become writable within [`READY_TIMEOUT_MS`].
    pub fn up(t: &Topology, options: &LabOptions) -> Result<Lab, LabError> {
        check_binaries(options.haproxy)?;
        std::fs::create_dir_all(&options.state_dir).map_err(|e| LabError::io(format!("create {}", options.state_dir.display()), e))?;
        let dir = options.state_dir.canonicalize().map_err(|e| LabError::io(format!("resolve {}", options.state_dir.display()), e))?;
        let state_path = dir.join(STATE_FILE);
        if state_path.exists() {
            let stale = Lab::open(&dir)?;
            let pids = stale.running_pids();
            if !pids.is_empty() {
                return Err(LabError::AlreadyUp { dir, pids });
            }
            let _ = std::fs::remove_file(&state_path);
        }
        let layout = LabLayout::new(t, options.offset)?;
        layout.check_ports_free()?;
        let mut lab = Lab {
            dir,
            state: LabState {
                scenario: t.scenario.name.clone(),
                layout,
                etcd: BTreeMap::new(),
                frozen: BTreeSet::new(),
                learners: BTreeSet::new(),
                haproxy: None,
                seed_keys: options.seed_keys,
                backup: None,
            },
            children: Vec::new(),
            lifetime: options.lifetime,
            etcd_bin: PathBuf::from(ETCD_BIN),
            etcdctl_bin: PathBuf::from(ETCDCTL_BIN),
            scratch: None,
        };
        // A lab that fails to come up stops what it started, detached or not: nothing is left
        // running behind an error.
        if let Err(e) = lab.start(t, options) {
            lab.stop_all();
            let _ = std::fs::remove_file(lab.dir.join(STATE_FILE));
            return Err(e);
        }
        lab.save()?;
        Ok(lab)
    }

    /// The "before" control plane on a lab value made by [`Lab::up`]: the existing master's etcd
    /// with the seed keys and the backup, then HAProxy.
    fn start(&mut self, t: &Topology, options: &LabOptions) -> Result<(), LabError> {
        let first = self.host(t.existing_master())?.clone();
        self.wipe(&first)?;
        let initial = format!("{}={}", first.name, first.peer_url());
        self.spawn_etcd(&first, initial, ClusterState::New, false)?;
        self.wait_writable(&first)?;
        let ctl = self.ctl(None);
        for i in 0..options.seed_keys {
            if let Err(refused) = ctl.put(&format!("{SEED_PREFIX}{i:04}"), "committed before the migration", PROBE_TIMEOUT_MS * 3)? {
                return Err(LabError::Command { command: "etcdctl put (seed data)".to_string(), message: refused.0 });
            }
        }
        self.take_backup(&first)?;
        if options.haproxy {
            self.start_haproxy()?;
        }
        Ok(())
    }

    /// A lab of its own in a scratch directory, owned by the caller and gone when dropped.
    ///
    /// # Errors
    /// As [`Lab::up`].
    pub fn private(t: &Topology, offset: u16, haproxy: bool, seed_keys: u32) -> Result<Lab, LabError> {
        let scratch = scratch_dir()?;
        let options = LabOptions { state_dir: scratch.path().to_path_buf(), offset, haproxy, lifetime: Lifetime::Owned, seed_keys };
        let mut lab = Lab::up(t, &options)?;
        lab.scratch = Some(scratch);
        Ok(lab)
    }

    /// The lab whose state is in `dir` (started by an earlier `plan lab up`).
    ///
    /// # Errors
    /// [`LabError::NotUp`] without a state file; [`LabError::StateFile`] when it is unreadable.
    pub fn open(dir: &Path) -> Result<Lab, LabError> {
        let path = dir.join(STATE_FILE);
        if !path.is_file() {
            return Err(LabError::NotUp { dir: dir.to_path_buf() });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::io(format!("read {}", path.display()), e))?;
        let state: LabState = serde_json::from_str(&text).map_err(|e| LabError::StateFile { path: path.clone(), reason: e.to_string() })?;
        let dir = dir.canonicalize().map_err(|e| LabError::io(format!("resolve {}", dir.display()), e))?;
        Ok(Lab {
            dir,
            state,
            children: Vec::new(),
            lifetime: Lifetime::Detached,
            etcd_bin: PathBuf::from(ETCD_BIN),
            etcdctl_bin: PathBuf::from(ETCDCTL_BIN),
            scratch: None,
        })
    }

    /// Keeps the processes running after this value is dropped (`plan lab up`, `--keep`).
    pub fn detach(mut self) -> PathBuf {
        self.lifetime = Lifetime::Detached;
        let dir = self.dir.clone();
        if let Some(scratch) = self.scratch.take() {
            // The directory must outlive us: it holds the data dirs of running members.
            let _ = scratch.keep();
        }
        dir
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> &LabState {
        &self.state
    }

    pub fn layout(&self) -> &LabLayout {
        &self.state.layout
    }

    fn marker(&self) -> String {
        self.dir.display().to_string()
    }

    fn save(&self) -> Result<(), LabError> {
        let path = self.dir.join(STATE_FILE);
        let text =
            serde_json::to_string_pretty(&self.state).map_err(|e| LabError::StateFile { path: path.clone(), reason: e.to_string() })?;
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| LabError::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(format!("write {}", path.display()), e))
    }

    /// The lab host of `node`.
    ///
    /// # Errors
    /// [`LabError::NotAMaster`] for a node the lab does not run (a worker).
    pub fn host(&self, node: NodeIx) -> Result<&LabHost, LabError> {
        self.state.layout.host(node).ok_or_else(|| LabError::NotAMaster { node: format!("node #{}", node.0) })
    }

    fn data_dir(&self, host: &LabHost) -> PathBuf {
        self.dir.join(&host.name).join("etcd")
    }

    fn log_path(&self, host: &LabHost) -> PathBuf {
        self.dir.join(&host.name).join("etcd.log")
    }

    /// The pid of `host`'s etcd when it runs (frozen counts as running).
    pub fn etcd_pid(&self, host: &LabHost) -> Option<u32> {
        let pid = *self.state.etcd.get(&host.name)?;
        (process::is_alive(pid) && self.owns(pid)).then_some(pid)
    }

    /// Whether `pid` is this lab's: spawned by this value (between fork and exec its command
    /// line is still its parent's, so it is not read), or naming the lab's directory (a pid
    /// read back from the state file may have been reused since).
    fn owns(&self, pid: u32) -> bool {
        self.children.iter().any(|c| c.id() == pid) || process::belongs_to(pid, &self.marker())
    }

    fn running_pids(&self) -> Vec<u32> {
        let marker = self.marker();
        self.state
            .etcd
            .values()
            .chain(self.state.haproxy.iter())
            .copied()
            .filter(|p| process::is_alive(*p) && process::belongs_to(*p, &marker))
            .collect()
    }

    /// etcdctl against the running, unfrozen voters (all but `except`).
    pub fn ctl(&self, except: Option<&str>) -> Etcdctl {
        let endpoints = self
            .state
            .layout
            .hosts
            .iter()
            .filter(|h| Some(h.name.as_str()) != except)
            .filter(|h| !self.state.frozen.contains(&h.name) && !self.state.learners.contains(&h.name))
            .filter(|h| self.etcd_pid(h).is_some())
            .map(|h| h.client_url())
            .collect();
        Etcdctl::new(&self.etcdctl_bin, endpoints)
    }

    fn ctl_of(&self, host: &LabHost) -> Etcdctl {
        Etcdctl::new(&self.etcdctl_bin, vec![host.client_url()])
    }

    fn spawn_etcd(
        &mut self,
        host: &LabHost,
        initial_cluster: String,
        cluster_state: ClusterState,
        force_new_cluster: bool,
    ) -> Result<u32, LabError> {
        let data_dir = self.data_dir(host);
        let parent = data_dir.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| LabError::io(format!("create {}", parent.display()), e))?;
        let flags = EtcdFlags {
            name: host.name.clone(),
            data_dir,
            client_url: host.client_url(),
            peer_url: host.peer_url(),
            initial_cluster,
            cluster_state,
            force_new_cluster,
        };
        let child = process::spawn(&self.etcd_bin, &flags.args(), &self.log_path(host), self.lifetime)?;
        let pid = child.id();
        self.children.push(child);
        self.state.etcd.insert(host.name.clone(), pid);
        self.state.frozen.remove(&host.name);
        self.save()?;
        Ok(pid)
    }

    fn exited(&self, host: &LabHost) -> LabError {
        LabError::Exited { process: format!("etcd of {}", host.name), log_tail: process::log_tail(&self.log_path(host), 5) }
    }

    /// Waits until a write through `host` commits.
    fn wait_writable(&mut self, host: &LabHost) -> Result<(), LabError> {
        let start = Instant::now();
        let ctl = self.ctl_of(host);
        loop {
            if self.etcd_pid(host).is_none() {
                return Err(self.exited(host));
            }
            if ctl.put(PROBE_KEY, "ready", PROBE_TIMEOUT_MS)?.is_ok() {
                return Ok(());
            }
            if start.elapsed() >= Duration::from_millis(READY_TIMEOUT_MS) {
                return Err(LabError::Timeout { what: format!("etcd of {} accepting writes", host.name), timeout_ms: READY_TIMEOUT_MS });
            }
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        }
    }

    /// Sends `signal` to `host`'s etcd; returns the pid it went to, if one ran.
    pub fn signal_etcd(&mut self, host: &LabHost, signal: Signal) -> Result<Option<u32>, LabError> {
        let Some(pid) = self.etcd_pid(host) else { return Ok(None) };
        process::signal(pid, signal);
        match signal {
            Signal::Kill | Signal::Term => {
                let child = self.children.iter_mut().find(|c| c.id() == pid);
                if !process::wait_gone(pid, child, Duration::from_millis(STOP_TIMEOUT_MS)) {
                    process::signal(pid, Signal::Kill);
                    let child = self.children.iter_mut().find(|c| c.id() == pid);
                    process::wait_gone(pid, child, Duration::from_millis(STOP_TIMEOUT_MS));
                }
                self.children.retain(|c| c.id() != pid);
                self.state.etcd.remove(&host.name);
                self.state.frozen.remove(&host.name);
            }
            Signal::Stop => {
                self.state.frozen.insert(host.name.clone());
            }
            Signal::Cont => {
                self.state.frozen.remove(&host.name);
            }
        }
        self.save()?;
        Ok(Some(pid))
    }

    /// Removes `host`'s etcd data directory (what `kubeadm reset` and a destroyed VM leave).
    pub fn wipe(&mut self, host: &LabHost) -> Result<(), LabError> {
        let dir = self.data_dir(host);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| LabError::io(format!("remove {}", dir.display()), e))?;
        }
        self.state.learners.remove(&host.name);
        self.save()
    }

    fn haproxy_socket(&self) -> PathBuf {
        self.dir.join("haproxy.sock")
    }

    /// Starts HAProxy at the VIP with every master in the pool.
    fn start_haproxy(&mut self) -> Result<(), LabError> {
        let pool: Vec<&LabHost> = self.state.layout.hosts.iter().collect();
        let text = haproxy::config(&self.state.layout, &pool, &self.haproxy_socket());
        let cfg = self.dir.join("haproxy.cfg");
        std::fs::write(&cfg, text).map_err(|e| LabError::io(format!("write {}", cfg.display()), e))?;
        let args = vec!["-db".to_string(), "-f".to_string(), cfg.display().to_string()];
        let child = process::spawn(Path::new(HAPROXY_BIN), &args, &self.dir.join("haproxy.log"), self.lifetime)?;
        let pid = child.id();
        self.children.push(child);
        self.state.haproxy = Some(pid);
        self.save()?;
        let start = Instant::now();
        while !self.haproxy_socket().exists() {
            if !process::is_alive(pid) {
                return Err(LabError::Exited {
                    process: "haproxy".to_string(),
                    log_tail: process::log_tail(&self.dir.join("haproxy.log"), 5),
                });
            }
            if start.elapsed() >= Duration::from_millis(READY_TIMEOUT_MS) {
                return Err(LabError::Timeout { what: "haproxy's stats socket".to_string(), timeout_ms: READY_TIMEOUT_MS });
            }
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        }
        Ok(())
    }

    /// The VIP pool's backends as HAProxy's health checks see them; `None` without HAProxy.
    pub fn backends(&self) -> Option<Result<Vec<Backend>, LabError>> {
        let pid = self.state.haproxy?;
        if !process::is_alive(pid) {
            return Some(Err(LabError::Exited {
                process: "haproxy".to_string(),
                log_tail: process::log_tail(&self.dir.join("haproxy.log"), 5),
            }));
        }
        Some(haproxy::backends(&self.haproxy_socket()))
    }

    /// Everything `plan lab status` shows.
    pub fn status(&self) -> Result<LabStatus, LabError> {
        let members = self.members()?;
        let hosts = self
            .state
            .layout
            .hosts
            .iter()
            .map(|h| {
                let etcd = match self.etcd_pid(h) {
                    Some(pid) if self.state.frozen.contains(&h.name) => format!("frozen (pid {pid})"),
                    Some(pid) => format!("running (pid {pid})"),
                    None => "stopped".to_string(),
                };
                let membership =
                    members.as_ref().ok().and_then(|ms| ms.iter().find(|m| m.peer_urls.contains(&h.peer_url()))).map(|m| m.membership());
                HostStatus {
                    name: h.name.clone(),
                    address: h.address.to_string(),
                    loopback: h.loopback.to_string(),
                    client_url: h.client_url(),
                    etcd,
                    membership,
                }
            })
            .collect();
        Ok(LabStatus {
            scenario: self.state.scenario.clone(),
            dir: self.dir.display().to_string(),
            hosts,
            members: members.map_err(|r| r.0),
            quorum: self.quorum_probe()?,
            vip: format!("{}:{}", self.state.layout.vip, self.state.layout.vip_port),
            backends: self.backends().map(|b| b.map_err(|e| e.to_string())),
            vip_healthy: self
                .state
                .haproxy
                .map(|_| haproxy::health_through_vip(self.state.layout.vip, self.state.layout.vip_port).map_err(|e| e.to_string())),
        })
    }

    /// Stops every process of the lab (SIGKILL, only pids whose command line names this lab's
    /// directory) and removes the state and data. Returns what was stopped.
    pub fn down(mut self) -> Result<Vec<String>, LabError> {
        let stopped = self.stop_all();
        for host in self.state.layout.hosts.clone() {
            let dir = self.dir.join(&host.name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| LabError::io(format!("remove {}", dir.display()), e))?;
            }
        }
        for file in [STATE_FILE, "haproxy.cfg", "haproxy.log", "haproxy.sock"] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let backups = self.dir.join(backup::BACKUP_DIR);
        if backups.exists() {
            std::fs::remove_dir_all(&backups).map_err(|e| LabError::io(format!("remove {}", backups.display()), e))?;
        }
        Ok(stopped)
    }

    fn stop_all(&mut self) -> Vec<String> {
        let mut stopped = Vec::new();
        let mut targets: Vec<(String, u32)> = self.state.etcd.iter().map(|(h, p)| (format!("etcd of {h}"), *p)).collect();
        targets.extend(self.state.haproxy.map(|p| ("haproxy".to_string(), p)));
        for (what, pid) in targets {
            if process::is_alive(pid) && self.owns(pid) {
                process::signal(pid, Signal::Kill);
                let child = self.children.iter_mut().find(|c| c.id() == pid);
                process::wait_gone(pid, child, Duration::from_millis(STOP_TIMEOUT_MS));
                stopped.push(format!("{what} (pid {pid})"));
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        self.state.etcd.clear();
        self.state.frozen.clear();
        self.state.haproxy = None;
        stopped
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Owned {
            self.stop_all();
            let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        }
    }
}
