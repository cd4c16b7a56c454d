//! The kubelets of the executor's lab: a stand-in that starts and stops each master's apiserver
//! stand-in from its manifest, crashes, freezes and boots hosts for the faults, and writes the node
//! and pod states the `kubectl` shim answers from; and its thread, owned by a value that stops it.

use super::{
    lock, APISERVER_MANIFEST, CLUSTER_INFO, FAULT_CLEARS_AFTER_MS, FAULT_UNSEEN_CLEARS_AFTER_MS, JOINED_MEMBER_PID, JOINED_MEMBER_START,
    KUBELET_TICK_MS, LAB_REBOOT_MS, LAB_REBOOT_UNWAITED_MS, QUORUM_WRITE_TIMEOUT_MS, READY_GRACE,
};
use crate::apiserver::{ApiObjects, ApiserverStandIn, VerifyingClient};
use crate::error::LabError;
use crate::executor_etcd::{SliceEtcd, STRIKE_DIR};
use crate::executor_lab::{self, REBOOT_REQUESTED};
use crate::fidelity::{Cell, Observed};
use crate::host::FixtureHosts;
use crate::process::{Signal, Worker};
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a change on the lab is given to settle before the last look (a restarted etcd
/// answering, HAProxy's checks at `inter 100ms fall 2 rise 1` marking a server).
const SETTLE_MS: u64 = 1000;

/// The kubelet stand-in's own thread: one look at the hosts every [`KUBELET_TICK_MS`] until it is
/// stopped or dropped (it holds the hosts and the stand-in).
pub(super) fn start_ticker(kubelet: &Arc<Mutex<KubeletStandIn>>, hosts: &Arc<FixtureHosts>) -> Result<Worker, LabError> {
    let (kubelet, hosts) = (Arc::clone(kubelet), Arc::clone(hosts));
    Worker::spawn("kubelet-stand-in".to_string(), move |stop| {
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = lock(&kubelet).sync(&hosts) {
                lock(&kubelet).actions.push(format!("kubelet stand-in: {e}"));
            }
            std::thread::sleep(Duration::from_millis(KUBELET_TICK_MS));
        }
    })
}

/// The kubelets of the lab's nodes: each master's apiserver stand-in (stopped while its manifest
/// is away, restarted when it comes back or changed), reboots, and each node's Ready state.
pub(super) struct KubeletStandIn {
    /// Per master: the running stand-in and the manifest's inode ctime when it started.
    pub(super) apiservers: BTreeMap<NodeIx, (ApiserverStandIn, Option<i64>)>,
    pub(super) etcd: SliceEtcd,
    /// Hosts that are down for a reboot, until when.
    pub(super) rebooting: BTreeMap<NodeIx, Instant>,
    pub(super) client: VerifyingClient,
    pub(super) port: u16,
    pub(super) actions: Vec<String>,
    pub(super) t: Topology,
    pub(super) root: PathBuf,
    /// Hosts a fault crashed (or a recovery destroyed): down, for good unless in `down_until`.
    pub(super) crashed: NodeSet,
    /// Crashed hosts that boot again (a reboot fault), and when.
    pub(super) down_until: BTreeMap<NodeIx, Instant>,
    /// Nodes whose etcd a partition froze, thawed at the instant (the partition heals).
    pub(super) frozen_until: BTreeMap<NodeIx, Instant>,
    /// Hypervisor hosts a fault crashed that boot again, by name, and when: before their VMs.
    pub(super) hypervisors_down_until: BTreeMap<String, Instant>,
    /// Whether the executor has seen the fault since it struck: it said it waits for the fault's
    /// machine, which does not answer ([`Self::executor_waits_for`]). A fault that clears clears
    /// only then (or [`FAULT_UNSEEN_CLEARS_AFTER_MS`] later), as a real reboot outlasts a look.
    pub(super) fault_seen: bool,
    /// Not before then does a fault the executor has not seen clear ([`Self::unseen_held_until`]).
    pub(super) unseen_not_before: Option<Instant>,
    /// Kubernetes API object requests the stand-ins answered (the executor's observer asks).
    pub(super) api_requests: Arc<std::sync::atomic::AtomicUsize>,
    /// Node objects the API holds: registered by a kubelet, gone only with `kubectl delete node`
    /// (`kubeadm reset` and a destroyed VM leave them, NotReady: docs/facts.md K10).
    pub(super) registered: NodeSet,
    /// Whether a write commits right after a fault that clears struck (a reboot, a partition),
    /// before it clears: the executor waits for it, so a halt may come after it cleared.
    pub(super) struck_quorum: Option<Cell>,
    /// How many of `actions` a look has seen.
    actions_seen: usize,
    /// When a look last found more actions, or an executor's command that changes the cluster
    /// finished (a member joined, the load balancer deployed): the lab's last change.
    last_change: Option<Instant>,
}

fn manifest_ctime(path: &Path) -> Option<i64> {
    std::fs::metadata(path).ok().map(|m| m.ctime() * 1_000_000_000 + m.ctime_nsec())
}

/// The nodes whose instant in `until` has come.
fn due(until: &BTreeMap<NodeIx, Instant>) -> Vec<NodeIx> {
    until.iter().filter(|(_, at)| Instant::now() >= **at).map(|(&n, _)| n).collect()
}

/// Whether one of `silent` (each `what: why`, as the executor tells what it waits for) is the
/// machine `name`.
fn names_machine(silent: &[String], name: &str) -> bool {
    silent.iter().any(|s| s.strip_prefix(name).is_some_and(|rest| rest.starts_with(": ")))
}

/// `https://a.b.c.d:port` as an address.
fn server_address(server: &str) -> Option<SocketAddr> {
    server.strip_prefix("https://")?.trim_end_matches('/').parse().ok()
}

impl KubeletStandIn {
    /// The stand-in of a lab at `root` over `etcd`: no apiserver running yet, nothing down; the
    /// API holds the Node objects of `registered`.
    pub(super) fn new(t: &Topology, root: &Path, etcd: SliceEtcd, client: VerifyingClient, registered: NodeSet) -> KubeletStandIn {
        KubeletStandIn {
            apiservers: BTreeMap::new(),
            etcd,
            rebooting: BTreeMap::new(),
            client,
            port: t.scenario.control_plane_endpoint.port,
            actions: Vec::new(),
            actions_seen: 0,
            last_change: None,
            t: t.clone(),
            root: root.to_path_buf(),
            crashed: NodeSet::EMPTY,
            down_until: BTreeMap::new(),
            struck_quorum: None,
            frozen_until: BTreeMap::new(),
            hypervisors_down_until: BTreeMap::new(),
            fault_seen: false,
            unseen_not_before: None,
            api_requests: Arc::default(),
            registered,
        }
    }

    /// Starts `node`'s apiserver stand-in on the scenario's port of its address, reading the cert
    /// on disk, its `/readyz` on the node's etcd member.
    pub(super) fn start(&mut self, hosts: &FixtureHosts, node: NodeIx) -> Result<(), LabError> {
        let name = self.t.name(node).to_string();
        let address = self.t.node(node).address;
        let kube = hosts.etc_kubernetes(&name);
        let (crt, key) = (kube.join("pki/apiserver.crt"), kube.join("pki/apiserver.key"));
        let etcd = self.etcd.client_address(node).unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
        let objects = ApiObjects {
            nodes: self.root.join(executor_lab::CLUSTER_DIR).join("nodes"),
            cluster_configuration: self.root.join("kubeadm-config.yaml"),
            cluster_info: self.root.join(CLUSTER_INFO),
            served: Arc::clone(&self.api_requests),
        };
        let standin = ApiserverStandIn::start(&name, SocketAddr::from((address, self.port)), &crt, &key, etcd, Some(objects))?;
        self.apiservers.insert(node, (standin, manifest_ctime(&kube.join(APISERVER_MANIFEST))));
        Ok(())
    }

    pub(super) fn stop(&mut self, node: NodeIx) {
        if let Some((standin, _)) = self.apiservers.remove(&node) {
            standin.stop();
        }
    }

    /// Whether a write commits now (within [`QUORUM_WRITE_TIMEOUT_MS`]).
    pub(super) fn quorum_now(&self) -> Cell {
        match self.etcd.quorum(QUORUM_WRITE_TIMEOUT_MS) {
            Ok(Ok(())) => Observed::Yes(true).into(),
            Ok(Err(why)) => Observed::Yes(false).with(why),
            Err(e) => Observed::Unanswered(format!("no answer: {e}")).into(),
        }
    }

    /// The fault: `node`'s host crashes and stays down (a reboot fault sets [`Self::down_until`]
    /// for it to boot again). Its sshd's PID namespace is killed (every session and every process
    /// it started, a joining etcd included), the member the lab runs for it is SIGKILLed, its
    /// apiserver stand-in stops; its kubelet reaches nothing.
    pub(super) fn crash(&mut self, hosts: &FixtureHosts, node: NodeIx, why: &str) {
        if self.crashed.contains(node) {
            return;
        }
        let name = self.t.name(node).to_string();
        let sshd = hosts.crash(&name);
        let etcd = self.etcd.kill(node);
        self.stop(node);
        // A reboot under way or asked for dies with the host.
        self.rebooting.remove(&node);
        let _ = std::fs::remove_file(hosts.host_dir(&name).join(REBOOT_REQUESTED));
        self.crashed = self.crashed.with(node);
        self.actions.push(format!(
            "{name}: {why}: host crashed ({}{}apiserver stand-in stopped)",
            if sshd { "sshd and every process of the host SIGKILLed, " } else { "" },
            if etcd { "etcd SIGKILLed, " } else { "" }
        ));
        let _ = std::fs::write(self.root.join(STRIKE_DIR).join(format!("done-{name}")), "");
    }

    /// The fault crashes `node`'s host ([`Self::crash`]); a reboot (`boots_again`) reads quorum once
    /// it struck, then boots the host [`FAULT_CLEARS_AFTER_MS`] later (counted from after the read,
    /// which may wait).
    pub(super) fn strike(&mut self, hosts: &FixtureHosts, node: NodeIx, boots_again: bool, why: &str) {
        self.crash(hosts, node, why);
        if boots_again {
            self.struck_quorum = Some(self.quorum_now());
            self.clears_after(Some(node), None);
        }
    }

    /// The fault fails the hypervisor `hypervisor` (its index): its host crashes, and so does
    /// every VM on it; with `boots_again` (an outage for a while) they boot
    /// [`FAULT_CLEARS_AFTER_MS`] later, the hypervisor first, as a reboot's host does.
    pub(super) fn strike_hypervisor(&mut self, hosts: &FixtureHosts, hypervisor: usize, boots_again: bool, why: &str) {
        let name = self.t.scenario.hypervisors[hypervisor].name.clone();
        let crashed = hosts.crash(&name);
        self.actions.push(format!(
            "{name}: {why}: the hypervisor fails {}{}",
            if boots_again { "for a while" } else { "for good" },
            if crashed { " (its sshd and every process SIGKILLed)" } else { "" }
        ));
        let vms = self.t.on_hypervisor(hypervisor);
        for vm in vms.iter() {
            self.crash(hosts, vm, &format!("{why}, its hypervisor {name} down"));
        }
        if boots_again {
            self.struck_quorum = Some(self.quorum_now());
            for vm in vms.iter() {
                self.clears_after(Some(vm), None);
            }
            let until = Instant::now() + Duration::from_millis(FAULT_CLEARS_AFTER_MS);
            self.hypervisors_down_until.insert(name, until);
        }
    }

    /// The partition: `node`'s etcd is frozen (`Signal::Stop`) or thawed (`Signal::Cont`), the lab's
    /// own member by its pid, a member the join started by `kill` inside the host. The host
    /// answers SSH, and its apiserver stand-in runs, unready while its etcd is frozen.
    pub(super) fn freeze(&mut self, hosts: &FixtureHosts, node: NodeIx, signal: Signal, why: &str) {
        let name = self.t.name(node).to_string();
        let sent = if self.etcd.signal(node, signal) {
            Ok(())
        } else {
            let flag = if signal == Signal::Stop { "STOP" } else { "CONT" };
            hosts.run(self.t.node(node).address, &format!("kill -{flag} $(cat $PLAN_FIXTURE_HOST_DIR/{JOINED_MEMBER_PID})")).map(|_| ())
        };
        self.actions.push(match sent {
            Ok(()) => format!("{name}: {why}: {} to its etcd", signal.name()),
            Err(e) => format!("{name}: {why}: {} to its etcd failed: {e}", signal.name()),
        });
    }

    /// A host a reboot fault took down boots: its sshd starts again, then etcd on its data, as
    /// the kubelet starts the static pod (the lab's own member, or the one the join started,
    /// started again inside the host); its apiserver stand-in follows from its manifest.
    pub(super) fn boot(&mut self, hosts: &FixtureHosts, node: NodeIx) -> Result<(), LabError> {
        let name = self.t.name(node).to_string();
        hosts.boot(&name)?;
        self.crashed = self.crashed.without(node);
        let etcd = if self.etcd.restart(node)? {
            true
        } else if hosts.host_dir(&name).join(JOINED_MEMBER_PID).exists() {
            hosts.run(self.t.node(node).address, JOINED_MEMBER_START)?;
            true
        } else {
            false
        };
        self.actions.push(format!("{name}: booted after the fault{}", if etcd { ", etcd started on its data" } else { "" }));
        Ok(())
    }

    /// One look at every host: faults the join shim asked for, hosts a fault took down that boot,
    /// reboots asked for or over, manifests away, back or new, then the node and pod states the
    /// `kubectl` shim answers from.
    pub(super) fn sync(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        self.note_changes();
        let synced = self.look(hosts);
        self.note_changes();
        synced
    }

    /// Something changed on the lab now that the stand-in has no action for (an executor's
    /// command): the last look waits for it as for its own.
    pub(super) fn changed_now(&mut self) {
        self.last_change = Some(Instant::now());
    }

    /// Stamps the time when `actions` grew since the last look.
    fn note_changes(&mut self) {
        if self.actions.len() != self.actions_seen {
            self.actions_seen = self.actions.len();
            self.last_change = Some(Instant::now());
        }
    }

    /// A fault that clears struck now: `down` boots again, `frozen`'s partition heals, once
    /// [`FAULT_CLEARS_AFTER_MS`] have passed and the executor has seen it ([`Self::clears_now`]).
    pub(super) fn clears_after(&mut self, down: Option<NodeIx>, frozen: Option<NodeIx>) {
        let until = Instant::now() + Duration::from_millis(FAULT_CLEARS_AFTER_MS);
        self.fault_seen = false;
        self.down_until.extend(down.map(|n| (n, until)));
        self.frozen_until.extend(frozen.map(|n| (n, until)));
    }

    /// The executor says it waits for `silent` (each `what: why`, as [`plan_exec::runner::Operator::waiting`]
    /// tells it): the fault is seen once that names a machine it holds down or frozen, not
    /// another silence (an API through the VIP, a host of no fault's); a planned reboot it names
    /// ends soon ([`Self::reboots_waited_for`]).
    pub(super) fn executor_waits_for(&mut self, silent: &[String]) {
        self.reboots_waited_for(silent);
        let held = self.down_until.keys().chain(self.frozen_until.keys()).map(|&n| self.t.name(n).to_string());
        let named: Vec<String> = held.chain(self.hypervisors_down_until.keys().cloned()).collect();
        if named.iter().any(|name| names_machine(silent, name)) {
            self.fault_seen = true;
        }
    }

    /// The planned reboots `silent` names (as [`Self::executor_waits_for`] reads it) end soon
    /// ([`Self::reboot_waited_for`]).
    pub(super) fn reboots_waited_for(&mut self, silent: &[String]) {
        let rebooting: Vec<NodeIx> = self.rebooting.keys().copied().collect();
        for node in rebooting {
            if names_machine(silent, self.t.name(node)) {
                self.reboot_waited_for(node);
            }
        }
    }

    /// A fault not seen yet does not clear unseen before `at` (the end of the executor's look
    /// after a step, which a real reboot outlasts), however late that look began.
    pub(super) fn unseen_held_until(&mut self, at: Instant) {
        self.unseen_not_before = Some(self.unseen_not_before.map_or(at, |t| t.max(at)));
    }

    /// Whether a fault that clears at `until` clears now: its time passed and the executor said
    /// it waits for it. A look on a loaded machine can take longer than the fault's time; a
    /// fault that cleared inside it was never seen (a partition once healed within the first
    /// look, and the run halted on the load balancer's lag instead of waiting). One the executor
    /// never waits for clears [`FAULT_UNSEEN_CLEARS_AFTER_MS`] later.
    fn clears_now(&self, until: Instant) -> bool {
        let now = Instant::now();
        let unseen_ends = self.unseen_not_before.is_none_or(|t| now >= t);
        now >= until && (self.fault_seen || (now >= until + Duration::from_millis(FAULT_UNSEEN_CLEARS_AFTER_MS) && unseen_ends))
    }

    /// The nodes of `until` whose fault clears now ([`Self::clears_now`]).
    fn cleared(&self, until: &BTreeMap<NodeIx, Instant>) -> Vec<NodeIx> {
        until.iter().filter(|(_, at)| self.clears_now(**at)).map(|(&n, _)| n).collect()
    }

    fn look(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        let t = self.t.clone();
        let back: Vec<String> =
            self.hypervisors_down_until.iter().filter(|(_, at)| self.clears_now(**at)).map(|(name, _)| name.clone()).collect();
        for name in back {
            self.hypervisors_down_until.remove(&name);
            hosts.boot(&name)?;
            self.actions.push(format!("{name}: booted after the fault"));
        }
        for node in self.cleared(&self.down_until) {
            self.down_until.remove(&node);
            self.boot(hosts, node)?;
        }
        for node in self.cleared(&self.frozen_until) {
            self.frozen_until.remove(&node);
            self.freeze(hosts, node, Signal::Cont, "the partition heals");
        }
        for node in t.all_nodes().iter() {
            let struck = self.root.join(STRIKE_DIR).join(format!("struck-{}", t.name(node)));
            if struck.exists() && !self.crashed.contains(node) && !self.down_until.contains_key(&node) {
                let reboots = self.root.join(STRIKE_DIR).join(format!("reboots-{}", t.name(node))).exists();
                self.strike(hosts, node, reboots, "the fault (struck inside kubeadm join)");
                if reboots {
                    let _ = std::fs::remove_file(&struck);
                }
            }
        }
        self.reboots_requested(hosts);
        for node in due(&self.rebooting) {
            self.rebooting.remove(&node);
            let etcd = self.etcd.restart(node)?;
            self.actions.push(format!(
                "{}: up again after the reboot{}",
                t.name(node),
                if etcd { ", etcd started on its data" } else { "" }
            ));
        }
        for node in t.all_nodes().iter() {
            if self.rebooting.contains_key(&node) || self.crashed.contains(node) {
                continue;
            }
            let manifest = hosts.etc_kubernetes(t.name(node)).join(APISERVER_MANIFEST);
            let now = manifest_ctime(&manifest);
            match (self.apiservers.get(&node).map(|(_, ctime)| *ctime), now) {
                (Some(_), None) => {
                    self.stop(node);
                    self.actions.push(format!("kubelet on {}: kube-apiserver.yaml gone, apiserver stand-in stopped", t.name(node)));
                }
                (Some(then), Some(_)) if then != now => {
                    self.stop(node);
                    self.start(hosts, node)?;
                    self.actions.push(format!(
                        "kubelet on {}: kube-apiserver.yaml changed, apiserver stand-in restarted with the cert on disk",
                        t.name(node)
                    ));
                }
                (None, Some(_)) => {
                    self.start(hosts, node)?;
                    self.actions.push(format!(
                        "kubelet on {}: kube-apiserver.yaml present, apiserver stand-in started with the cert on disk",
                        t.name(node)
                    ));
                }
                _ => {}
            }
        }
        self.write_states(hosts)
    }

    /// The plan's reboots asked for (`reboot-requested` in a host's directory, written by the
    /// `reboot` shim, which returns once it is gone): each host goes down, its etcd SIGKILLed and
    /// its apiserver stand-in stopped, until the operator waits for the node (`waiting-for-` in
    /// the cluster's directory, written by `kubectl wait`), then [`LAB_REBOOT_MS`];
    /// [`LAB_REBOOT_UNWAITED_MS`] if nothing waits. A reboot asked for while one is under way
    /// starts the wait again. Also called right after each command, before a fault strikes, so
    /// a fault placed after `sudo reboot` finds its host down.
    pub(super) fn reboots_requested(&mut self, hosts: &FixtureHosts) {
        let t = self.t.clone();
        for node in t.all_nodes().iter() {
            if self.crashed.contains(node) {
                continue;
            }
            let requested = hosts.host_dir(t.name(node)).join(REBOOT_REQUESTED);
            if requested.exists() {
                let unwaited = Instant::now() + Duration::from_millis(LAB_REBOOT_UNWAITED_MS);
                match self.rebooting.get_mut(&node) {
                    Some(until) => *until = (*until).max(unwaited),
                    None => {
                        let etcd = self.etcd.kill(node);
                        self.stop(node);
                        self.rebooting.insert(node, unwaited);
                        self.actions.push(format!(
                            "{}: down for a reboot ({}apiserver stand-in stopped)",
                            t.name(node),
                            if etcd { "etcd SIGKILLed, " } else { "" }
                        ));
                    }
                }
                let _ = std::fs::remove_file(&requested);
            }
            let waited = self.root.join(executor_lab::CLUSTER_DIR).join(format!("{}{}", executor_lab::WAITING_FOR, t.name(node)));
            if waited.exists() {
                let _ = std::fs::remove_file(&waited);
                self.reboot_waited_for(node);
            }
        }
    }

    /// The operator (or the executor) waits for `node`: a reboot under way ends
    /// [`LAB_REBOOT_MS`] from now, as a real one's time passes while someone waits for it.
    fn reboot_waited_for(&mut self, node: NodeIx) {
        if let Some(until) = self.rebooting.get_mut(&node) {
            *until = (*until).min(Instant::now() + Duration::from_millis(LAB_REBOOT_MS));
        }
    }

    /// `etcd --force-new-cluster` on the member the join started inside `node`'s host (the lab's
    /// own members are [`SliceEtcd::force_new_cluster`]'s): stopped, then started again on its
    /// data with the flag, once, until it commits a write as a cluster of one. `Ok(false)`: the
    /// host holds no such member.
    ///
    /// # Errors
    /// The host cannot be reached, or the member does not take a write in time.
    pub(super) fn force_new_cluster_joined(&mut self, hosts: &FixtureHosts, node: NodeIx) -> Result<bool, LabError> {
        let name = self.t.name(node).to_string();
        let dir = hosts.host_dir(&name);
        if !dir.join(JOINED_MEMBER_PID).exists() {
            return Ok(false);
        }
        let start = JOINED_MEMBER_START.replace("$(cat $m/args)", "$(cat $m/args) --force-new-cluster");
        let restart = format!("kill -KILL $(cat $PLAN_FIXTURE_HOST_DIR/{JOINED_MEMBER_PID}) 2>/dev/null; sleep 0.3; {start}");
        hosts.run(self.t.node(node).address, &restart)?;
        let url = std::fs::read_to_string(dir.join(crate::executor_etcd::CLIENT_URL_FILE))
            .map_err(|e| LabError::io(format!("{name}'s etcd client URL"), e))?;
        crate::executor_etcd::wait_cluster_of_one_at(url.trim(), &name, "plan-lab/forced")?;
        Ok(true)
    }

    /// Waits out reboots in progress and looks once more.
    pub(super) fn settle(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        if let Some(until) = self.rebooting.values().max().copied() {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        // A fault that clears and has not (the executor never looked after it): the end rows
        // are read once it has, as the twin's end state has it cleared.
        let bound = Instant::now() + Duration::from_millis(FAULT_CLEARS_AFTER_MS + FAULT_UNSEEN_CLEARS_AFTER_MS);
        let held = |k: &Self| !k.down_until.is_empty() || !k.frozen_until.is_empty() || !k.hypervisors_down_until.is_empty();
        while held(self) && Instant::now() < bound {
            self.sync(hosts)?;
            std::thread::sleep(Duration::from_millis(KUBELET_TICK_MS));
        }
        self.sync(hosts)?;
        // Give what changed in the last second (a restarted etcd, HAProxy's checks of an apiserver
        // that came back or of a pool just deployed) the rest of that second, then look again.
        if let Some(changed) = self.last_change {
            std::thread::sleep((changed + Duration::from_millis(SETTLE_MS)).saturating_duration_since(Instant::now()));
        }
        self.sync(hosts)
    }

    /// Whether `node`'s kubelet reaches an apiserver: its kubelet.conf's server answers `/readyz`
    /// with TLS verified for the address it dials.
    pub(super) fn node_ready(&self, hosts: &FixtureHosts, node: NodeIx) -> Option<bool> {
        self.node_ready_asking(hosts, node, &mut HashMap::new())
    }

    /// [`Self::node_ready`], each apiserver asked once for all the kubelets that dial it at this
    /// moment (`asked`: what each address said, for the name it was dialled by).
    fn node_ready_asking(&self, hosts: &FixtureHosts, node: NodeIx, asked: &mut HashMap<(SocketAddr, Ipv4Addr), bool>) -> Option<bool> {
        let text = std::fs::read_to_string(hosts.etc_kubernetes(self.t.name(node)).join("kubelet.conf")).ok()?;
        if self.rebooting.contains_key(&node) || self.crashed.contains(node) {
            return Some(false);
        }
        let server = executor_lab::server_in(&text).and_then(|s| server_address(&s))?;
        let SocketAddr::V4(v4) = server else { return Some(false) };
        Some(self.ready_at(server, *v4.ip(), asked))
    }

    /// Whether the apiserver at `address` answers `/readyz` with TLS verified for `name`, asked
    /// unless `asked` has its answer.
    fn ready_at(&self, address: SocketAddr, name: Ipv4Addr, asked: &mut HashMap<(SocketAddr, Ipv4Addr), bool>) -> bool {
        *asked.entry((address, name)).or_insert_with(|| self.client.readyz(address, name).is_ok_and(|a| a.is_ready()))
    }

    /// [`Self::node_ready`] as the node controller judges it: one failed heartbeat does not make a
    /// node NotReady (that takes `--node-monitor-grace-period` of them), so a node is Ready if
    /// its kubelet reaches an apiserver once within [`READY_GRACE`]. A loaded machine's single
    /// slow `/readyz` is not a NotReady node; an apiserver that is down fails every try.
    pub(super) fn node_ready_within_grace(&self, hosts: &FixtureHosts, node: NodeIx) -> Option<bool> {
        // A host that is down for good runs no kubelet: no grace makes it Ready.
        if self.crashed.contains(node) && !self.down_until.contains_key(&node) {
            return self.node_ready(hosts, node);
        }
        let until = std::time::Instant::now() + READY_GRACE;
        loop {
            let ready = self.node_ready(hosts, node);
            if ready != Some(false) || std::time::Instant::now() >= until {
                return ready;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    pub(super) fn apiserver_ready(&self, node: NodeIx) -> bool {
        self.apiserver_ready_asking(node, &mut HashMap::new())
    }

    fn apiserver_ready_asking(&self, node: NodeIx, asked: &mut HashMap<(SocketAddr, Ipv4Addr), bool>) -> bool {
        self.apiservers.get(&node).is_some_and(|(s, _)| self.ready_at(s.address, self.t.node(node).address, asked))
    }

    pub(super) fn write_states(&mut self, hosts: &FixtureHosts) -> Result<(), LabError> {
        let mut nodes = String::new();
        let mut pods = String::new();
        // One look at this moment: an apiserver several kubelets dial is asked once.
        let mut asked = HashMap::new();
        for node in self.t.all_nodes().iter() {
            let name = self.t.name(node);
            let master = hosts.etc_kubernetes(name).join(APISERVER_MANIFEST).exists();
            let ready = match self.node_ready_asking(hosts, node, &mut asked) {
                // A kubelet that runs (or reboots) registers its Node.
                Some(ready) if !self.crashed.contains(node) => {
                    self.registered = self.registered.with(node);
                    Some(ready)
                }
                // No kubelet: a Node object registered before stays, NotReady.
                _ => self.registered.contains(node).then_some(false),
            };
            if let Some(ready) = ready {
                nodes.push_str(&format!(
                    "{name} {} {}\n",
                    if ready { "Ready" } else { "NotReady" },
                    if master { "control-plane" } else { "<none>" }
                ));
            }
            if self.apiservers.contains_key(&node) {
                pods.push_str(&format!(
                    "kube-system kube-apiserver-{name} {}\n",
                    if self.apiserver_ready_asking(node, &mut asked) { "Running" } else { "NotReady" }
                ));
            }
        }
        let dir = self.root.join(executor_lab::CLUSTER_DIR);
        for (file, text) in [("nodes", nodes), ("pods", pods)] {
            let tmp = dir.join(format!("{file}.new"));
            std::fs::write(&tmp, text).map_err(|e| LabError::io(format!("write {}", tmp.display()), e))?;
            std::fs::rename(&tmp, dir.join(file)).map_err(|e| LabError::io(format!("rename {}", tmp.display()), e))?;
        }
        Ok(())
    }
}
