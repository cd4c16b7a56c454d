//! The observer against real servers this test starts on loopback: etcd (Debian's etcd-server,
//! read with etcdctl), HAProxy with a stats socket in a tempdir, and a small fake Kubernetes API
//! server on 127.0.0.1 read through the `kube` client. Each comparison is with the twin's state,
//! as the runner makes it; one test runs the runner itself and sees it halt on etcd drift.
//!
//! Host commands run here, on this machine, through [`HostsHere`]: a transport that runs what the
//! observer would run on a host with `bash` (`sudo` a no-op function, `/etc/kubernetes` mapped to
//! the host's fixture directory). Under `CI=true` a missing etcd/etcdctl/haproxy fails the test.

use crate::common;

use plan_exec::etcd::EtcdProbe;
use plan_exec::guard::Guard;
use plan_exec::haproxy::LbProbe;
use plan_exec::journal::{Event, Journal};
use plan_exec::kubernetes::KubeconfigSource;
use plan_exec::observe::{self, Drift, Observation, Observer, Probes, Scope};
use plan_exec::runner::{Operator, Outcome, Recovery, RunOptions, Runner};
use plan_exec::target::Place;
use plan_exec::transport::{Completed, LocalTransport, Request, Transport};
use plan_exec::ExecError;
use plan_model::cluster::Cluster;
use plan_model::plan::{Phase, Step};
use plan_model::topology::Topology;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOPBACK: &str = include_str!("../../scenarios/loopback.yaml");
const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const HAPROXY: &str = "/usr/sbin/haproxy";
/// Bound on waiting for a server to come up or a state to settle.
const WAIT_S: u64 = 20;
const CP1: Ipv4Addr = Ipv4Addr::new(127, 0, 20, 10);

/// Whether `binary` is there; under CI a missing one is a failure.
fn present(binary: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{binary} is missing: CI must install it");
    eprintln!("skipped: {binary} is missing");
    false
}

fn topology(yaml: &str) -> Topology {
    Topology::new(&plan_model::validate::parse_scenario(yaml).expect("the loopback scenario parses"))
}

fn free_port(address: Ipv4Addr) -> u16 {
    TcpListener::bind((address, 0)).expect("a free loopback port").local_addr().expect("bound").port()
}

/// Two distinct free ports: both listeners are held until both are chosen, so the second choice
/// cannot return the first port again (etcd's client and peer URLs would then collide).
fn free_ports(address: Ipv4Addr) -> (u16, u16) {
    let first = TcpListener::bind((address, 0)).expect("a free loopback port");
    let second = TcpListener::bind((address, 0)).expect("a second free loopback port");
    (first.local_addr().expect("bound").port(), second.local_addr().expect("bound").port())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(WAIT_S), "{what}: not within {WAIT_S} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process of the test, killed when dropped (a failing test included).
struct Server {
    child: Child,
}

impl Server {
    fn start(program: &str, args: &[String], log: &Path) -> Server {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .env_remove("ETCD_NAME")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Server { child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs host commands on this machine: `sudo` is a no-op function, and `/etc/kubernetes` is the
/// host's own directory under `root` (where a test keeps files).
///
/// A loopback host is this machine, in this machine's network (etcd listens on 127.0.20.10 here),
/// so its commands run without the local transport's network namespace; the guard checks their
/// text as the SSH transport does for a remote command (what it would ask the host is refused).
struct HostsHere {
    local: LocalTransport,
    guard: Guard,
    root: PathBuf,
}

impl HostsHere {
    fn new(root: &Path) -> HostsHere {
        HostsHere { local: LocalTransport { guard: Guard::OPEN }, guard: Guard::LOOPBACK_ONLY, root: root.to_path_buf() }
    }
}

impl Transport for HostsHere {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let Place::Host(host) = place else { return LocalTransport { guard: self.guard }.run(place, request) };
        // This stand-in asks a host nothing: a command that needs the host's word is refused.
        let must = self.guard.check_remote_command(&host.name, request.shell)?;
        if !must.is_empty() {
            return Err(ExecError::Input(format!("{}: the test's hosts cannot answer the guard's {must:?}", host.name)));
        }
        let mapped = format!("{}/{}/etc/kubernetes", self.root.display(), host.name);
        let shell = format!("sudo() {{ \"$@\"; }}; {}", request.shell.replace("/etc/kubernetes", &mapped));
        self.local.run(&Place::here(None), &Request { shell: &shell, ..*request })
    }
}

struct Etcd {
    _server: Server,
    dir: tempfile::TempDir,
    endpoint: String,
}

impl Etcd {
    /// One member named lab-cp-1 on lab-cp-1's loopback address, at free ports.
    fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = free_ports(CP1);
        let endpoint = format!("http://{CP1}:{client}");
        let peer_url = format!("http://{CP1}:{peer}");
        let args = vec![
            "--name=lab-cp-1".to_string(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={endpoint}"),
            format!("--advertise-client-urls={endpoint}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=lab-cp-1={peer_url}"),
            "--heartbeat-interval=25".to_string(),
            "--election-timeout=250".to_string(),
        ];
        let server = Server::start(ETCD, &args, &dir.path().join("etcd.log"));
        let etcd = Etcd { _server: server, dir, endpoint };
        wait_until("etcd answers", || etcd.etcdctl(&["endpoint", "health"]).0);
        etcd
    }

    fn etcdctl(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg("--dial-timeout=1s")
            .args(args)
            .output()
            .expect("etcdctl runs");
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    fn probe(&self) -> Probes {
        Probes { etcd: Some(EtcdProbe::plain(&self.endpoint)), ..Probes::files_only() }
    }
}

fn shown(drift: &[Drift]) -> Vec<String> {
    drift.iter().map(Drift::to_string).collect()
}

fn observe_scope(t: &Topology, c: &Cluster, transport: &mut dyn Transport, scope: Scope, probes: Probes) -> Observation {
    observe::observe(t, c, transport, scope, &mut Observer::new(probes)).expect("observing is allowed")
}

const ETCD_ONLY: Scope = Scope { files: false, etcd: true, lb: false, kube: false, hypervisors: false };

#[test]
fn etcd_membership_from_real_etcd_is_compared_with_the_twin() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    if !present(ETCD) || !present(ETCDCTL) {
        return;
    }
    let t = topology(LOOPBACK);
    let etcd = Etcd::start();
    let mut transport = HostsHere::new(etcd.dir.path());
    let twin = Cluster::initial(&t);
    let cp1 = t.resolve("lab-cp-1").unwrap();
    let cp2 = t.resolve("lab-cp-2").unwrap();

    let seen = observe_scope(&t, &twin, &mut transport, ETCD_ONLY, etcd.probe());
    assert!(
        observe::drift(&t, &seen, &[&twin]).is_empty(),
        "one voter, as the twin says: {:?}",
        shown(&observe::drift(&t, &seen, &[&twin]))
    );
    let healthy = seen.facts.iter().find(|f| f.field == observe::Field::EtcdHealthy).expect("the voter's health is read");
    assert_eq!((healthy.node.as_str(), healthy.seen), ("lab-cp-1", observe::Seen::Yes));

    // Behind the twin's back: lab-cp-2 added as a learner (never started).
    let peer = format!("--peer-urls=http://127.0.20.11:{}", free_port(Ipv4Addr::new(127, 0, 20, 11)));
    let (added, out) = etcd.etcdctl(&["member", "add", "lab-cp-2", &peer, "--learner"]);
    assert!(added, "member add: {out}");
    let seen = observe_scope(&t, &twin, &mut transport, ETCD_ONLY, etcd.probe());
    let drift = shown(&observe::drift(&t, &seen, &[&twin]));
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].starts_with("lab-cp-2: etcd learner: twin no, observed yes (http://127.0.20.11:"), "{drift:?}");
    assert!(drift[0].ends_with("(learner, never started))"), "{drift:?}");

    // The twin after `member add --learner` agrees; the overlay writes the membership over a twin.
    let mut added_twin = twin;
    added_twin.learners.set(cp2, true);
    assert!(observe::drift(&t, &seen, &[&added_twin]).is_empty());
    let believed = observe::overlay(&t, &seen, &twin);
    assert!(believed.learners.contains(cp2) && !believed.etcd_started.contains(cp2) && believed.voters.contains(cp1));

    // A twin that says lab-cp-2 is a started voter: three differences, each named.
    let mut voter_twin = twin;
    voter_twin.voters.set(cp2, true);
    voter_twin.etcd_started.set(cp2, true);
    let drift = shown(&observe::drift(&t, &seen, &[&voter_twin]));
    assert!(drift.iter().any(|d| d.starts_with("lab-cp-2: etcd voter: twin yes, observed no")), "{drift:?}");
    assert!(drift.iter().any(|d| d.starts_with("lab-cp-2: etcd learner: twin no, observed yes")), "{drift:?}");

    // etcd gone: the observer says it got no answer, which is drift too.
    drop(etcd._server);
    let seen = observe_scope(&t, &twin, &mut transport, ETCD_ONLY, Etcd::probe_of(&etcd.endpoint));
    let drift = shown(&observe::drift(&t, &seen, &[&twin]));
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].starts_with("etcd via lab-cp-1: reachable: twin up, observed no answer (member list:"), "{drift:?}");
}

impl Etcd {
    fn probe_of(endpoint: &str) -> Probes {
        Probes { etcd: Some(EtcdProbe::plain(endpoint)), ..Probes::files_only() }
    }
}

/// Files for the three fixture hosts as the twin's initial state has them: kubelets on the master's
/// address, the master's apiserver cert without the VIP SAN.
fn initial_files(root: &Path) {
    for host in ["lab-cp-1", "lab-wk-1", "lab-wk-2"] {
        let dir = root.join(host).join("etc/kubernetes");
        std::fs::create_dir_all(dir.join("pki")).expect("fixture dir");
        std::fs::write(dir.join("kubelet.conf"), "clusters:\n- cluster:\n    server: https://127.0.20.10:6443\n").expect("kubelet.conf");
    }
    common::apiserver_cert(&root.join("lab-cp-1/etc/kubernetes/pki"), "DNS:lab-cp-1,IP:127.0.20.10");
}

/// Says yes to every phase; never needed by hand here.
struct Yes;

impl Operator for Yes {
    fn confirm_phase(&mut self, _phase: &Phase, _steps: &[&Step]) -> bool {
        true
    }
    fn confirm_recovery(&mut self, _recovery: &Recovery) -> bool {
        false
    }
    fn by_hand(&mut self, _step: &Step, _instruction: &str, _task: &plan_model::hand::HandTask) -> bool {
        false
    }
    fn starting(&mut self, _step: &Step, _index: usize, _invocation: &plan_exec::invocation::Invocation, _eta_s: u32) {}
    fn finished(&mut self, _step: &Step, _invocation: &plan_exec::invocation::Invocation, _done: &Result<Completed, String>) {}
}

#[test]
fn the_runner_halts_before_the_preflight_when_real_etcd_has_a_member_the_twin_has_not() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    if !present(ETCD) || !present(ETCDCTL) || !present("/usr/bin/openssl") {
        return;
    }
    let t = topology(LOOPBACK);
    let etcd = Etcd::start();
    initial_files(etcd.dir.path());
    let peer = format!("--peer-urls=http://127.0.20.11:{}", free_port(Ipv4Addr::new(127, 0, 20, 11)));
    let (added, out) = etcd.etcdctl(&["member", "add", "lab-cp-2", &peer, "--learner"]);
    assert!(added, "member add: {out}");

    // The plan's first step, the pre-flight: it checks the cluster is healthy, so etcd is observed;
    // the twin says etcd has one voter there. The halt comes before any of its commands runs.
    let mut plan = plan_model::planner::generate(&t);
    plan.steps.truncate(1);
    assert_eq!(plan.steps[0].id, "0.1");
    let mut transport = HostsHere::new(etcd.dir.path());
    let mut journal = Journal::in_memory();
    let mut operator = Yes;
    let options = RunOptions::new(Duration::from_secs(10), etcd.probe());
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut operator, options).run().expect("the run ends");
    let Outcome::Halted(halt) = outcome else { panic!("expected a halt, got {outcome:?}") };
    assert_eq!(halt.step, "0.1");
    assert_eq!(halt.reason, "reality differs from the twin before the step");
    let drift = shown(&halt.drift);
    assert_eq!(drift.len(), 1, "only etcd differs (the files match the twin): {drift:?}");
    assert!(drift[0].starts_with("lab-cp-2: etcd learner: twin no, observed yes"), "{drift:?}");
    let journalled = journal.records.iter().any(|r| serde_json::to_string(r).is_ok_and(|j| j.contains("etcd learner")));
    assert!(journalled, "the drift is journalled");
}

struct Haproxy {
    _server: Server,
    socket: PathBuf,
    config: PathBuf,
}

impl Haproxy {
    fn start(dir: &Path, vip_port: u16, pool: &[(&str, SocketAddr)]) -> Haproxy {
        let socket = dir.join("haproxy.sock");
        let config = dir.join("haproxy.cfg");
        let mut text = format!(
            "global\n    stats socket {} mode 600 level admin\n\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\n\
             frontend apiserver_proxy\n    bind 127.0.20.99:{vip_port}\n    default_backend apiserver_nodes\n\n\
             backend apiserver_nodes\n    default-server inter 100ms fall 1 rise 1\n",
            socket.display()
        );
        for (name, address) in pool {
            text.push_str(&format!("    server {name} {address} check\n"));
        }
        std::fs::write(&config, text).expect("haproxy.cfg");
        let args = vec!["-db".to_string(), "-f".to_string(), config.display().to_string()];
        let server = Server::start(HAPROXY, &args, &dir.join("haproxy.log"));
        wait_until("haproxy's stats socket", || std::os::unix::net::UnixStream::connect(&socket).is_ok());
        Haproxy { _server: server, socket, config }
    }

    fn probe(&self) -> Probes {
        let lb = LbProbe { config: self.config.display().to_string(), stats_socket: Some(self.socket.display().to_string()) };
        Probes { lb: Some(lb), ..Probes::files_only() }
    }
}

const LB_ONLY: Scope = Scope { files: false, etcd: false, lb: true, kube: false, hypervisors: false };

#[test]
fn the_lb_pool_from_real_haproxy_is_compared_with_the_twin() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    if !present(HAPROXY) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let vip_port = free_port(Ipv4Addr::new(127, 0, 20, 99));
    let t = topology(&LOOPBACK.replace("6443", &vip_port.to_string()));
    let cp1 = t.resolve("lab-cp-1").unwrap();
    let cp2 = t.resolve("lab-cp-2").unwrap();
    // lab-cp-1's "apiserver" accepts connections (the TCP check passes); nothing listens for lab-cp-2.
    let apiserver = TcpListener::bind((CP1, 0)).expect("a listener for lab-cp-1");
    let up = apiserver.local_addr().expect("bound");
    let down = SocketAddr::from((Ipv4Addr::new(127, 0, 20, 11), free_port(Ipv4Addr::new(127, 0, 20, 11))));
    let lb = Haproxy::start(dir.path(), vip_port, &[("lab-cp-1", up), ("lab-cp-2", down)]);
    let mut transport = HostsHere::new(dir.path());

    // The twin with both in the running pool: lab-cp-2 is no control plane yet, so its check fails.
    let mut twin = Cluster::initial(&t);
    twin.lb_running.frontend = true;
    twin.lb_running.pool = twin.lb_running.pool.with(cp1).with(cp2);
    let mut last = Vec::new();
    wait_until("haproxy marks lab-cp-2 down", || {
        let seen = observe_scope(&t, &twin, &mut transport, LB_ONLY, lb.probe());
        last = shown(&observe::drift(&t, &seen, &[&twin]));
        last.is_empty()
    });
    let seen = observe_scope(&t, &twin, &mut transport, LB_ONLY, lb.probe());
    let up_facts: Vec<(String, observe::Seen)> =
        seen.facts.iter().filter(|f| f.field == observe::Field::LbServerUp).map(|f| (f.node.clone(), f.seen)).collect();
    assert_eq!(up_facts, vec![("lab-cp-1".to_string(), observe::Seen::Yes), ("lab-cp-2".to_string(), observe::Seen::No)]);

    // A twin whose pool has lab-cp-1 only: lab-cp-2 is drift, in the config and loaded.
    let mut one = twin;
    one.lb_running.pool = one.lb_running.pool.without(cp2);
    let drift = shown(&observe::drift(&t, &seen, &[&one]));
    assert!(drift.iter().any(|d| d.starts_with("lab-cp-2: in the LB pool (config): twin no, observed yes")), "{drift:?}");
    assert!(
        drift.iter().any(|d| d.starts_with("lab-cp-2: in the LB pool (loaded): twin no, observed yes (show stat apiserver_nodes")),
        "{drift:?}"
    );
    assert_eq!(observe::overlay(&t, &seen, &one).lb_running.pool, twin.lb_running.pool);

    // The twin before the LB is deployed: no frontend, no pool.
    let before = Cluster::initial(&t);
    let drift = shown(&observe::drift(&t, &seen, &[&before]));
    assert!(drift.iter().any(|d| d.starts_with("lab-lb: LB frontend at the VIP: twin no, observed yes")), "{drift:?}");

    // A stats socket that is not there: no answer, drift.
    let wrong = Probes {
        lb: Some(LbProbe {
            config: lb.config.display().to_string(),
            stats_socket: Some(dir.path().join("nope.sock").display().to_string()),
        }),
        ..Probes::files_only()
    };
    let seen = observe_scope(&t, &twin, &mut transport, LB_ONLY, wrong);
    let drift = shown(&observe::drift(&t, &seen, &[&twin]));
    assert!(drift.iter().any(|d| d.starts_with("lab-lb stats socket: reachable: twin up, observed no answer")), "{drift:?}");
    drop(apiserver);
}

/// A fake Kubernetes API server on 127.0.0.1: answers GETs of the paths it holds with JSON, every
/// other path with 404; records the paths asked. Stops when dropped.
struct FakeApi {
    address: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    fn start(routes: Vec<(String, String)>) -> FakeApi {
        FakeApi::start_changing(routes.into_iter().map(|(path, json)| (path, vec![json])).collect())
    }

    /// Each path answers its JSONs in turn, one per request, the last one for ever after.
    fn start_changing(routes: Vec<(String, Vec<String>)>) -> FakeApi {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback port");
        let address = listener.local_addr().expect("bound");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (asked_in, stop_in) = (asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_in.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = serve(stream, &routes, &asked_in);
            }
        });
        FakeApi { address, asked, stop, thread: Some(thread) }
    }
}

fn serve(stream: TcpStream, routes: &[(String, Vec<String>)], asked: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            if header.trim().is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
        let times = {
            let mut asked = asked.lock().expect("not poisoned");
            asked.push(path.clone());
            asked.iter().filter(|p| **p == path).count()
        };
        let (status, answer) = match routes.iter().find(|(p, _)| *p == path) {
            Some((_, jsons)) => ("200 OK", jsons[(times - 1).min(jsons.len() - 1)].clone()),
            None => (
                "404 Not Found",
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404}"#.to_string(),
            ),
        };
        write!(writer, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}", answer.len())?;
        writer.flush()?;
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn node_json(name: &str, ready: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}"}},"status":{{"conditions":[{{"type":"MemoryPressure","status":"False"}},{{"type":"Ready","status":"{ready}"}}]}}}}"#
    )
}

fn config_map(namespace: &str, name: &str, key: &str, value: &str) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {key: value}})
        .to_string()
}

fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n\
             contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\ncurrent-context: lab\nusers:\n- name: lab\n  user:\n    token: not-a-secret\n"
        ),
    )
    .expect("kubeconfig");
    path
}

const KUBE_ONLY: Scope = Scope { files: false, etcd: false, lb: false, kube: true, hypervisors: false };

#[test]
fn the_kubernetes_api_is_read_with_kube_from_a_fake_api_server() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let t = topology(LOOPBACK);
    let nodes = format!(
        r#"{{"kind":"NodeList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[{},{},{}]}}"#,
        node_json("lab-cp-1", "True"),
        node_json("lab-wk-1", "True"),
        node_json("lab-wk-2", "False")
    );
    let cluster_configuration = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\n";
    let cluster_info = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.20.10:6443\n  name: \"\"\n";
    let api = FakeApi::start(vec![
        ("/api/v1/nodes".to_string(), nodes),
        (
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config".to_string(),
            config_map("kube-system", "kubeadm-config", "ClusterConfiguration", cluster_configuration),
        ),
        (
            "/api/v1/namespaces/kube-public/configmaps/cluster-info".to_string(),
            config_map("kube-public", "cluster-info", "kubeconfig", cluster_info),
        ),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = kubeconfig(dir.path(), &format!("http://{}", api.address));
    let probes = Probes { kube: Some(KubeconfigSource::File(path.clone())), guard: Guard::LOOPBACK_ONLY, ..Probes::files_only() };
    let mut transport = HostsHere::new(dir.path());
    let twin = Cluster::initial(&t);
    let seen = observe_scope(&t, &twin, &mut transport, KUBE_ONLY, probes.clone());
    assert!(seen.unreachable.is_empty(), "{:?}", seen.unreachable);
    let asked = api.asked.lock().expect("not poisoned").clone();
    assert!(asked.contains(&"/api/v1/nodes".to_string()), "{asked:?}");

    // lab-wk-2 is NotReady where the twin says Ready; the rest agrees (kubeadm-config not patched).
    let drift = shown(&observe::drift(&t, &seen, &[&twin]));
    assert_eq!(drift, vec!["lab-wk-2: node Ready: twin yes, observed no (Ready: False)".to_string()]);
    let info = seen.facts.iter().find(|f| f.field == observe::Field::ClusterInfoOnVip).expect("cluster-info is read");
    assert_eq!((info.seen, info.evidence.as_str()), (observe::Seen::No, "server: https://127.0.20.10:6443"));

    // A twin past the kubeadm-config patch: the unpatched ConfigMap is drift.
    let mut patched = twin;
    patched.kubeadm_endpoint = true;
    let drift = shown(&observe::drift(&t, &seen, &[&patched]));
    assert!(
        drift.iter().any(|d| d.starts_with("kubeadm-config: controlPlaneEndpoint is the VIP with its SANs: twin yes, observed no")),
        "{drift:?}"
    );
    // A new master the twin says joined but the API does not list.
    let mut joined = twin;
    joined.joined.set(t.resolve("lab-cp-2").unwrap(), true);
    let drift = shown(&observe::drift(&t, &seen, &[&joined]));
    assert!(drift.iter().any(|d| d == "lab-cp-2: registered node: twin yes, observed no (not listed by the API)"), "{drift:?}");

    // The API server gone: no answer, drift.
    let address = api.address;
    drop(api);
    let seen = observe_scope(&t, &twin, &mut transport, KUBE_ONLY, probes);
    let drift = shown(&observe::drift(&t, &seen, &[&twin]));
    assert!(
        drift.iter().any(|d| d.starts_with(&format!("kubernetes API http://{address}/: reachable: twin up, observed no answer"))),
        "{drift:?}"
    );
}

// The off-loopback server in these tests is in TEST-NET-1 (RFC 5737), never the homelab's
// addresses: should the guard ever fail, nothing would reach a real host.
#[test]
fn the_guard_refuses_a_kubeconfig_off_loopback_before_any_connection() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let t = topology(LOOPBACK);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = kubeconfig(dir.path(), "https://192.0.2.99:6443");
    let probes = Probes { kube: Some(KubeconfigSource::File(path)), guard: Guard::LOOPBACK_ONLY, ..Probes::files_only() };
    let twin = Cluster::initial(&t);
    let refused = observe::observe(&t, &twin, &mut HostsHere::new(dir.path()), KUBE_ONLY, &mut Observer::new(probes));
    let error = refused.expect_err("the guard refuses");
    assert!(matches!(error, ExecError::NotLoopback { .. }), "{error}");
    assert!(error.to_string().contains("Kubernetes API server https://192.0.2.99:6443/"), "{error}");
}

#[test]
fn plan_execute_reads_kubeconfig_from_the_environment_and_refuses_its_api_server_off_loopback() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = kubeconfig(dir.path(), "https://192.0.2.99:6443");
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").expect("an empty ssh config");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/loopback.yaml");
    let state = dir.path().join("state");
    let output = Command::new(env!("CARGO_BIN_EXE_plan"))
        .args([
            "--scenario",
            scenario,
            "execute",
            "--yes",
            "--override-check",
            "guard test",
            "--skip-observer",
            "etcd",
            "--skip-observer",
            "lb",
        ])
        .arg("--state-dir")
        .arg(&state)
        .arg("--ssh-config")
        .arg(&ssh_config)
        .env("PLAN_LOOPBACK_ONLY", "1")
        .env("KUBECONFIG", &path)
        // A proxy in the developer's environment would be refused first (kube honours HTTPS_PROXY).
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("the plan binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("refused Kubernetes API server https://192.0.2.99:6443/"), "{text}");
    let journal = std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default();
    assert!(!journal.contains("command-started"), "nothing ran: {journal}");
}

/// The runner on the loopback plan's first step, the fake API answering lab-wk-1's Ready as
/// `ready` says, one answer per read of the nodes (the last for ever after): the outcome, the
/// step's `observed` records (when, how many facts differed), and how many times the nodes were read.
fn run_first_step_with_wk1_ready(ready: &[&str]) -> (Outcome, Vec<(String, usize)>, bool, usize) {
    let t = topology(LOOPBACK);
    let nodes = |wk1: &str| {
        format!(
            r#"{{"kind":"NodeList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[{},{},{}]}}"#,
            node_json("lab-cp-1", "True"),
            node_json("lab-wk-1", wk1),
            node_json("lab-wk-2", "True")
        )
    };
    let cluster_configuration = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\n";
    let cluster_info = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.20.10:6443\n  name: \"\"\n";
    let api = FakeApi::start_changing(vec![
        ("/api/v1/nodes".to_string(), ready.iter().map(|r| nodes(r)).collect()),
        (
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config".to_string(),
            vec![config_map("kube-system", "kubeadm-config", "ClusterConfiguration", cluster_configuration)],
        ),
        (
            "/api/v1/namespaces/kube-public/configmaps/cluster-info".to_string(),
            vec![config_map("kube-public", "cluster-info", "kubeconfig", cluster_info)],
        ),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    initial_files(dir.path());
    let path = kubeconfig(dir.path(), &format!("http://{}", api.address));
    let probes = Probes { kube: Some(KubeconfigSource::File(path)), guard: Guard::LOOPBACK_ONLY, ..Probes::files_only() };
    let mut plan = plan_model::planner::generate(&t);
    plan.steps.truncate(1);
    let mut transport = HostsHere::new(dir.path());
    let mut journal = Journal::in_memory();
    let options = RunOptions::new(Duration::from_secs(10), probes);
    let outcome = Runner::new(&t, &plan, &mut transport, &mut journal, &mut Yes, options).run().expect("the run ends");
    let observed = journal
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Observed { step, when, drift } if step == "0.1" => Some((when.clone(), drift.len())),
            _ => None,
        })
        .collect();
    let started = journal.records.iter().any(|r| matches!(&r.event, Event::StepStarted { step } if step == "0.1"));
    let reads = api.asked.lock().expect("not poisoned").iter().filter(|p| *p == "/api/v1/nodes").count();
    (outcome, observed, started, reads)
}

/// Before a step, a node NotReady for a moment is the only difference (a fact that lags: its
/// kubelet's heartbeat): the runner looks again, as after a step, and starts the step once the
/// API says Ready on two looks in a row, instead of halting at once (`after-settling`, nothing
/// left, journalled).
#[test]
fn a_node_not_ready_for_a_moment_before_a_step_is_looked_at_again_and_the_step_starts() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let (outcome, observed, started, reads) = run_first_step_with_wk1_ready(&["False", "False", "True"]);
    assert_eq!(observed.first(), Some(&("before".to_string(), 1)), "the first look saw lab-wk-1 NotReady: {observed:?}");
    assert!(observed.contains(&("after-settling".to_string(), 0)), "looked at again until it settled: {observed:?}");
    assert!(started, "the step started: {observed:?}");
    // What 0.1's own commands do on this machine is not this test's business; the look before it is.
    if let Outcome::Halted(halt) = &outcome {
        assert_ne!(halt.reason, "reality differs from the twin before the step", "{halt:?}");
    }
    assert!(reads >= 4, "the nodes were read until lab-wk-1 was Ready twice: {reads}");
}

/// A Ready that flaps (NotReady, Ready once, NotReady again) is not taken as settled on its one
/// good look: the second look finds it NotReady and the run halts before the step.
#[test]
fn a_node_ready_for_one_look_only_before_a_step_halts_the_run_before_it() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let (outcome, observed, started, _) = run_first_step_with_wk1_ready(&["False", "True", "False"]);
    let Outcome::Halted(halt) = &outcome else { panic!("a halt: {outcome:?}") };
    assert_eq!((halt.step.as_str(), halt.reason.as_str()), ("0.1", "reality differs from the twin before the step"), "{halt:?}");
    assert_eq!(shown(&halt.drift), vec!["lab-wk-1: node Ready: twin yes, observed no (Ready: False)".to_string()]);
    assert!(observed.contains(&("after-settling".to_string(), 1)), "{observed:?}");
    assert!(!started, "the step did not start: {observed:?}");
}
