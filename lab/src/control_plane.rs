//! The rehearsal's control plane beside etcd: serving certs on disk, the apiserver stand-ins, and
//! HAProxy at the VIP, each kept in step with the twin's state as the plan's actions change it.
//!
//! What follows the model by construction (stand-in): *which* files and processes exist — a cert
//! is written when the model has one on disk, with the VIP SAN when the model's cert carries it; a
//! stand-in runs when the model's apiserver runs; HAProxy's pool is the model's running pool.
//! What is real: what those files and processes then do — the SANs a verifying client sees, which
//! cert a stand-in serves (the one on disk when it last started), `/readyz` from real etcd,
//! HAProxy's health checks, reloads and restarts.

use crate::address::{port, LabHost, LabLayout};
use crate::apiserver::{ApiserverStandIn, Readyz, VerifyingClient, APISERVER_PORT};
use crate::error::LabError;
use crate::haproxy::{self, Backend, PoolMember, HAPROXY_BIN};
use crate::pki::{LabCa, ServingCertSans};
use crate::process::{self, Lifetime, Signal};
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::scenario::HealthCheck;
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Bound on HAProxy's stats socket appearing after a start or reload.
pub const LB_START_TIMEOUT_MS: u64 = 5_000;
/// Bound on HAProxy's health checks settling (every backend checked, none between UP and DOWN).
pub const LB_SETTLE_TIMEOUT_MS: u64 = 2_000;
/// Pause between two readings of the stats socket while waiting for the checks.
const SETTLE_POLL_MS: u64 = 50;

/// HAProxy as the rehearsal runs it.
struct LoadBalancer {
    child: Child,
    socket: PathBuf,
    pool: NodeSet,
}

/// Certs, stand-ins and the LB of one rehearsal; everything stops when it is dropped.
pub struct ControlPlane {
    dir: PathBuf,
    ca: LabCa,
    client: VerifyingClient,
    hosts: Vec<LabHost>,
    apiserver_port: u16,
    vip: Ipv4Addr,
    vip_port: u16,
    fqdn: String,
    check: HealthCheck,
    reset_to_declared_state: bool,
    /// Certs on disk: node -> the SANs written.
    certs: BTreeMap<u8, ServingCertSans>,
    stand_ins: BTreeMap<u8, ApiserverStandIn>,
    lb: Option<LoadBalancer>,
    /// HAProxy processes replaced by a graceful reload, reaped at the end.
    retired: Vec<Child>,
    generation: u32,
    /// Pool rewrites performed (each a restart or a reload).
    pub lb_rewrites: u32,
}

impl ControlPlane {
    /// A CA in `dir` and nothing running yet; [`Self::sync`] with the initial state starts the
    /// existing master's stand-in.
    ///
    /// # Errors
    /// HAProxy is missing, a port is taken, or the CA cannot be written.
    pub fn new(t: &Topology, layout: &LabLayout, dir: &Path) -> Result<ControlPlane, LabError> {
        crate::lab::check_binaries(true)?;
        let apiserver_port = port(APISERVER_PORT, layout.offset)?;
        for host in &layout.hosts {
            if std::net::TcpListener::bind((host.loopback, apiserver_port)).is_err() {
                return Err(LabError::PortBusy { address: host.loopback, port: apiserver_port });
            }
        }
        if std::net::TcpListener::bind((layout.vip, layout.vip_port)).is_err() {
            return Err(LabError::PortBusy { address: layout.vip, port: layout.vip_port });
        }
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).map_err(|e| LabError::io(format!("create {}", pki.display()), e))?;
        let ca = LabCa::new(&pki)?;
        let client = VerifyingClient::new(ca.cert_der())?;
        let lb = &t.scenario.load_balancer;
        Ok(ControlPlane {
            dir: dir.to_path_buf(),
            ca,
            client,
            hosts: layout.hosts.clone(),
            apiserver_port,
            vip: layout.vip,
            vip_port: layout.vip_port,
            fqdn: t.scenario.control_plane_endpoint.fqdn.clone(),
            check: t.health_check,
            reset_to_declared_state: lb.deploy_bounces(),
            certs: BTreeMap::new(),
            stand_ins: BTreeMap::new(),
            lb: None,
            retired: Vec::new(),
            generation: 0,
            lb_rewrites: 0,
        })
    }

    pub fn client(&self) -> &VerifyingClient {
        &self.client
    }

    pub fn vip_address(&self) -> SocketAddr {
        SocketAddr::from((self.vip, self.vip_port))
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    fn host(&self, node: NodeIx) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.node == node.0)
    }

    fn pki_paths(&self, host: &LabHost) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(&host.name).join("pki");
        (dir.join("apiserver.crt"), dir.join("apiserver.key"))
    }

    /// The SANs the model's cert of `node` carries.
    fn sans_for(&self, c: &Cluster, host: &LabHost) -> ServingCertSans {
        let vip = c.cert_vip.contains(host.ix()).then_some((self.vip, self.fqdn.as_str()));
        ServingCertSans::of(&host.name, host.loopback, vip)
    }

    /// Brings certs, stand-ins and HAProxy in line with `c` after `action` (None: a fault struck
    /// or ended, or the start). `restart` names a master whose apiserver restarted (its stand-in
    /// reads its cert again even if it was running).
    ///
    /// # Errors
    /// A cert cannot be written, a stand-in cannot bind, HAProxy does not start.
    pub fn sync(&mut self, c: &Cluster, action: Option<Action>, restart: Option<NodeIx>) -> Result<(), LabError> {
        self.sync_certs(c)?;
        self.sync_stand_ins(c, restart)?;
        self.sync_lb(c, matches!(action, Some(Action::DeployLb)))
    }

    fn sync_certs(&mut self, c: &Cluster) -> Result<(), LabError> {
        for host in self.hosts.clone() {
            let (crt, key) = self.pki_paths(&host);
            if c.cert_present.contains(host.ix()) {
                let wanted = self.sans_for(c, &host);
                if self.certs.get(&host.node) != Some(&wanted) {
                    self.ca.issue(&wanted, &crt, &key)?;
                    self.certs.insert(host.node, wanted);
                }
            } else if self.certs.remove(&host.node).is_some() {
                let _ = std::fs::remove_file(&crt);
                let _ = std::fs::remove_file(&key);
            }
        }
        Ok(())
    }

    fn sync_stand_ins(&mut self, c: &Cluster, restart: Option<NodeIx>) -> Result<(), LabError> {
        let running = c.up.and(c.control_plane).and(c.apiserver_running);
        for host in self.hosts.clone() {
            let node = host.ix();
            let wanted = running.contains(node);
            let runs = self.stand_ins.contains_key(&host.node);
            if runs && (!wanted || restart == Some(node)) {
                if let Some(stand_in) = self.stand_ins.remove(&host.node) {
                    stand_in.stop();
                }
            }
            if wanted && !self.stand_ins.contains_key(&host.node) {
                let (crt, key) = self.pki_paths(&host);
                let serving = self.certs.get(&host.node).cloned().unwrap_or_else(|| self.sans_for(c, &host));
                let etcd = SocketAddr::from((host.loopback, host.client_port));
                let address = SocketAddr::from((host.loopback, self.apiserver_port));
                let stand_in = ApiserverStandIn::start(&host.name, address, &crt, &key, serving, etcd, None)?;
                self.stand_ins.insert(host.node, stand_in);
            }
        }
        Ok(())
    }

    /// A node crashed: its apiserver goes with it (its etcd is the lab's to kill).
    pub fn crash(&mut self, node: NodeIx) {
        if let Some(stand_in) = self.stand_ins.remove(&node.0) {
            stand_in.stop();
        }
    }

    fn pool_members(&self, pool: NodeSet) -> Vec<PoolMember> {
        self.hosts
            .iter()
            .filter(|h| pool.contains(h.ix()))
            .map(|h| PoolMember { name: h.name.clone(), address: h.loopback, port: self.apiserver_port })
            .collect()
    }

    fn sync_lb(&mut self, c: &Cluster, deploy: bool) -> Result<(), LabError> {
        let wanted = c.lb_up && c.vip_alias && c.lb_running.frontend;
        let pool = c.lb_running.pool;
        match (&self.lb, wanted) {
            (Some(_), false) => self.stop_lb(),
            (None, true) => self.start_lb(pool, false)?,
            (Some(lb), true) if deploy || lb.pool != pool => {
                self.lb_rewrites += 1;
                if self.reset_to_declared_state {
                    // The bootstrap script tears every frontend down and builds it again.
                    self.stop_lb();
                    self.start_lb(pool, false)?;
                } else {
                    self.start_lb(pool, true)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Starts HAProxy for `pool`; `graceful`: the new process takes over from the running one
    /// (`-sf`), which finishes its connections and exits.
    fn start_lb(&mut self, pool: NodeSet, graceful: bool) -> Result<(), LabError> {
        self.generation += 1;
        let socket = self.dir.join(format!("haproxy-{}.sock", self.generation));
        let cfg = self.dir.join(format!("haproxy-{}.cfg", self.generation));
        let text = haproxy::scenario_config(self.vip, self.vip_port, &self.pool_members(pool), self.check, &socket);
        std::fs::write(&cfg, text).map_err(|e| LabError::io(format!("write {}", cfg.display()), e))?;
        let mut args = vec!["-db".to_string(), "-f".to_string(), cfg.display().to_string()];
        let old = if graceful { self.lb.take() } else { None };
        if let Some(old) = &old {
            args.extend(["-sf".to_string(), old.child.id().to_string()]);
        }
        let log = self.dir.join("haproxy.log");
        let child = process::spawn(Path::new(HAPROXY_BIN), &args, &log, Lifetime::Owned)?;
        let pid = child.id();
        self.lb = Some(LoadBalancer { child, socket: socket.clone(), pool });
        self.retired.extend(old.map(|o| o.child));
        let start = Instant::now();
        while !socket.exists() {
            if !process::is_alive(pid) {
                return Err(LabError::Exited { process: "haproxy".to_string(), log_tail: process::log_tail(&log, 5) });
            }
            if start.elapsed() >= Duration::from_millis(LB_START_TIMEOUT_MS) {
                return Err(LabError::Timeout { what: "haproxy's stats socket".to_string(), timeout_ms: LB_START_TIMEOUT_MS });
            }
            std::thread::sleep(Duration::from_millis(process::POLL_MS));
        }
        Ok(())
    }

    fn stop_lb(&mut self) {
        if let Some(mut lb) = self.lb.take() {
            let pid = lb.child.id();
            process::signal(pid, Signal::Kill);
            process::wait_gone(pid, Some(&mut lb.child), Duration::from_millis(crate::lab::STOP_TIMEOUT_MS));
            let _ = std::fs::remove_file(&lb.socket);
        }
    }

    /// Whether HAProxy runs at the VIP.
    pub fn lb_running(&self) -> bool {
        self.lb.is_some()
    }

    /// HAProxy's view of the pool once its checks have settled (or after
    /// [`LB_SETTLE_TIMEOUT_MS`], as they stand then); `None` when HAProxy does not run.
    ///
    /// # Errors
    /// The stats socket does not answer.
    pub fn settled_backends(&self) -> Result<Option<Vec<Backend>>, LabError> {
        let Some(lb) = &self.lb else { return Ok(None) };
        let start = Instant::now();
        loop {
            let backends = haproxy::backends(&lb.socket)?;
            if backends.iter().all(Backend::is_settled) || start.elapsed() >= Duration::from_millis(LB_SETTLE_TIMEOUT_MS) {
                return Ok(Some(backends));
            }
            std::thread::sleep(Duration::from_millis(SETTLE_POLL_MS));
        }
    }

    /// Waits until HAProxy's UP set is `expected` (its checks catch up with a change), at most
    /// [`LB_SETTLE_TIMEOUT_MS`]; returns the last settled reading either way.
    ///
    /// # Errors
    /// The stats socket does not answer.
    pub fn backends_converging_to(&self, expected: &[String]) -> Result<Option<Vec<Backend>>, LabError> {
        let start = Instant::now();
        loop {
            let Some(backends) = self.settled_backends()? else { return Ok(None) };
            let up: Vec<String> = backends.iter().filter(|b| b.is_up()).map(|b| b.name.clone()).collect();
            if up == expected || start.elapsed() >= Duration::from_millis(LB_SETTLE_TIMEOUT_MS) {
                return Ok(Some(backends));
            }
            std::thread::sleep(Duration::from_millis(SETTLE_POLL_MS));
        }
    }

    /// Whether something accepts TCP at the VIP.
    pub fn vip_listening(&self) -> bool {
        TcpStream::connect_timeout(&self.vip_address(), Duration::from_millis(crate::apiserver::REQUEST_TIMEOUT_MS)).is_ok()
    }

    /// `GET /readyz` through the VIP, verifying the served cert for the VIP's address.
    ///
    /// # Errors
    /// Only a non-loopback address (never: the VIP is mapped into loopback).
    pub fn readyz_via_vip(&self) -> Result<Readyz, LabError> {
        self.client.readyz(self.vip_address(), self.vip)
    }

    /// `GET /readyz` straight at `node`'s apiserver, verifying for the master's own address.
    ///
    /// # Errors
    /// [`LabError::NotAMaster`] for a node the lab does not run.
    pub fn readyz_direct(&self, node: NodeIx) -> Result<Readyz, LabError> {
        let host = self.host(node).ok_or_else(|| LabError::NotAMaster { node: format!("node #{}", node.0) })?;
        self.client.readyz(SocketAddr::from((host.loopback, self.apiserver_port)), host.loopback)
    }

    /// The SANs `node`'s running stand-in serves, if it runs.
    pub fn serving(&self, node: NodeIx) -> Option<&ServingCertSans> {
        self.stand_ins.get(&node.0).map(|s| &s.serving)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_lb();
        for mut child in self.retired.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stand_ins.clear();
    }
}
