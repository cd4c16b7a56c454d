//! The SSH transport: the `openssh` crate over the system's OpenSSH client, one multiplexed
//! ControlMaster session per host, the user's ssh config honoured, host keys checked strictly.

use crate::confirm::{Ask, HostMustConfirm};
use crate::guard::Guard;
use crate::target::{HostTarget, Place};
use crate::transport::{Completed, ReadAndRun, Request, Transport};
use crate::workstation::WorkstationHost;
use crate::ExecError;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Bound on opening one SSH connection.
pub const CONNECT_TIMEOUT_S: u64 = 15;
/// Keep-alive interval: a dead connection is noticed within a few of these.
pub const SERVER_ALIVE_INTERVAL_S: u64 = 15;

/// How long an idle ControlMaster outlives its last use (`ControlPersist`): bounded, so a master
/// left by an executor that was killed ends on its own (the audit found 746 left with `yes`).
pub const CONTROL_PERSIST_S: usize = 300;
/// A session idle this long is checked (and reopened when its master ended) before its next
/// command: an operator who answered a prompt after [`CONTROL_PERSIST_S`] finds the master gone.
pub const SESSION_RECHECK_S: u64 = CONTROL_PERSIST_S as u64 / 2;
/// Bound on asking one stale master to exit (`ssh -O exit`).
pub const MASTER_EXIT_TIMEOUT_S: u64 = 5;
/// The prefix the `openssh` crate gives each master's directory in the control directory.
const MASTER_DIR_PREFIX: &str = ".ssh-connection";

/// After its deadline a remote command gets SIGTERM; this many seconds later, SIGKILL.
pub const REMOTE_KILL_GRACE_S: u64 = 5;
/// How long past a command's deadline the transport waits for the remote `timeout` to report,
/// before it gives up on the session.
pub const REMOTE_REPORT_GRACE_S: u64 = REMOTE_KILL_GRACE_S + 5;
/// The exit codes of coreutils `timeout` when it stopped the command (TERM, then KILL).
const TIMEOUT_EXITS: [i32; 2] = [124, 137];

/// `shell` as run on the host: under coreutils `timeout`, which runs it in a process group of its
/// own and stops the whole group at the deadline. Closing the SSH channel would not: sshd leaves a
/// command without a terminal running. Not `exec`ed: past the kill grace `timeout` SIGKILLs its
/// whole group, itself included, and only a shell above it still turns that into exit 137 (as
/// the session's own process, the channel would close on a signal and read as a lost connection).
pub fn bounded_remote_command(shell: &str, timeout: Duration) -> String {
    let timeout_s = timeout.as_secs().max(1);
    format!("timeout -k {REMOTE_KILL_GRACE_S} {timeout_s} sh -c {}", crate::transport::quote(shell))
}

/// How SSH is set up.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// An ssh config file to use instead of `~/.ssh/config` (`ssh -F`).
    pub config: Option<PathBuf>,
    /// Where the ControlMaster sockets live.
    pub control_dir: PathBuf,
}

/// Makes `path` the private directory of the ControlMaster sockets: created mode 0700 when
/// missing; an existing one must be a directory (not a link), owned by this process's user and
/// writable by nobody else, and loses any read or search bits for others.
///
/// *Caveats*: whoever can write that directory can put a socket where ssh looks for a master
/// and receive every command the executor sends as root on the hosts; whoever can search it can
/// use the masters. So a shared temp directory another user made first (`$TMPDIR/plan-ssh-<uid>`
/// when the state directory's path is too long for a socket) is refused, not used.
///
/// # Errors
/// [`ExecError::UnsafePath`] for a link, a non-directory, another owner or a directory others may
/// write; [`ExecError::Ssh`] when it cannot be created or its mode set.
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// let dir = tempfile::tempdir().unwrap();
/// let sockets = dir.path().join("ssh");
/// plan_exec::ssh::private_control_dir(&sockets).unwrap();
/// assert_eq!(std::fs::metadata(&sockets).unwrap().permissions().mode() & 0o777, 0o700);
/// ```
pub fn private_control_dir(path: &Path) -> Result<(), ExecError> {
    private_dir(path, "control socket directory")
}

/// Makes `path` (the `what`, for messages) a directory private to this user, as
/// [`private_control_dir`] does: created 0700; refused when it is a link, not a directory,
/// another user's or writable by others (they could plant files the executor trusts); read or
/// search bits for others are taken away.
///
/// # Errors
/// As [`private_control_dir`].
pub fn private_dir(path: &Path, what: &str) -> Result<(), ExecError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let failed = |e: std::io::Error| ExecError::Ssh { host: "-".to_string(), reason: format!("{what} {}: {e}", path.display()) };
    let refused = |reason: String| ExecError::UnsafePath { path: path.display().to_string(), reason };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(failed)?;
    let meta = std::fs::symlink_metadata(path).map_err(failed)?;
    if meta.file_type().is_symlink() {
        return Err(refused(format!("the {what} is a symbolic link: refused")));
    }
    if !meta.is_dir() {
        return Err(refused(format!("the {what} is not a directory")));
    }
    // SAFETY: geteuid reads this process's effective uid; it cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(refused(format!(
            "the {what} belongs to uid {}, not to you (uid {uid}): its owner could plant or use the files in it; remove it{}",
            meta.uid(),
            if what.contains("socket") { " or use a shorter --state-dir" } else { "" }
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "the {what} is writable by other users (mode {mode:o}): another user could plant files in it; remove it"
        )));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    }
    Ok(())
}

/// Closes the ControlMasters an earlier executor left in `control_dir` (killed, it never closed
/// them) and removes their directories, before this one makes its own.
///
/// *Caveats*: call it holding the state directory's lock: a master of an executor still running
/// on this directory would be closed too. Best effort: a master that does not answer within
/// [`MASTER_EXIT_TIMEOUT_S`] is left to its bounded [`CONTROL_PERSIST_S`]. `ssh -F /dev/null`
/// reads no configuration, so nothing in one runs.
///
/// Returns the sockets it asked to exit.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(plan_exec::ssh::close_stale_masters(dir.path()).is_empty());
/// ```
pub fn close_stale_masters(control_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(control_dir) else { return Vec::new() };
    let mut closed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !entry.file_name().to_string_lossy().starts_with(MASTER_DIR_PREFIX) {
            continue;
        }
        let socket = dir.join("master");
        if socket.exists() {
            exit_master(&socket);
            closed.push(socket);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    closed
}

/// `ssh -O exit` to one master socket, bounded by [`MASTER_EXIT_TIMEOUT_S`].
fn exit_master(socket: &Path) {
    let child = std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-O", "exit", "-S"])
        .arg(socket)
        .arg("stale-master")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return };
    let deadline = Instant::now() + Duration::from_secs(MASTER_EXIT_TIMEOUT_S);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One ControlMaster session per host, opened on first use.
pub struct OpensshTransport {
    runtime: tokio::runtime::Runtime,
    sessions: HashMap<Peer, Session>,
    /// When each session last ran a command: one idle past [`SESSION_RECHECK_S`] is checked.
    last_used: HashMap<Peer, Instant>,
    options: SshOptions,
    guard: Guard,
    /// Hosts whose name service switch the guard found off the network ([`Ask::Resolver`]):
    /// asked once per transport.
    confirmed_resolvers: HashSet<Peer>,
}

/// Who a session is with: a machine of the scenario, by its address, or the workstation's
/// machine (`--workstation`), by the name the ssh config knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Peer {
    Inventory(HostTarget),
    Workstation(WorkstationHost),
}

impl Peer {
    /// How errors name it.
    fn label(&self) -> String {
        match self {
            Peer::Inventory(host) => host.name.clone(),
            Peer::Workstation(host) => format!("workstation {}", host.name()),
        }
    }

    /// What ssh is given.
    fn destination(&self) -> String {
        match self {
            Peer::Inventory(host) => host.destination(),
            Peer::Workstation(host) => host.destination().to_string(),
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::redact::redact(&text)
}

impl OpensshTransport {
    /// # Errors
    /// The async runtime cannot start, or the control directory cannot be made.
    pub fn new(options: SshOptions, guard: Guard) -> Result<Self, ExecError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ExecError::Ssh { host: "-".to_string(), reason: format!("async runtime: {e}") })?;
        private_control_dir(&options.control_dir)?;
        Ok(OpensshTransport {
            runtime,
            sessions: HashMap::new(),
            last_used: HashMap::new(),
            options,
            guard,
            confirmed_resolvers: HashSet::new(),
        })
    }

    /// How every master is started: host keys checked strictly, a bounded [`CONTROL_PERSIST_S`].
    fn session_builder(&self) -> SessionBuilder {
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(&self.options.control_dir)
            .control_persist(ControlPersist::IdleFor(std::num::NonZeroUsize::new(CONTROL_PERSIST_S).expect("a constant above zero")))
            .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
            .server_alive_interval(Duration::from_secs(SERVER_ALIVE_INTERVAL_S));
        if let Some(config) = &self.options.config {
            builder.config_file(config);
        }
        builder
    }

    /// Opens the session with `peer` unless one is open (and, when idle a while, still alive),
    /// after the guard's look at where ssh takes it.
    fn open(&mut self, peer: &Peer) -> Result<(), ExecError> {
        self.open_all(std::slice::from_ref(peer)).pop().expect("one result per peer")
    }

    /// [`Self::open`] for each of `peers`, the new sessions' handshakes all at once (the first
    /// look at a dozen hosts costs one handshake's time, not a dozen).
    fn open_all(&mut self, peers: &[Peer]) -> Vec<Result<(), ExecError>> {
        let mut results: Vec<Option<Result<(), ExecError>>> = Vec::with_capacity(peers.len());
        let mut connecting: Vec<(usize, SessionBuilder, String)> = Vec::new();
        for (i, peer) in peers.iter().enumerate() {
            match self.prepare(peer) {
                Ok(Some(builder)) => {
                    connecting.push((i, builder, peer.destination()));
                    results.push(None);
                }
                Ok(None) => results.push(Some(Ok(()))),
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let sessions =
            self.runtime.block_on(futures_util::future::join_all(connecting.iter().map(|(_, builder, destination)| async move {
                tokio::time::timeout(Duration::from_secs(CONNECT_TIMEOUT_S + 5), builder.connect_mux(destination)).await
            })));
        for ((i, _, _), session) in connecting.iter().zip(sessions) {
            let peer = &peers[*i];
            let opened = session
                .map_err(|_| ExecError::Ssh { host: peer.label(), reason: format!("no connection within {CONNECT_TIMEOUT_S} s") })
                .and_then(|session| session.map_err(|e| ExecError::Ssh { host: peer.label(), reason: chain(&e) }))
                .map(|session| {
                    tracing::debug!(host = %peer.label(), "ssh session open");
                    self.sessions.insert(peer.clone(), session);
                });
            results[*i] = Some(opened);
        }
        results.into_iter().map(|r| r.expect("every peer has its result")).collect()
    }

    /// What opening the session with `peer` takes: nothing when one is open (and, when idle a
    /// while, still alive), else the builder, after the guard's look at where ssh takes it.
    fn prepare(&mut self, peer: &Peer) -> Result<Option<SessionBuilder>, ExecError> {
        let idle = self.last_used.get(peer).is_some_and(|t| t.elapsed() >= Duration::from_secs(SESSION_RECHECK_S));
        if idle {
            // Its master may have ended (ControlPersist): reopen rather than fail the next step.
            let alive = self.sessions.get(peer).is_some_and(|session| self.runtime.block_on(session.check()).is_ok());
            if !alive {
                if let Some(session) = self.sessions.remove(peer) {
                    let _ = self.runtime.block_on(session.close());
                }
            }
        }
        self.last_used.insert(peer.clone(), Instant::now());
        if self.sessions.contains_key(peer) {
            return Ok(None);
        }
        let config = self.options.config.as_deref();
        match peer {
            Peer::Inventory(host) => self.guard.check_ssh_destination(&host.name, &host.user, host.address, config)?,
            Peer::Workstation(host) => host.check(self.guard, config)?,
        }
        Ok(Some(self.session_builder()))
    }
}

impl Transport for OpensshTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        self.run_each(&[(place.clone(), *request)]).pop().expect("one result per request")
    }

    /// Every request's command in flight at once, each on its host's master (the observer's
    /// look at every host costs one round trip, not one per host). What the guard needs a host
    /// to confirm is asked first, over the same masters, all asks at once.
    fn run_each(&mut self, work: &[(Place, Request<'_>)]) -> Vec<Result<Completed, ExecError>> {
        // Refused or unconnected requests get their error; the others run together.
        let mut results: Vec<Option<Result<Completed, ExecError>>> = work.iter().map(|_| None).collect();
        let mut must = Vec::new();
        // With the guard on a host is a loopback address, that is this machine: what each command
        // dials is checked before anything connects; then every host still needed is connected.
        let checked: Vec<Result<HostMustConfirm, ExecError>> = work
            .iter()
            .map(|(place, request)| match place {
                Place::Host(host) => self.guard.check_remote_command(&host.name, request.shell),
                Place::Local { .. } => Err(ExecError::Input("the ssh transport runs on hosts only".to_string())),
            })
            .collect();
        let mut peers: Vec<Peer> = Vec::new();
        for ((place, _), check) in work.iter().zip(&checked) {
            if let (Place::Host(host), Ok(_)) = (place, check) {
                let peer = Peer::Inventory(host.clone());
                if !peers.contains(&peer) {
                    peers.push(peer);
                }
            }
        }
        let opened: HashMap<Peer, Result<(), ExecError>> = peers.iter().cloned().zip(self.open_all(&peers)).collect();
        for (i, ((place, _), check)) in work.iter().zip(checked).enumerate() {
            let ready = check.and_then(|m| match place {
                Place::Host(host) => match &opened[&Peer::Inventory(host.clone())] {
                    Ok(()) => Ok(m),
                    Err(e) => Err(e.clone()),
                },
                Place::Local { .. } => unreachable!("refused above"),
            });
            match ready {
                Ok(m) if !m.is_empty() => must.push((i, m)),
                Ok(_) => {}
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for (i, refused) in self.confirm(work, &must) {
            results[i] = Some(Err(refused));
        }
        // An ask whose connection broke dropped its master: the host's other requests fail too.
        for (i, (place, _)) in work.iter().enumerate() {
            if let (None, Place::Host(host)) = (&results[i], place) {
                if !self.sessions.contains_key(&Peer::Inventory(host.clone())) {
                    let reason = "the connection broke while the loopback guard asked the host".to_string();
                    results[i] = Some(Err(ExecError::Ssh { host: host.name.clone(), reason }));
                }
            }
        }
        let running: Vec<usize> = (0..work.len()).filter(|&i| results[i].is_none()).collect();
        let sessions = &self.sessions;
        let outputs = self.runtime.block_on(futures_util::future::join_all(running.iter().map(|&i| {
            let (Place::Host(host), request) = &work[i] else { unreachable!("only hosts run") };
            let session = sessions.get(&Peer::Inventory(host.clone())).expect("connect inserted the session");
            remote_output(session, request)
        })));
        for (&i, (output, started)) in running.iter().zip(outputs) {
            let (Place::Host(host), request) = &work[i] else { unreachable!("only hosts run") };
            results[i] = Some(self.completed(&Peer::Inventory(host.clone()), request, output, started));
        }
        results.into_iter().map(|r| r.expect("every request has its result")).collect()
    }

    fn read_and_run(&mut self, reads: &[(HostTarget, &str)], runs: &[(Place, Request<'_>)]) -> ReadAndRun {
        // A host's files are read by one command (one session, one sudo each), the hosts' at once.
        let mut hosts: Vec<(&HostTarget, Vec<&str>)> = Vec::new();
        for (host, path) in reads {
            match hosts.iter_mut().find(|(h, _)| *h == host) {
                Some((_, paths)) => paths.push(path),
                None => hosts.push((host, vec![path])),
            }
        }
        let end = crate::transport::ReadsEnd::new();
        let scripts: Vec<String> = hosts.iter().map(|(_, paths)| end.script(paths)).collect();
        let mut work: Vec<(Place, Request<'_>)> = hosts
            .iter()
            .zip(&scripts)
            .map(|((host, paths), script)| (Place::Host((*host).clone()), crate::transport::reads_request(script, paths.len())))
            .collect();
        work.extend(runs.iter().map(|(place, request)| (place.clone(), *request)));
        let mut done = self.run_each(&work);
        let ran = done.split_off(hosts.len());
        let mut per_host: Vec<std::vec::IntoIter<Result<crate::transport::FileRead, ExecError>>> =
            hosts.iter().zip(done).map(|((host, paths), done)| end.results(&host.name, paths, done).into_iter()).collect();
        let read = reads
            .iter()
            .map(|(host, _)| {
                let at = hosts.iter().position(|(h, _)| *h == host).expect("every read's host is grouped");
                per_host[at].next().expect("one result per path read")
            })
            .collect();
        ReadAndRun { read, ran }
    }

    /// The workstation's command on its own machine, held to the rule for hosts' commands as
    /// every host's is (under the guard, a loopback host is this machine's network).
    fn run_on_workstation(&mut self, host: &WorkstationHost, request: &Request<'_>) -> Result<Completed, ExecError> {
        let peer = Peer::Workstation(host.clone());
        let must = self.guard.check_workstation_command(&peer.label(), request.shell)?;
        self.open(&peer)?;
        // What the machine must confirm, asked one at a time (a workstation command is one).
        for ask in must.asks() {
            if ask == Ask::Resolver && self.confirmed_resolvers.contains(&peer) {
                continue;
            }
            let shell = ask.shell();
            let asked = Request { step: "guard", shell: &shell, stdin: None, secret: false, timeout: ask.timeout() };
            let session = self.sessions.get(&peer).expect("open inserted the session");
            let (output, started) = self.runtime.block_on(remote_output(session, &asked));
            let answer = self.completed(&peer, &asked, output, started)?;
            ask.judge(&peer.label(), answer)?;
            if ask == Ask::Resolver {
                self.confirmed_resolvers.insert(peer.clone());
            }
        }
        let cut_off;
        let request = if must.offline {
            cut_off = crate::confirm::offline(request.shell, host.user() == "root");
            &Request { shell: &cut_off, ..*request }
        } else {
            request
        };
        let session = self.sessions.get(&peer).expect("open inserted the session");
        let (output, started) = self.runtime.block_on(remote_output(session, request));
        self.completed(&peer, request, output, started)
    }
}

/// What running `request` on `session` gave: `None` past its deadline (and the grace for the
/// remote `timeout` to report), and when it started.
async fn remote_output(session: &Session, request: &Request<'_>) -> (Option<Result<std::process::Output, openssh::Error>>, Instant) {
    let started = Instant::now();
    let shell = bounded_remote_command(request.shell, request.timeout);
    let stdin = request.stdin;
    let work = async {
        let mut command = session.shell(&shell);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().await?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin().take()) {
            pipe.write_all(bytes).await.map_err(openssh::Error::ChildIo)?;
            pipe.shutdown().await.map_err(openssh::Error::ChildIo)?;
        }
        child.wait_with_output().await
    };
    (tokio::time::timeout(request.timeout + Duration::from_secs(REMOTE_REPORT_GRACE_S), work).await.ok(), started)
}

impl OpensshTransport {
    /// Asks each host what the guard needs it to confirm for the requests `must` names (index in
    /// `work`, what to confirm): each distinct ask once per host, all at once over the masters.
    /// A host's resolver, once confirmed, is not asked again while the transport lives; kubectl's
    /// server is asked every time (the plan moves kubeconfigs to the VIP). Returns the requests
    /// refused, with why.
    fn confirm(&mut self, work: &[(Place, Request<'_>)], must: &[(usize, HostMustConfirm)]) -> Vec<(usize, ExecError)> {
        let host_of = |i: usize| match &work[i].0 {
            Place::Host(host) => host.clone(),
            Place::Local { .. } => unreachable!("only hosts are asked"),
        };
        let mut asks: Vec<(HostTarget, Ask)> = must
            .iter()
            .flat_map(|(i, m)| m.asks().into_iter().map(move |ask| (host_of(*i), ask)))
            .filter(|(host, ask)| !(*ask == Ask::Resolver && self.confirmed_resolvers.contains(&Peer::Inventory(host.clone()))))
            .collect();
        asks.sort_by(|a, b| (&a.0.name, a.1).cmp(&(&b.0.name, b.1)));
        asks.dedup();
        let shells: Vec<String> = asks.iter().map(|(_, ask)| ask.shell()).collect();
        let sessions = &self.sessions;
        let answers = self.runtime.block_on(futures_util::future::join_all(asks.iter().zip(&shells).map(|((host, ask), shell)| {
            let request = Request { step: "guard", shell, stdin: None, secret: false, timeout: ask.timeout() };
            let session = sessions.get(&Peer::Inventory(host.clone())).expect("connect inserted the session");
            async move { remote_output(session, &request).await }
        })));
        // What each host said, or why it said nothing (the text: one ask may serve several requests).
        let mut said: HashMap<(HostTarget, Ask), Result<Completed, String>> = HashMap::new();
        for (((host, ask), shell), (output, started)) in asks.into_iter().zip(&shells).zip(answers) {
            let request = Request { step: "guard", shell, stdin: None, secret: false, timeout: ask.timeout() };
            let answer = self
                .completed(&Peer::Inventory(host.clone()), &request, output, started)
                .map_err(|e| format!("asking for the loopback guard: {e}"));
            if let Ok(answer) = &answer {
                tracing::debug!(host = %host.name, ?ask, ms = answer.duration.as_millis() as u64, "the loopback guard asked the host");
            }
            said.insert((host, ask), answer);
        }
        let mut refused = Vec::new();
        for (i, m) in must {
            let host = host_of(*i);
            for ask in m.asks() {
                // Not asked: a resolver confirmed before.
                let Some(answer) = said.get(&(host.clone(), ask)) else { continue };
                let verdict = match answer {
                    Ok(answer) => ask.judge(&host.name, answer.clone()),
                    Err(reason) => Err(ExecError::Ssh { host: host.name.clone(), reason: reason.clone() }),
                };
                match verdict {
                    Ok(()) if ask == Ask::Resolver => {
                        self.confirmed_resolvers.insert(Peer::Inventory(host.clone()));
                    }
                    Ok(()) => {}
                    Err(why) => {
                        refused.push((*i, why));
                        break;
                    }
                }
            }
        }
        refused
    }

    /// A remote command's output as [`Completed`], or why there is none; a broken master is
    /// dropped so the next command reconnects.
    fn completed(
        &mut self,
        peer: &Peer,
        request: &Request<'_>,
        output: Option<Result<std::process::Output, openssh::Error>>,
        started: Instant,
    ) -> Result<Completed, ExecError> {
        let name = peer.label();
        let output = match output {
            None => return Err(ExecError::Timeout { place: name, timeout_s: request.timeout.as_secs() }),
            Some(Err(e)) => {
                if let Some(session) = self.sessions.remove(peer) {
                    let _ = self.runtime.block_on(session.close());
                }
                return Err(ExecError::Ssh { host: name, reason: chain(&e) });
            }
            Some(Ok(output)) => output,
        };
        if output.status.code().is_some_and(|code| TIMEOUT_EXITS.contains(&code)) && started.elapsed() >= request.timeout {
            return Err(ExecError::Timeout { place: name, timeout_s: request.timeout.as_secs() });
        }
        Ok(Completed {
            exit: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            duration: started.elapsed(),
        })
    }
}

/// The masters end with the transport, on success and on error alike (the runner's value is
/// dropped on every return path); a kill leaves them to [`CONTROL_PERSIST_S`] and to
/// [`close_stale_masters`] at the next start.
impl Drop for OpensshTransport {
    fn drop(&mut self) {
        for (_, session) in self.sessions.drain() {
            let _ = self.runtime.block_on(session.close());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_a_remote_command_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let options = SshOptions { config: Some(dir.path().join("no-config")), control_dir: dir.path().join("ssh") };
        let mut transport = OpensshTransport::new(options, Guard::LOOPBACK_ONLY).unwrap();
        // Nothing listens there: a connection attempt would be an ssh error, not a refusal.
        let host = HostTarget { name: "lab-cp-1".into(), address: std::net::Ipv4Addr::new(127, 0, 20, 77), user: "root".into() };
        let request = |shell| Request { step: "t", shell, stdin: None, secret: false, timeout: Duration::from_secs(5) };
        let refused = transport.run(&Place::Host(host.clone()), &request("kubectl --context prod get nodes")).unwrap_err();
        assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
        assert!(refused.to_string().contains("lab-cp-1: command calling kubectl"), "{refused}");
        // A kubectl whose server only the host knows is asked of it: that needs the connection.
        std::fs::write(dir.path().join("no-config"), "").unwrap();
        let asked = transport.run(&Place::Host(host), &request("kubectl get nodes")).unwrap_err();
        assert!(matches!(asked, ExecError::Ssh { .. }), "{asked}");
    }

    #[test]
    fn remote_commands_run_under_timeout_quoted() {
        let wrapped = bounded_remote_command("sudo sed -i 's|a|b|' /etc/x && echo it's", Duration::from_secs(90));
        assert_eq!(wrapped, r"timeout -k 5 90 sh -c 'sudo sed -i '\''s|a|b|'\'' /etc/x && echo it'\''s'");
        assert!(bounded_remote_command("true", Duration::from_millis(10)).starts_with("timeout -k 5 1 sh -c"), "at least a second");
    }

    #[test]
    fn masters_persist_a_bounded_time_not_forever() {
        let dir = tempfile::tempdir().unwrap();
        let options = SshOptions { config: None, control_dir: dir.path().join("ssh") };
        let transport = OpensshTransport::new(options, Guard::LOOPBACK_ONLY).unwrap();
        let builder = format!("{:?}", transport.session_builder());
        assert!(builder.contains(&format!("control_persist: IdleFor({CONTROL_PERSIST_S})")), "{builder}");
    }

    #[test]
    fn a_master_left_by_a_killed_executor_is_closed_and_its_directory_removed() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".ssh-connectionAbC123");
        std::fs::create_dir(&stale).unwrap();
        // A socket nothing listens on any more: `ssh -O exit` fails on it, the directory goes anyway.
        drop(UnixListener::bind(stale.join("master")).unwrap());
        let other = dir.path().join("journal.jsonl");
        std::fs::write(&other, "").unwrap();
        let closed = close_stale_masters(dir.path());
        assert_eq!(closed, vec![stale.join("master")]);
        assert!(!stale.exists(), "the stale master's directory is removed");
        assert!(other.exists(), "only master directories are touched");
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_control_directory_is_created_private_and_tightened_when_only_readable() {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("state/ssh");
        private_control_dir(&sockets).unwrap();
        assert_eq!(mode(&sockets), 0o700);
        // A directory an older plan made with the umask (0755): others could search it.
        chmod(&sockets, 0o755);
        private_control_dir(&sockets).unwrap();
        assert_eq!(mode(&sockets), 0o700);
    }

    #[test]
    fn a_control_directory_others_may_write_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("plan-ssh-0");
        std::fs::create_dir(&sockets).unwrap();
        chmod(&sockets, 0o777);
        let refused = private_control_dir(&sockets).unwrap_err();
        assert!(matches!(refused, ExecError::UnsafePath { .. }) && refused.to_string().contains("writable by other users"), "{refused}");
        assert_eq!(mode(&sockets), 0o777, "refused, not silently fixed");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(private_control_dir(&link).unwrap_err().to_string().contains("symbolic link"));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(private_control_dir(&file).is_err());
    }

    #[test]
    fn a_control_directory_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("plan-ssh-0");
        std::fs::create_dir(&sockets).unwrap();
        chmod(&sockets, 0o700);
        // Only root may give a directory away; elsewhere the owner check cannot be set up.
        if std::os::unix::fs::chown(&sockets, Some(65534), Some(65534)).is_err() {
            return;
        }
        let refused = private_control_dir(&sockets).unwrap_err();
        assert!(refused.to_string().contains("belongs to uid 65534"), "{refused}");
    }
}
