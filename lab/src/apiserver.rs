//! The apiserver stand-in: a small HTTPS server per master on its loopback address that answers
//! `/readyz` from its local etcd member's real health, and the verifying client that asks it.
//!
//! It is not kube-apiserver: it serves `/readyz` and `/livez`, and, where the lab gives it
//! [`ApiObjects`], the three reads the executor's Kubernetes API observer makes (the node list,
//! `kube-system/kubeadm-config`, `kube-public/cluster-info`) as Kubernetes JSON, from the lab's
//! files and only while its etcd is healthy. What is real is the TLS (the
//! serving cert read from disk, and read again when the files change, keeping the last good pair
//! when they vanish or do not parse, as kube-apiserver's dynamic serving certificate does: see
//! docs/facts.md; a client that verifies it against the lab CA) and the readiness: `/readyz` is 200 only when a `GET
//! /health` on the master's own etcd member (stacked etcd: the apiserver's etcd is local) answers
//! healthy within [`ETCD_HEALTH_TIMEOUT_MS`]. etcd 3.4 answers healthy only with a leader and a
//! quorum read committed, so a frozen, crashed or quorum-less member makes the stand-in unready.
//! Blocking rustls on std threads: no async runtime to compile for a few requests a second.

use crate::error::LabError;
use crate::pki::load_pair;
use crate::process::{Worker, POLL_MS};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The bound on the local etcd answering `GET /health`.
pub const ETCD_HEALTH_TIMEOUT_MS: u64 = 400;
/// The bound on one client exchange (connect, handshake, request, answer).
pub const REQUEST_TIMEOUT_MS: u64 = 1_000;
/// Connections served at once; more are closed (HAProxy checks and the probe need a handful).
pub const CONNECTIONS_MAX: usize = 32;
/// The longest request head read.
const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// When the pair on disk last changed: both files' modification times and sizes.
type PairStamp = (SystemTime, SystemTime, u64, u64);

/// The serving pair as kube-apiserver holds it (`NewDynamicServingContentFromFiles`): read again
/// at a handshake after the files changed; the last good pair kept while they are missing or do
/// not parse.
#[derive(Debug)]
struct ReloadingPair {
    crt: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<PairStamp>, Arc<rustls::sign::CertifiedKey>)>,
}

impl ReloadingPair {
    fn load(crt: &Path, key: &Path) -> Result<ReloadingPair, LabError> {
        let stamp = pair_stamp(crt, key);
        let pair = certified(crt, key)?;
        Ok(ReloadingPair { crt: crt.to_path_buf(), key: key.to_path_buf(), current: Mutex::new((stamp, pair)) })
    }
}

fn pair_stamp(crt: &Path, key: &Path) -> Option<PairStamp> {
    let (c, k) = (std::fs::metadata(crt).ok()?, std::fs::metadata(key).ok()?);
    Some((c.modified().ok()?, k.modified().ok()?, c.len(), k.len()))
}

fn certified(crt: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, LabError> {
    let (certs, key_der) = load_pair(crt, key)?;
    let signing = provider().key_provider.load_private_key(key_der).map_err(|e| tls_error(&format!("key {}", key.display()), e))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(certs, signing)))
}

impl rustls::server::ResolvesServerCert for ReloadingPair {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = pair_stamp(&self.crt, &self.key);
        if stamp.is_some() && stamp != current.0 {
            // A pair that does not load (half written, mismatched) is tried again next time.
            if let Ok(pair) = certified(&self.crt, &self.key) {
                *current = (stamp, pair);
            }
        }
        Some(Arc::clone(&current.1))
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> LabError {
    LabError::Command { command: format!("TLS: {what}"), message: e.to_string() }
}

/// Where a stand-in finds the few Kubernetes objects it serves, as the lab keeps them: the nodes the
/// kubelet stand-in writes (`name Ready|NotReady role [address [kubelet-version]]` per line) and the kubeadm-config and
/// cluster-info the `kubeadm` shim keeps.
#[derive(Debug, Clone)]
pub struct ApiObjects {
    pub nodes: std::path::PathBuf,
    pub cluster_configuration: std::path::PathBuf,
    pub cluster_info: std::path::PathBuf,
    /// Object requests answered (200 or 404), by every stand-in that shares this counter.
    pub served: Arc<AtomicUsize>,
}

impl ApiObjects {
    /// The answer to a `GET` of `path`, when it is one of the objects served.
    fn get(&self, path: &str) -> Option<(&'static str, String)> {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).ok();
        let config_map = |namespace: &str, name: &str, key: &str, value: Option<String>| {
            match value {
            Some(value) => (
                "200 OK",
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {key: value}})
                    .to_string(),
            ),
            None => not_found(&format!("configmaps \"{name}\" not found")),
        }
        };
        Some(match path {
            "/api/v1/nodes" => {
                let items: Vec<serde_json::Value> = read(&self.nodes).unwrap_or_default().lines().filter_map(node_object).collect();
                (
                    "200 OK",
                    serde_json::json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
                        .to_string(),
                )
            }
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config" => {
                config_map("kube-system", "kubeadm-config", "ClusterConfiguration", read(&self.cluster_configuration))
            }
            "/api/v1/namespaces/kube-public/configmaps/cluster-info" => {
                config_map("kube-public", "cluster-info", "kubeconfig", read(&self.cluster_info))
            }
            _ => return None,
        })
    }
}

/// A Node object from one line of the nodes file: `name Ready|NotReady role [address [version]]`.
/// A `control-plane` role is kubeadm's label; the address is the node's `InternalIP` and the version
/// its kubelet's (`plan init --from-cluster` reads them; the executor's observer reads the name and
/// Ready only).
fn node_object(line: &str) -> Option<serde_json::Value> {
    let mut fields = line.split_whitespace();
    let (name, ready) = (fields.next()?, fields.next()?);
    let status = if ready == "Ready" { "True" } else { "False" };
    let mut node = serde_json::json!({"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": status}]}});
    if fields.next() == Some("control-plane") {
        node["metadata"]["labels"] = serde_json::json!({"node-role.kubernetes.io/control-plane": ""});
    }
    if let Some(address) = fields.next() {
        node["status"]["addresses"] =
            serde_json::json!([{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}]);
    }
    if let Some(version) = fields.next() {
        node["status"]["nodeInfo"] = serde_json::json!({"kubeletVersion": version});
    }
    Some(node)
}

fn status(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
        .to_string()
}

fn not_found(message: &str) -> (&'static str, String) {
    ("404 Not Found", status(404, "NotFound", message))
}

/// A running stand-in: an accept loop on a thread, stopped (its listener closed) on [`Self::stop`]
/// or drop.
pub struct ApiserverStandIn {
    pub address: SocketAddr,
    accept: Worker,
}

impl ApiserverStandIn {
    /// Reads the serving pair from `crt`/`key` (and again whenever they change) and listens on
    /// `address` (loopback only).
    ///
    /// # Errors
    /// The address is not loopback or is taken, or the pair cannot be read.
    pub fn start(
        name: &str,
        address: SocketAddr,
        crt: &Path,
        key: &Path,
        etcd: SocketAddr,
        api: Option<ApiObjects>,
    ) -> Result<ApiserverStandIn, LabError> {
        let SocketAddr::V4(v4) = address else { return Err(LabError::NotLoopback(Ipv4Addr::UNSPECIFIED)) };
        crate::address::guard_loopback(*v4.ip())?;
        let pair = ReloadingPair::load(crt, key).map_err(|e| tls_error(&format!("serving cert of {name}"), e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("server protocol versions", e))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(pair));
        let config = Arc::new(config);
        let listener = TcpListener::bind(address).map_err(|_| LabError::PortBusy { address: *v4.ip(), port: v4.port() })?;
        listener.set_nonblocking(true).map_err(|e| LabError::io(format!("listen on {address}"), e))?;
        let accept = Worker::spawn(format!("apiserver-{name}"), move |stop| accept_loop(listener, config, etcd, api.map(Arc::new), stop))?;
        Ok(ApiserverStandIn { address, accept })
    }

    /// Closes the listener: new connections are refused from here on.
    pub fn stop(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let address = self.address;
        // A connection wakes the accept loop, which then sees its flag and closes the listener.
        self.accept.stop_with(|| drop(std::net::TcpStream::connect_timeout(&address, Duration::from_millis(STOP_CHECK_MS as u64))));
    }
}

impl Drop for ApiserverStandIn {
    fn drop(&mut self) {
        self.close();
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    etcd: SocketAddr,
    api: Option<Arc<ApiObjects>>,
    stop: &AtomicBool,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(EtcdReadyCheck::new(etcd));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if stop.load(Ordering::SeqCst) || active.load(Ordering::SeqCst) >= CONNECTIONS_MAX {
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (config, serving, api, ready) = (Arc::clone(&config), Arc::clone(&active), api.clone(), Arc::clone(&ready));
                let spawned = std::thread::Builder::new().spawn(move || {
                    serve(stream, config, &ready, api.as_deref());
                    serving.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_for_connection(&listener),
            Err(_) => std::thread::sleep(Duration::from_millis(POLL_MS)),
        }
    }
}

/// How long the accept loop waits for a connection before it looks at its stop flag again.
const STOP_CHECK_MS: i32 = 100;

/// Waits until `listener` has a connection to accept or [`STOP_CHECK_MS`] passed: a connection is
/// taken the moment it arrives (a sleep between tries cost every API request and every HAProxy
/// check up to its length, 10 ms), and an idle stand-in wakes ten times a second, not a hundred.
fn wait_for_connection(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let mut ready = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd that lives across the call, for a descriptor the listener owns.
    let answered = unsafe { libc::poll(&mut ready, 1, STOP_CHECK_MS) };
    if answered < 0 {
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// One connection: TLS, one request, one answer, close.
fn serve(stream: TcpStream, config: Arc<rustls::ServerConfig>, ready: &EtcdReadyCheck, api: Option<&ApiObjects>) {
    let etcd = ready.etcd;
    let timeout = Some(Duration::from_millis(REQUEST_TIMEOUT_MS));
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let Ok(connection) = rustls::ServerConnection::new(config) else { return };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let Some(path) = read_request_path(&mut tls) else { return };
    let text = "text/plain";
    let (status, kind, body) = match path.as_str() {
        "/readyz" => match ready.check() {
            Ok(()) => ("200 OK", text, "ok".to_string()),
            Err(why) => ("503 Service Unavailable", text, format!("[-]etcd failed: {why}\nreadyz check failed")),
        },
        "/livez" => ("200 OK", text, "ok".to_string()),
        // The objects are read from etcd: without a healthy local member the request fails, as
        // kube-apiserver's does (500 InternalError: etcdserver unavailable).
        path => match api.and_then(|api| api.get(path)) {
            Some(answer) => match etcd_health(etcd) {
                Ok(()) => {
                    if let Some(api) = api {
                        api.served.fetch_add(1, Ordering::SeqCst);
                    }
                    (answer.0, "application/json", answer.1)
                }
                Err(why) => ("500 Internal Server Error", "application/json", status(500, "InternalError", &format!("etcdserver: {why}"))),
            },
            None => ("404 Not Found", text, "the apiserver stand-in serves /readyz, /livez, the nodes and two ConfigMaps only".to_string()),
        },
    };
    let answer = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = tls.write_all(answer.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn read_request_path(tls: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > REQUEST_HEAD_MAX_BYTES {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    let mut parts = line.split_whitespace();
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(|p| p.split('?').next().unwrap_or(p).to_string())
}

/// kube-apiserver's etcd readiness check (`newETCD3Check` in k8s.io/apiserver's
/// `pkg/storage/storagebackend/factory/etcd3.go`, rate limited since kubernetes/kubernetes#112046):
/// etcd is asked at most once per half the check's timeout, with no burst; a request in between
/// gets the answer of the last one asked (an answer still out leaves the one before it). Without
/// it every HAProxy check and every kubelet look asked etcd (30 to 60 a second on a lab).
#[derive(Debug)]
struct EtcdReadyCheck {
    etcd: SocketAddr,
    /// When etcd was last asked, and the answer of the last ask that returned (with when it was
    /// asked: an older ask returning late does not overwrite a newer one).
    asked: Mutex<(Option<Instant>, Option<AskedAnswer>)>,
}

/// An answer of etcd and when it was asked for.
type AskedAnswer = (Instant, Result<(), String>);

/// Half the check's timeout: at most one ask of etcd in it.
const ETCD_READY_CHECK_EVERY_MS: u64 = ETCD_HEALTH_TIMEOUT_MS / 2;

impl EtcdReadyCheck {
    fn new(etcd: SocketAddr) -> EtcdReadyCheck {
        EtcdReadyCheck { etcd, asked: Mutex::new((None, None)) }
    }

    fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }

    /// [`Self::check`] asked at `now`.
    fn check_at(&self, now: Instant) -> Result<(), String> {
        {
            let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
            if asked.0.is_some_and(|at| now.duration_since(at) < Duration::from_millis(ETCD_READY_CHECK_EVERY_MS)) {
                return asked.1.as_ref().map_or_else(|| Err("etcd client connection not yet established".to_string()), |(_, a)| a.clone());
            }
            asked.0 = Some(now);
        }
        let answer = etcd_health(self.etcd);
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        if asked.1.as_ref().is_none_or(|(at, _)| *at < now) {
            asked.1 = Some((now, answer.clone()));
        }
        answer
    }
}

/// `GET /health` on the local etcd member within [`ETCD_HEALTH_TIMEOUT_MS`].
fn etcd_health(etcd: SocketAddr) -> Result<(), String> {
    let timeout = Duration::from_millis(ETCD_HEALTH_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&etcd, timeout).map_err(|e| format!("etcd {etcd}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n").map_err(|e| format!("etcd {etcd}: {e}"))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|_| format!("etcd {etcd}: no answer within {ETCD_HEALTH_TIMEOUT_MS} ms"))?;
    if answer.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!("etcd {etcd} unhealthy"))
    }
}

/// What a verifying client got from `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "answer", content = "why")]
pub enum Readyz {
    /// TLS verified against the lab CA for the name asked, and 200.
    Ready,
    /// TLS verified, but not 200 (the stand-in's etcd check failed).
    NotReady(String),
    /// The served certificate did not verify (wrong SANs, unknown CA).
    TlsRejected(String),
    /// No TCP connection or no answer (nothing listens, a backend-less VIP closes at once).
    Unreachable(String),
}

impl Readyz {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readyz::Ready)
    }
    pub fn tls_verified(&self) -> bool {
        matches!(self, Readyz::Ready | Readyz::NotReady(_))
    }
}

impl std::fmt::Display for Readyz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readyz::Ready => write!(f, "TLS verified, /readyz 200"),
            Readyz::NotReady(why) => write!(f, "TLS verified, /readyz not ready: {why}"),
            Readyz::TlsRejected(why) => write!(f, "TLS rejected: {why}"),
            Readyz::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// A client that trusts the lab CA only, as a kubeconfig with the cluster's CA does.
#[derive(Clone)]
pub struct VerifyingClient {
    config: Arc<rustls::ClientConfig>,
}

impl VerifyingClient {
    /// # Errors
    /// The CA certificate is not usable as a trust anchor.
    pub fn new(ca: CertificateDer<'static>) -> Result<VerifyingClient, LabError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).map_err(|e| tls_error("the lab CA as a trust anchor", e))?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("client protocol versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(VerifyingClient { config: Arc::new(config) })
    }

    /// `GET /readyz` at `address`, verifying the served cert for the IP `name` (the address the
    /// client dials: the VIP or the master's own).
    ///
    /// # Errors
    /// [`LabError::NotLoopback`] for an address off this machine; every other failure is an
    /// answer ([`Readyz`]).
    pub fn readyz(&self, address: SocketAddr, name: Ipv4Addr) -> Result<Readyz, LabError> {
        let SocketAddr::V4(v4) = address else { return Err(LabError::NotLoopback(Ipv4Addr::UNSPECIFIED)) };
        crate::address::guard_loopback(*v4.ip())?;
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
        let stream = match TcpStream::connect_timeout(&address, timeout) {
            Ok(s) => s,
            Err(e) => return Ok(Readyz::Unreachable(e.to_string())),
        };
        if stream.set_read_timeout(Some(timeout)).is_err() || stream.set_write_timeout(Some(timeout)).is_err() {
            return Ok(Readyz::Unreachable("socket options".to_string()));
        }
        let connection = rustls::ClientConnection::new(Arc::clone(&self.config), ServerName::IpAddress(name.into()))
            .map_err(|e| tls_error("client connection", e))?;
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        let exchange = tls.write_all(request.as_bytes()).and_then(|_| tls.read_to_end(&mut answer));
        if let Err(e) = exchange {
            return Ok(classify(e, &answer));
        }
        let text = String::from_utf8_lossy(&answer);
        let Some(status) = text.lines().next() else { return Ok(Readyz::Unreachable("closed without an answer".to_string())) };
        if status.contains(" 200 ") {
            Ok(Readyz::Ready)
        } else {
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b.lines().next().unwrap_or("").to_string()).unwrap_or_default();
            Ok(Readyz::NotReady(format!("{} {body}", status.trim()).trim().to_string()))
        }
    }
}

fn classify(e: std::io::Error, partial: &[u8]) -> Readyz {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Readyz::TlsRejected(tls.to_string());
    }
    if !partial.is_empty() {
        return Readyz::Unreachable(format!("answer cut short: {e}"));
    }
    Readyz::Unreachable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{LabCa, ServingCertSans};

    fn free_port(ip: Ipv4Addr) -> u16 {
        TcpListener::bind((ip, 0)).expect("a free port").local_addr().expect("bound").port()
    }

    /// A lab CA in a fresh directory, the serving pair of `m` at 127.0.0.1 without the VIP
    /// (`apiserver.crt`, `apiserver.key`) and a free address there for its stand-in.
    fn pair_and_address() -> (tempfile::TempDir, LabCa, (PathBuf, PathBuf), SocketAddr) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = LabCa::new(dir.path()).expect("CA");
        let (crt, key) = (dir.path().join("apiserver.crt"), dir.path().join("apiserver.key"));
        ca.issue(&ServingCertSans::of("m", Ipv4Addr::LOCALHOST, None), &crt, &key).expect("issued");
        (dir, ca, (crt, key), SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST))))
    }

    /// A tiny HTTP "etcd" on loopback answering `GET /health` with what `healthy` says now.
    fn fake_etcd(healthy: Arc<AtomicBool>) -> SocketAddr {
        let etcd = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("fake etcd");
        let address = etcd.local_addr().expect("bound");
        std::thread::spawn(move || {
            for stream in etcd.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let health = healthy.load(Ordering::SeqCst);
                let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{{\"health\":\"{health}\"}}").as_bytes());
            }
        });
        address
    }

    /// A stand-in whose "etcd" is a tiny HTTP server answering `health` as told.
    #[test]
    fn readyz_follows_etcd_and_tls_follows_the_sans() {
        let (_dir, ca, (crt, key), address) = pair_and_address();
        let (ip, vip) = (Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2));
        let healthy = Arc::new(AtomicBool::new(true));
        let etcd_addr = fake_etcd(Arc::clone(&healthy));
        let stand_in = ApiserverStandIn::start("m", address, &crt, &key, etcd_addr, None).expect("starts");
        let client = VerifyingClient::new(ca.cert_der()).expect("client");
        assert_eq!(client.readyz(address, ip).expect("loopback"), Readyz::Ready);
        healthy.store(false, Ordering::SeqCst);
        // Past half the check's timeout etcd is asked again (`EtcdReadyCheck`).
        std::thread::sleep(Duration::from_millis(ETCD_READY_CHECK_EVERY_MS));
        match client.readyz(address, ip).expect("loopback") {
            Readyz::NotReady(why) => assert!(why.contains("503"), "{why}"),
            other => panic!("etcd unhealthy must make /readyz fail, got {other}"),
        }
        match client.readyz(address, vip).expect("loopback") {
            Readyz::TlsRejected(why) => assert!(why.contains("not valid for name") || why.contains("NotValidForName"), "{why}"),
            other => panic!("a cert without the VIP SAN must not verify for the VIP, got {other}"),
        }
        stand_in.stop();
        assert!(matches!(client.readyz(address, ip).expect("loopback"), Readyz::Unreachable(_)));
        assert!(matches!(client.readyz(SocketAddr::from((Ipv4Addr::new(10, 0, 20, 100), 6443)), ip), Err(LabError::NotLoopback(_))));
    }

    /// kube-apiserver's dynamic serving cert: a new pair on disk is served without a restart; a
    /// pair moved away leaves the last good one served (docs/facts.md).
    #[test]
    fn a_new_pair_on_disk_is_served_without_a_restart_and_a_missing_one_keeps_the_last() {
        let (dir, ca, (crt, key), address) = pair_and_address();
        let (ip, vip) = (Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 3));
        let etcd_addr = fake_etcd(Arc::new(AtomicBool::new(true)));
        let stand_in = ApiserverStandIn::start("m", address, &crt, &key, etcd_addr, None).expect("starts");
        let client = VerifyingClient::new(ca.cert_der()).expect("client");
        assert!(matches!(client.readyz(address, vip).expect("loopback"), Readyz::TlsRejected(_)), "no VIP SAN yet");
        // The old pair moved aside (step 0.3): still served.
        let aside = dir.path().join("aside");
        std::fs::create_dir(&aside).expect("aside");
        std::fs::rename(&crt, aside.join("apiserver.crt")).expect("move crt");
        std::fs::rename(&key, aside.join("apiserver.key")).expect("move key");
        assert_eq!(client.readyz(address, ip).expect("loopback"), Readyz::Ready, "the last good pair stays served");
        // A new pair with the VIP: served at the next handshake, the same process.
        ca.issue(&ServingCertSans::of("m", ip, Some((vip, "api.lab.test"))), &crt, &key).expect("reissued");
        assert_eq!(client.readyz(address, vip).expect("loopback"), Readyz::Ready, "the new pair is served without a restart");
        stand_in.stop();
    }

    #[test]
    fn a_node_line_gives_the_role_label_address_and_kubelet_version_when_it_has_them() {
        let full = node_object("cp-1 Ready control-plane 127.0.30.10 v1.34.2").expect("a node");
        assert_eq!(full["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "");
        assert_eq!(full["status"]["addresses"][0], serde_json::json!({"type": "InternalIP", "address": "127.0.30.10"}));
        assert_eq!(full["status"]["nodeInfo"]["kubeletVersion"], "v1.34.2");
        assert_eq!(full["status"]["conditions"][0]["status"], "True");
        // The kubelet stand-in's three columns: no addresses, no version, as before.
        let worker = node_object("w NotReady <none>").expect("a node");
        assert!(worker["metadata"].get("labels").is_none());
        assert!(worker["status"].get("addresses").is_none() && worker["status"].get("nodeInfo").is_none());
        assert_eq!(worker["status"]["conditions"][0]["status"], "False");
        assert!(node_object("lonely").is_none());
    }

    /// The executor's own Kubernetes client (kube-rs, rustls, the loopback guard on) reads the
    /// nodes and kubeadm-config from a stand-in, and gets no answer once its etcd is unhealthy.
    #[test]
    fn the_executors_kubernetes_client_reads_nodes_and_configmaps_from_the_stand_in() {
        let (dir, _, (crt, key), address) = pair_and_address();
        let healthy = Arc::new(AtomicBool::new(true));
        let etcd_addr = fake_etcd(Arc::clone(&healthy));
        let objects = ApiObjects {
            nodes: dir.path().join("nodes"),
            cluster_configuration: dir.path().join("kubeadm-config.yaml"),
            cluster_info: dir.path().join("cluster-info.yaml"),
            served: Arc::new(AtomicUsize::new(0)),
        };
        let served = Arc::clone(&objects.served);
        std::fs::write(&objects.nodes, "m Ready control-plane\nw NotReady <none>\n").expect("nodes");
        std::fs::write(
            &objects.cluster_configuration,
            "kind: ClusterConfiguration\ncontrolPlaneEndpoint: 127.0.0.9:6443\napiServer:\n  certSANs:\n  - 127.0.0.9\n  - api.lab.test\n",
        )
        .expect("config");
        let _stand_in = ApiserverStandIn::start("m", address, &crt, &key, etcd_addr, Some(objects)).expect("starts");
        let ca_pem = std::fs::read(dir.path().join("ca.crt")).expect("ca.crt");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, crate::executor_lab::kubeconfig_file(&format!("https://{address}"), &ca_pem)).expect("kubeconfig");
        let api = plan_exec::kubernetes::KubeApi::from_file(&kubeconfig, plan_exec::guard::Guard::LOOPBACK_ONLY).expect("a client");
        let nodes = api.nodes().expect("nodes");
        let seen: Vec<(String, bool)> = nodes.iter().map(|n| (n.name.clone(), n.is_ready())).collect();
        assert_eq!(seen, [("m".to_string(), true), ("w".to_string(), false)]);
        let endpoint = api.kubeadm_endpoint().expect("kubeadm-config").expect("present");
        assert_eq!(endpoint.control_plane_endpoint.as_deref(), Some("127.0.0.9:6443"));
        assert_eq!(api.cluster_info_server().expect("cluster-info"), None, "no cluster-info file: the ConfigMap is not found");
        healthy.store(false, Ordering::SeqCst);
        assert_eq!(served.load(Ordering::SeqCst), 3, "nodes, kubeadm-config, cluster-info");
        match api.nodes() {
            Err(e) => assert!(e.to_string().contains("etcdserver"), "{e}"),
            Ok(nodes) => panic!("no healthy etcd, no answer; got {nodes:?}"),
        }
    }
}

#[cfg(test)]
mod ready_check_tests {
    use super::*;

    /// A "etcd" answering `GET /health` healthy or not as `healthy` says, counting its asks.
    fn counting_etcd(healthy: Arc<AtomicBool>, asks: Arc<AtomicUsize>) -> SocketAddr {
        let etcd = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("fake etcd");
        let address = etcd.local_addr().expect("bound");
        std::thread::spawn(move || {
            for stream in etcd.incoming() {
                let Ok(mut s) = stream else { continue };
                asks.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{{\"health\":\"{}\"}}", healthy.load(Ordering::SeqCst)).as_bytes());
            }
        });
        address
    }

    /// kube-apiserver's readiness check asks etcd at most once per half its timeout: many
    /// `/readyz` at once cost one ask, and a change in etcd is seen once that time passed.
    #[test]
    fn etcd_is_asked_at_most_once_per_half_the_checks_timeout() {
        let (healthy, asks) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let check = EtcdReadyCheck::new(counting_etcd(Arc::clone(&healthy), Arc::clone(&asks)));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(check.check_at(t0), Ok(()));
        healthy.store(false, Ordering::SeqCst);
        for ms in (0..ETCD_READY_CHECK_EVERY_MS).step_by(10) {
            assert_eq!(check.check_at(at(ms)), Ok(()), "{ms} ms after the ask: its answer");
        }
        assert_eq!(asks.load(Ordering::SeqCst), 1, "one ask of etcd for all of them");
        assert!(check.check_at(at(ETCD_READY_CHECK_EVERY_MS)).is_err(), "half the timeout on, etcd is asked and found unhealthy");
        assert!(check.check_at(at(ETCD_READY_CHECK_EVERY_MS + 10)).is_err(), "and that answer is kept");
        assert_eq!(asks.load(Ordering::SeqCst), 2);
    }
}
