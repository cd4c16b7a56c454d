//! Real etcd behind the executor slice: one member per master the twin's starting state runs, the
//! etcd identity of each master that may join, the `kubeadm join --control-plane` shim that does
//! to etcd what kubeadm does, and the rows that set `etcdctl member list` beside the twin.
//!
//! The members the slice starts with run under the lab ([`crate::process`], killed when the
//! [`SliceEtcd`] is dropped). A joining master's member is started by the join shim on that host,
//! inside the host's PID namespace, as the kubelet would start kubeadm's etcd static pod: it ends
//! with the host's sshd ([`crate::host::FixtureHosts::stop`]).

use crate::error::LabError;
use crate::etcd::{ClusterState, EtcdFlags, Etcdctl, Membership, Real, RestoreTarget, ETCD_BIN};
use crate::executor_lab::CLOCK_OFFSET;
use crate::fidelity::{Evidence, FidelityRow, Observed};
use crate::host::{self, FixtureHosts};
use crate::process::{self, Lifetime, POLL_MS};
use plan_exec::etcd::{member_node, EtcdMembership};
use plan_model::cluster::{Cluster, EtcdData};
use plan_model::plan::format_duration;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Bound on a started member answering `member list`.
pub const MEMBER_READY_TIMEOUT_S: u64 = 10;
/// How often the join shim asks etcd again: its `member add` (refused while a member joined less
/// than 5 s ago), its learner's promotion (refused until the learner has caught up with the
/// leader, and by 3.4 until it has been connected for 5 s), its voter's health.
pub const ETCD_RETRY_MS: u64 = 200;
/// `member add` attempts (etcd 3.4 answers "unhealthy cluster" while a member joined less than
/// 5 s ago) before the join shim gives up: 15 s in all.
pub const MEMBER_ADD_ATTEMPTS_MAX: u32 = 75;
/// How long the join shim waits for its member's promotion (or, without learners, its health)
/// before the join fails, as kubeadm does after its `EtcdAPICall` timeout (2 min by default): an
/// in-sync learner is promoted within a few seconds (3.4 after 5 s connected); without quorum
/// no try can succeed, and each takes etcdctl's 2 s, so a count of tries ran past the executor's
/// 60 s command timeout.
pub const ETCD_WAIT_S: u64 = 20;
/// Where a joining master's etcd identity is prepared, in its host directory.
pub(crate) const MEMBER_DIR: &str = "etcd-member";
/// A master's etcd client URL, in its host directory: where the host's `etcdctl` shim points
/// kubeadm's `https://127.0.0.1:2379`.
pub const CLIENT_URL_FILE: &str = "etcd-client-url";
/// Where the rehearsal and the join shim leave fault markers, under the lab's root:
/// `at-<host>-<after>` (the shim strikes there, naming the victim), `struck-<victim>` (the shim
/// asks the lab to crash it), `done-<victim>` (crashed).
pub const STRIKE_DIR: &str = "strike";

/// A key the lab writes before its backup, and one after: a restore keeps the first, loses the second.
pub const WRITTEN_BEFORE_BACKUP: &str = "plan-lab/written-before-the-backup";
pub const WRITTEN_AFTER_BACKUP: &str = "plan-lab/written-after-the-backup";
/// What the join shim did to etcd, in its host directory (no secrets).
const JOIN_LOG: &str = "kubeadm-join.log";

/// What the join shim did to etcd on each of `nodes`, for the lab's actions.
pub fn join_notes(t: &Topology, hosts: &FixtureHosts, nodes: &[NodeIx]) -> Vec<String> {
    let mut notes = Vec::new();
    for &node in nodes {
        let text = std::fs::read_to_string(hosts.host_dir(t.name(node)).join(JOIN_LOG)).unwrap_or_default();
        notes.extend(text.lines().map(|line| format!("kubeadm join on {}: {line}", t.name(node))));
    }
    notes
}

/// A master's etcd URLs on its own loopback address.
#[derive(Debug, Clone)]
struct MemberUrls {
    client: String,
    peer: String,
}

/// A member the lab runs: its process (SIGKILLed when dropped), the flags that restart it (after a
/// reboot), its log.
struct LabMember {
    child: Child,
    flags: EtcdFlags,
    log: PathBuf,
}

impl LabMember {
    fn start(flags: EtcdFlags, log: PathBuf) -> Result<LabMember, LabError> {
        let child = process::spawn(Path::new(ETCD_BIN), &flags.args(), &log, Lifetime::Owned)?;
        Ok(LabMember { child, flags, log })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Killed, then started on `flags` (the flags it restarts with stay its own).
    fn respawn(&mut self, flags: &EtcdFlags) -> Result<(), LabError> {
        self.kill();
        self.child = process::spawn(Path::new(ETCD_BIN), &flags.args(), &self.log, Lifetime::Owned)?;
        Ok(())
    }
}

impl Drop for LabMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real etcd of a slice.
pub struct SliceEtcd {
    /// The members the lab runs.
    children: BTreeMap<NodeIx, LabMember>,
    urls: BTreeMap<NodeIx, MemberUrls>,
    /// The client URLs of the members running when the slice starts: where `etcdctl` asks.
    endpoints: Vec<String>,
}

impl SliceEtcd {
    /// Starts a member for every started voter of `start` (a new cluster of them; not waited for,
    /// see [`Self::wait_ready`]), and prepares
    /// the etcd identity (name, URLs, data directory, flags) of every other master whose host is
    /// up, for the join shim. Writes `<root>/etcd-endpoints` (every master's client URL, what
    /// kubeadm finds on the etcd Pods' annotations), `<root>/kubeadm-etcd-endpoints` (those synced
    /// with the membership, as kubeadm's etcd client does) and the join shim
    /// `<root>/kubeadm-join-control-plane`.
    ///
    /// # Caveats
    /// A starting state with learners or members never started is not rehearsed.
    ///
    /// # Errors
    /// [`LabError::NotRehearsable`] for such a state, a port or file the lab cannot get, etcd that
    /// cannot be started.
    pub fn start(t: &Topology, hosts: &FixtureHosts, start: &Cluster) -> Result<SliceEtcd, LabError> {
        let running = start.voters.and(start.etcd_started);
        if !start.learners.is_empty() || start.members() != running {
            return Err(LabError::NotRehearsable {
                what: "the etcd membership the slice starts from".to_string(),
                why: "the lab starts a slice from started voters only".to_string(),
            });
        }
        // Every master has a host on the lab from the start: a new one joins once its VM exists.
        let masters = t.target_masters();
        let mut urls = BTreeMap::new();
        for node in masters.iter() {
            // etcd's own ports on the master's own address: every lab has a loopback range of its
            // own. A port picked free by the kernel came from the ephemeral range, where a lab
            // process's outgoing connection from that address could take it before etcd bound it
            // (seen once with six test threads).
            let address = t.node(node).address;
            let (client, peer) = (crate::address::ETCD_CLIENT_PORT, crate::address::ETCD_PEER_PORT);
            urls.insert(node, MemberUrls { client: format!("http://{address}:{client}"), peer: format!("http://{address}:{peer}") });
        }
        let url = |n: NodeIx| &urls[&n];
        let initial_cluster = running.iter().map(|n| format!("{}={}", t.name(n), url(n).peer)).collect::<Vec<_>>().join(",");
        let endpoints: Vec<String> = running.iter().map(|n| url(n).client.clone()).collect();
        let flags = |node: NodeIx, data_dir: PathBuf, initial_cluster: String, cluster_state| EtcdFlags {
            name: t.name(node).to_string(),
            data_dir,
            client_url: url(node).client.clone(),
            peer_url: url(node).peer.clone(),
            initial_cluster,
            cluster_state,
            force_new_cluster: false,
        };
        let mut etcd = SliceEtcd { children: BTreeMap::new(), urls: urls.clone(), endpoints };
        for (&node, member) in &urls {
            host::write_file(&hosts.host_dir(t.name(node)).join(CLIENT_URL_FILE), &format!("{}\n", member.client))?;
        }
        for node in running.iter() {
            let dir = hosts.host_dir(t.name(node));
            let flags = flags(node, dir.join("etcd-data"), initial_cluster.clone(), ClusterState::New);
            etcd.children.insert(node, LabMember::start(flags, dir.join("etcd.log"))?);
        }
        for node in masters.minus(running).iter() {
            let dir = hosts.host_dir(t.name(node)).join(MEMBER_DIR);
            // The initial cluster comes from `member add`'s answer, as kubeadm builds it.
            let flags = flags(node, dir.join("data"), String::new(), ClusterState::Existing);
            let args: Vec<String> = flags.args().into_iter().filter(|a| !a.starts_with("--initial-cluster")).collect();
            host::write_file(&dir.join("args"), &(args.join("\n") + "\n"))?;
            host::write_file(&dir.join("peer-url"), &format!("{}\n", url(node).peer))?;
        }
        // What the etcd Pods' annotations give kubeadm: every master's client URL once it runs
        // etcd, the running members first; the shims sync it with the membership, as kubeadm does.
        let discovery: Vec<&str> = running.iter().chain(masters.minus(running).iter()).map(|n| url(n).client.as_str()).collect();
        host::write_file(&hosts.root().join("etcd-endpoints"), &(discovery.join(",") + "\n"))?;
        host::write_executable(
            &hosts.root().join(KUBEADM_ETCD_ENDPOINTS),
            &ETCD_ENDPOINTS_SHIM.replace("@ROOT@", &hosts.root().display().to_string()),
        )?;
        let ttl = &t.scenario.kubeadm;
        let modes = JoinModes { learner: t.learner_mode, kubelet_local: t.kubelet_local_mode };
        write_join_shim(hosts.root(), modes, u64::from(ttl.token_ttl_h) * 3600, u64::from(ttl.certs_ttl_min) * 60)?;
        Ok(etcd)
    }

    /// Waits until every member [`Self::start`] started is listed by name (its cluster elected a
    /// leader and all joined): the lab starts its hosts meanwhile.
    ///
    /// # Errors
    /// [`LabError::Timeout`] after [`MEMBER_READY_TIMEOUT_S`], with the first member's log.
    pub fn wait_ready(&self, t: &Topology, hosts: &FixtureHosts) -> Result<(), LabError> {
        let running = self.children.keys().fold(NodeSet::EMPTY, |set, &node| set.with(node));
        let deadline = Instant::now() + Duration::from_secs(MEMBER_READY_TIMEOUT_S);
        let ctl = self.etcdctl();
        loop {
            if let Ok(members) = ctl.member_list()? {
                if members.iter().filter(|m| !m.name.is_empty()).count() == running.len() as usize {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let first = running.iter().next().map(|n| t.name(n).to_string()).unwrap_or_default();
                return Err(LabError::Timeout {
                    what: format!("etcd of {first} answering ({})", process::log_tail(&hosts.host_dir(&first).join("etcd.log"), 3)),
                    timeout_ms: MEMBER_READY_TIMEOUT_S * 1000,
                });
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// The client address of `node`'s member (running or prepared), for its apiserver's `/readyz`.
    pub fn client_address(&self, node: NodeIx) -> Option<std::net::SocketAddr> {
        self.urls.get(&node).and_then(|u| u.client.strip_prefix("http://")).and_then(|a| a.parse().ok())
    }

    /// Every master's client URL: `etcdctl` finds whichever members answer.
    pub fn all_client_urls(&self) -> Vec<String> {
        self.urls.values().map(|u| u.client.clone()).collect()
    }

    /// SIGKILLs the member the lab runs for `node` (a reboot): `false` when the lab runs none.
    pub fn kill(&mut self, node: NodeIx) -> bool {
        self.children.get_mut(&node).map(LabMember::kill).is_some()
    }

    /// Starts the member of `node` again on its data directory, as the kubelet restarts etcd's
    /// static pod after a reboot. The process dies with the calling thread.
    ///
    /// # Errors
    /// etcd cannot be started.
    pub fn restart(&mut self, node: NodeIx) -> Result<bool, LabError> {
        let Some(member) = self.children.get_mut(&node) else { return Ok(false) };
        member.respawn(&member.flags.existing())?;
        Ok(true)
    }

    /// Restarts `node`'s member with `--force-new-cluster` on its data (the quorum recovery): it
    /// comes back as a cluster of one. `false` when the lab runs no member for `node` (one a join
    /// started is the host's).
    ///
    /// # Errors
    /// etcd cannot be started, or does not answer as a cluster of one within [`MEMBER_READY_TIMEOUT_S`].
    pub fn force_new_cluster(&mut self, node: NodeIx) -> Result<bool, LabError> {
        let Some(member) = self.children.get_mut(&node) else { return Ok(false) };
        member.respawn(&EtcdFlags { force_new_cluster: true, ..member.flags.existing() })?;
        wait_cluster_of_one(&member.flags, "plan-lab/forced")?;
        Ok(true)
    }

    /// The worst case's `etcdctl snapshot restore` of `backup` for `node`'s member: the member
    /// stops, its data directory is moved aside (`etcd-data.before-restore`), the snapshot is
    /// restored into a new one as a cluster of `node` alone (a new cluster id: the old members
    /// cannot rejoin it), and etcd starts from it. `Ok(Err(why))` where it cannot be done: the lab
    /// runs no member for `node`, or the backup is unusable (checked before the member is touched),
    /// or etcdctl refuses the restore (the member then starts again on its own data).
    ///
    /// # Errors
    /// etcd or etcdctl cannot run, or the restored member does not take writes within
    /// [`MEMBER_READY_TIMEOUT_S`].
    pub fn restore_snapshot(&mut self, node: NodeIx, backup: &Path) -> Result<Result<(), String>, LabError> {
        let offline = Etcdctl::new(Vec::new());
        let Some(member) = self.children.get_mut(&node) else {
            return Ok(Err("the lab runs no member there".to_string()));
        };
        if let Err(refused) = offline.snapshot_status(backup)? {
            return Ok(Err(format!("the backup {} is unusable: {refused}", backup.display())));
        }
        member.kill();
        let flags = member.flags.clone();
        let aside = flags.data_dir.with_extension("before-restore");
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| LabError::io(format!("remove {}", aside.display()), e))?;
        }
        if flags.data_dir.exists() {
            std::fs::rename(&flags.data_dir, &aside).map_err(|e| LabError::io(format!("move {} aside", flags.data_dir.display()), e))?;
        }
        let target = RestoreTarget {
            name: flags.name.clone(),
            peer_url: flags.peer_url.clone(),
            data_dir: flags.data_dir.clone(),
            cluster_token: format!("plan-lab-restored-{}", flags.name),
        };
        if let Err(refused) = offline.snapshot_restore(backup, &target)? {
            // The member goes back to its own data, as it was before the attempt.
            let _ = std::fs::remove_dir_all(&flags.data_dir);
            std::fs::rename(&aside, &flags.data_dir).map_err(|e| LabError::io(format!("move {} back", aside.display()), e))?;
            member.respawn(&flags.existing())?;
            return Ok(Err(format!("etcdctl snapshot restore: {refused}")));
        }
        let restored = EtcdFlags {
            initial_cluster: format!("{}={}", flags.name, flags.peer_url),
            cluster_state: ClusterState::New,
            force_new_cluster: false,
            ..flags
        };
        member.respawn(&restored)?;
        member.flags = restored;
        wait_cluster_of_one(&member.flags, "plan-lab/restored")?;
        Ok(Ok(()))
    }

    /// The lab's backup, as the twin's starting state has one: a key written before it, a real
    /// `etcdctl snapshot save` to `file`, then a key written after it. A restore keeps the first
    /// and loses the second ([`SliceEtcd::rows`] reads both).
    ///
    /// # Errors
    /// etcdctl cannot run, or etcd refuses a write or the snapshot.
    pub fn take_backup(&self, file: &Path) -> Result<(), LabError> {
        let ctl = self.etcdctl();
        let refused = |command: &str, why: crate::etcd::Refused| LabError::Command { command: command.to_string(), message: why.0 };
        ctl.put(WRITTEN_BEFORE_BACKUP, "1", 2000)?.map_err(|why| refused("etcdctl put", why))?;
        // etcdctl saves a snapshot from one member: the first the lab runs (the existing master's).
        let one = Etcdctl::new(self.endpoints.iter().take(1).cloned().collect());
        one.snapshot_save(file)?.map_err(|why| refused("etcdctl snapshot save", why))?;
        ctl.put(WRITTEN_AFTER_BACKUP, "1", 2000)?.map_err(|why| refused("etcdctl put", why))
    }

    /// Sends `signal` to the member the lab runs for `node` (SIGSTOP freezes it, SIGCONT thaws
    /// it): `false` when the lab runs none (a member a join started is the host's).
    pub fn signal(&self, node: NodeIx, signal: process::Signal) -> bool {
        self.children.get(&node).is_some_and(|member| process::signal(member.child.id(), signal))
    }

    /// `etcdctl` against every master's client URL: whichever members answer.
    pub fn etcdctl_all(&self) -> Etcdctl {
        Etcdctl::new(self.all_client_urls())
    }

    /// `etcdctl member remove` of `node`'s member, for real: etcd's answer (`Err(why)` when it
    /// refuses: no quorum, or no member list), or `None` when the member list has no member of
    /// `node` to remove.
    ///
    /// # Errors
    /// etcdctl cannot run.
    pub fn member_remove(&self, t: &Topology, node: NodeIx) -> Result<Option<Result<(), String>>, LabError> {
        let ctl = self.etcdctl_all();
        let members = match ctl.member_list()? {
            Ok(members) => members,
            Err(refused) => return Ok(Some(Err(format!("member list: {refused}")))),
        };
        let Some(member) = members.iter().find(|m| member_node(t, m) == Some(node)) else { return Ok(None) };
        Ok(Some(ctl.member_remove(member)?.map_err(|refused| refused.to_string())))
    }

    /// Whether a write commits within `timeout_ms` through any member: quorum, as a client that
    /// tries each endpoint and tries again sees it (kube-apiserver's etcd client retries). Each
    /// member is asked on its own, all at once: one `etcdctl` given every endpoint may send its
    /// write to a frozen member whose kernel still accepts the connection; and a write a
    /// follower forwarded to a leader frozen right then is lost, and fails at its deadline
    /// while the two voters left elect a leader and commit the next one (a partition's
    /// rehearsal said "no quorum" both ways under load).
    ///
    /// # Errors
    /// etcdctl cannot run.
    pub fn quorum(&self, timeout_ms: u64) -> Result<Result<(), String>, LabError> {
        let urls = self.all_client_urls();
        if urls.is_empty() {
            return Ok(Err("no etcd member is running to ask".to_string()));
        }
        // Once one member committed the write, the others stop trying.
        let committed = std::sync::atomic::AtomicBool::new(false);
        let answers: Vec<Result<Real<()>, LabError>> = std::thread::scope(|scope| {
            let asks: Vec<_> = urls
                .iter()
                .map(|url| {
                    let committed = &committed;
                    scope.spawn(move || write_retried(&Etcdctl::new(vec![url.clone()]), timeout_ms, committed))
                })
                .collect();
            asks.into_iter()
                .map(|ask| {
                    ask.join()
                        .unwrap_or_else(|_| Err(LabError::Command { command: "etcdctl put".to_string(), message: "panicked".to_string() }))
                })
                .collect()
        });
        // A write that committed through any member is quorum, whatever the others said.
        if answers.iter().any(|a| matches!(a, Ok(Ok(())))) {
            return Ok(Ok(()));
        }
        let mut refusals = Vec::new();
        for (url, answer) in urls.iter().zip(answers) {
            if let Err(refused) = answer? {
                refusals.push(format!("{url}: {refused}"));
            }
        }
        Ok(Err(refusals.join("; ")))
    }

    /// `etcdctl` against the members the slice started with.
    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl::new(self.endpoints.clone())
    }

    /// Voters, learners and started members after the slice: the twin's final state beside real
    /// `etcdctl member list`.
    ///
    /// # Errors
    /// etcdctl cannot run or prints unreadable JSON (a refusal is a row, not an error).
    pub fn rows(&self, t: &Topology, twin: &Cluster) -> Result<Vec<FidelityRow>, LabError> {
        // Every master's URL: the members the lab started with may be gone (a crash, a recovery).
        let members = self.etcdctl_all().member_list_linearizable()?;
        let observations =
            ["etcd voters (etcdctl member list)", "etcd learners (etcdctl member list)", "etcd members started (etcdctl member list)"];
        // No member up and started in the twin, or no quorum for etcd 3.5's linearizable list:
        // `etcdctl member list` has no one to answer it.
        let nothing_up = no_member_up(twin);
        let no_quorum = !plan_model::observe::quorum(twin).holds();
        let twin_says = [twin.voters, twin.learners, twin.members().and(twin.etcd_started)].map(|set| {
            if nothing_up {
                Observed::NothingUp("no member is up to answer".to_string())
            } else if no_quorum {
                Observed::NothingUp("no quorum to answer a linearizable member list".to_string())
            } else {
                Observed::nodes(set)
            }
        });
        let lab_says: [Observed; 3] = match &members {
            Ok(members) => {
                let m = EtcdMembership::of(t, members);
                // A member of no inventory node: in its role's row, by its id, where it disagrees.
                let strangers =
                    |role| members.iter().filter(|x| member_node(t, x).is_none() && x.membership() == role).map(|x| x.hex_id()).collect();
                [
                    Observed::Nodes { known: m.voters, unknown: strangers(Membership::Voter) },
                    Observed::Nodes { known: m.learners, unknown: strangers(Membership::Learner) },
                    Observed::nodes(m.started),
                ]
            }
            Err(refused) => std::array::from_fn(|_| Observed::NoAnswer(format!("no answer: {refused}"))),
        };
        let mut rows: Vec<FidelityRow> = observations
            .into_iter()
            .zip(twin_says)
            .zip(lab_says)
            .map(|((observation, twin), lab)| FidelityRow::new(t, "end", observation, twin, lab, Evidence::Real))
            .collect();
        rows.extend(self.data_rows(t, twin)?);
        Ok(rows)
    }

    /// The writes the lab made around its backup, read back: the twin keeps every write from
    /// before the backup in every state it has, and the writes after it unless etcd was restored
    /// from the backup.
    fn data_rows(&self, t: &Topology, twin: &Cluster) -> Result<[FidelityRow; 2], LabError> {
        // Every member that answers is asked on its own (a serializable read answers from its
        // own store): after a restore, one of the old cluster still running would hold the writes
        // the restore lost, and members that differ are no answer at all.
        // All at once: a member that is down takes etcdctl's whole timeout to say nothing.
        let read = |key: &str| -> Result<Observed, LabError> {
            let answers =
                crate::at_once(&self.urls, |(node, member)| (*node, Etcdctl::new(vec![member.client.clone()]).count_serializable(key)));
            let mut held: BTreeMap<bool, Vec<String>> = BTreeMap::new();
            for (node, answer) in answers {
                if let Ok(n) = answer? {
                    held.entry(n > 0).or_default().push(t.name(node).to_string());
                }
            }
            Ok(match (held.get(&true), held.get(&false)) {
                (Some(_), None) => Observed::Yes(true),
                (None, Some(_)) => Observed::Yes(false),
                (Some(with), Some(without)) => {
                    Observed::Unanswered(format!("members differ: {} hold it, {} do not", with.join(", "), without.join(", ")))
                }
                (None, None) => Observed::NoAnswer("no member answers".to_string()),
            })
        };
        let [before, after]: [Result<Observed, LabError>; 2] =
            crate::at_once([WRITTEN_BEFORE_BACKUP, WRITTEN_AFTER_BACKUP], read).try_into().expect("two keys, two answers");
        let (before, after) = (before?, after?);
        // No member up and started in the twin: no one holds the data to answer a read.
        let nothing_up = no_member_up(twin);
        let unread = || crate::fidelity::Cell::from(Observed::NothingUp("no member is up to answer".to_string()));
        let twin_before = if nothing_up { unread() } else { Observed::Yes(true).into() };
        let twin_after = match twin.etcd_data {
            _ if nothing_up => unread(),
            EtcdData::Intact => Observed::Yes(true).into(),
            EtcdData::RestoredFromSnapshot { lost_s } => {
                Observed::Yes(false).with(format!("restored from the backup, {} of writes lost", format_duration(lost_s)))
            }
        };
        Ok([
            FidelityRow::new(t, "end", "a write from before the backup is there (etcdctl get)", twin_before, before, Evidence::Real),
            FidelityRow::new(t, "end", "a write from after the backup is there (etcdctl get)", twin_after, after, Evidence::Real),
        ])
    }
}

/// No etcd member of `twin` is up and started: nothing is there to answer `etcdctl`.
fn no_member_up(twin: &Cluster) -> bool {
    twin.members().and(twin.etcd_started).and(twin.up).is_empty()
}

/// Waits until the member of `flags` answers as a cluster of one and commits a write to `key`.
fn wait_cluster_of_one(flags: &EtcdFlags, key: &str) -> Result<(), LabError> {
    wait_cluster_of_one_at(&flags.client_url, &flags.name, key)
}

/// Waits until the member serving `client_url` (`name`'s) answers as a cluster of one and
/// commits a write to `key`.
///
/// # Errors
/// etcdctl cannot run, or the member does not within [`MEMBER_READY_TIMEOUT_S`].
pub(crate) fn wait_cluster_of_one_at(client_url: &str, name: &str, key: &str) -> Result<(), LabError> {
    let ctl = Etcdctl::new(vec![client_url.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(MEMBER_READY_TIMEOUT_S);
    loop {
        if matches!(ctl.member_list()?, Ok(members) if members.len() == 1) && matches!(ctl.put(key, "1", 1000)?, Ok(())) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: format!("etcd of {name} as a cluster of one"),
                timeout_ms: MEMBER_READY_TIMEOUT_S * 1000,
            });
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// Prints the etcd endpoints kubeadm's etcd client uses, synced with the membership, `@ROOT@` the
/// lab's root: the join and reset shims ask it.
const ETCD_ENDPOINTS_SHIM: &str = include_str!("kubeadm-etcd-endpoints.sh");
/// Where [`ETCD_ENDPOINTS_SHIM`] is, under the lab's root.
pub(crate) const KUBEADM_ETCD_ENDPOINTS: &str = "kubeadm-etcd-endpoints";

/// The join shim, `@NAME@` for each value [`write_join_shim`] fills in.
const JOIN_SHIM: &str = include_str!("kubeadm-join-shim.sh");

/// `kubeadm join ... --control-plane` on a lab host: the token and certificate key checked against
/// what `token create` and `upload-certs` issued, then etcd as kubeadm drives it (learner mode):
/// `member add --learner` on the existing cluster, the member started with the initial cluster etcd
/// answered, `member promote` retried until etcd takes it; then the serving cert (the shim's
/// `init phase certs apiserver`) and the static pod manifest. kubelet.conf names the node's own
/// apiserver and is written after the etcd work where kubeadm's local mode is on, else it names
/// the server of the discovered cluster-info and is written before it, in `kubelet-start`
/// (docs/facts.md K1, K19).
fn write_join_shim(root: &Path, modes: JoinModes, token_ttl_s: u64, certs_ttl_s: u64) -> Result<(), LabError> {
    let root = root.display();
    let (learner_flag, learner_mode, learner_word) = if modes.learner { ("--learner", "on", "learner") } else { ("", "off", "voter") };
    let kubelet_server = if modes.kubelet_local {
        "$PLAN_FIXTURE_HOST_ADDRESS:${endpoint##*:}".to_string()
    } else {
        format!("$(sed -n 's|^ *server: https://||p' {root}/cluster-info.yaml)")
    };
    let retry_s = format!("{}.{:03}", ETCD_RETRY_MS / 1000, ETCD_RETRY_MS % 1000);
    host::write_executable(
        &Path::new(&root.to_string()).join("kubeadm-join-control-plane"),
        &JOIN_SHIM
            .replace("@CLOCK_OFFSET@", CLOCK_OFFSET)
            .replace("@JOIN_LOG@", JOIN_LOG)
            .replace("@MEMBER_DIR@", MEMBER_DIR)
            .replace("@MEMBER_ADD_ATTEMPTS_MAX@", &MEMBER_ADD_ATTEMPTS_MAX.to_string())
            .replace("@ETCD_WAIT_S@", &ETCD_WAIT_S.to_string())
            .replace("@STRIKE_DIR@", STRIKE_DIR)
            .replace("@CERTS_TTL_S@", &certs_ttl_s.to_string())
            .replace("@KUBELET_SERVER@", &kubelet_server)
            .replace("@KUBELET_LOCAL_MODE@", if modes.kubelet_local { "on" } else { "off" })
            .replace("@LEARNER_FLAG@", learner_flag)
            .replace("@LEARNER_MODE@", learner_mode)
            .replace("@LEARNER_WORD@", learner_word)
            .replace("@RETRY_S@", &retry_s)
            .replace("@ROOT@", &root.to_string())
            .replace("@TOKEN_TTL_S@", &token_ttl_s.to_string()),
    )
}

/// How the join shim's kubeadm behaves, from the cluster's version (docs/facts.md).
#[derive(Debug, Clone, Copy)]
struct JoinModes {
    /// `member add --learner`, then promote.
    learner: bool,
    /// kubelet.conf names the node's own apiserver (`ControlPlaneKubeletLocalMode`).
    kubelet_local: bool,
}

/// A write through `ctl`, tried again (each try up to [`WRITE_TRY_MS`]) until one commits, one
/// through another member did (`committed`), or `timeout_ms` have passed: the last answer.
fn write_retried(ctl: &Etcdctl, timeout_ms: u64, committed: &std::sync::atomic::AtomicBool) -> Result<Real<()>, LabError> {
    use std::sync::atomic::Ordering;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as u64;
        let answer = ctl.put("plan-lab/quorum", "1", left.clamp(1, WRITE_TRY_MS))?;
        if answer.is_ok() {
            committed.store(true, Ordering::SeqCst);
        }
        if answer.is_ok() || committed.load(Ordering::SeqCst) || std::time::Instant::now() >= deadline {
            return Ok(answer);
        }
    }
}

/// One try of [`write_retried`]: a few election timeouts.
const WRITE_TRY_MS: u64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Topology {
        let text = include_str!("../../scenarios/loopback.yaml");
        Topology::new(&plan_model::validate::parse_scenario(text).expect("the loopback scenario parses"))
    }

    #[test]
    fn a_start_with_a_learner_is_refused_before_anything_starts() {
        let t = loopback();
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = match FixtureHosts::prepare(dir.path(), Vec::new(), host::TmpDir::Shared) {
            Ok(hosts) => hosts,
            Err(e) => return host::skip_test(&format!("fixture hosts cannot run: {e}")),
        };
        let mut start = Cluster::initial(&t);
        let cp2 = t.new_masters().next().expect("loopback adds masters");
        start.learners = start.learners.with(cp2);
        assert!(matches!(SliceEtcd::start(&t, &hosts, &start), Err(LabError::NotRehearsable { .. })));
    }
}
