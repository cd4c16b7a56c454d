//! Transports: run a command at a place and read a file, over SSH, locally, or only recorded.

use crate::guard::{Guard, LOOPBACK_ONLY_VAR};
use crate::target::{HostTarget, Place};
use crate::workstation::WorkstationHost;
use crate::ExecError;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One command to run.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The step it belongs to (recorded by the dry-run recorder).
    pub step: &'a str,
    pub shell: &'a str,
    /// Bytes for the command's standard input.
    pub stdin: Option<&'a [u8]>,
    /// The command holds or prints a secret.
    pub secret: bool,
    /// The command is stopped past this.
    pub timeout: Duration,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The exit code; `None` when a signal ended it.
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Completed {
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    Present(String),
    Missing,
    /// The transport does not look (the dry-run recorder).
    Unobserved,
}

/// What [`Transport::read_and_run`] got back: each read's and each run's answer, in order.
#[derive(Debug)]
pub struct ReadAndRun {
    pub read: Vec<Result<FileRead, ExecError>>,
    pub ran: Vec<Result<Completed, ExecError>>,
}

/// [`Transport::read_and_run`] one question after another: each read, then each run.
fn read_and_run_one_by_one<T: Transport + ?Sized>(
    transport: &mut T,
    reads: &[(HostTarget, &str)],
    runs: &[(Place, Request<'_>)],
) -> ReadAndRun {
    let read = reads.iter().map(|(host, path)| transport.read_file(host, path)).collect();
    let ran = runs.iter().map(|(place, request)| transport.run(place, request)).collect();
    ReadAndRun { read, ran }
}

/// Exit code [`Transport::read_file`]'s script uses for "no such file".
const MISSING_EXIT: i32 = 3;
/// Bound on how long reading one file may take.
pub const READ_TIMEOUT_S: u64 = 30;

/// Runs commands somewhere.
pub trait Transport {
    /// Runs `request` at `place`.
    ///
    /// # Errors
    /// The place cannot be reached, the guard refuses it, or the deadline passed. A command that
    /// runs and fails is `Ok` with its exit code.
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError>;

    /// Reads a file on a host (with sudo: kubelet.conf and the PKI are root's).
    ///
    /// # Errors
    /// As [`Transport::run`], or the read failed for another reason than a missing file.
    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        let script = read_script(path);
        let done = self.run(&Place::Host(host.clone()), &read_request(&script))?;
        read_result(&host.name, path, done)
    }

    /// Runs several requests, each at its place, and returns their results in order: at once
    /// where the transport can (SSH runs them on their masters together), else one by one.
    fn run_each(&mut self, work: &[(Place, Request<'_>)]) -> Vec<Result<Completed, ExecError>> {
        work.iter().map(|(place, request)| self.run(place, request)).collect()
    }

    /// Reads files on hosts and runs commands, all in one round where the transport can (SSH
    /// has every one in flight at once: an observation of the whole cluster costs one round
    /// trip), else one by one with [`Transport::read_file`] and [`Transport::run`]. The answers
    /// come back in order, the reads' and the runs' apart.
    fn read_and_run(&mut self, reads: &[(HostTarget, &str)], runs: &[(Place, Request<'_>)]) -> ReadAndRun {
        read_and_run_one_by_one(self, reads, runs)
    }

    /// The machine this transport runs the workstation's commands on when it is not this one
    /// (`--workstation`); none by default. The runner compiles the plan's invocations for it, so
    /// their places name it (and their labels show it).
    fn workstation(&self) -> Option<&WorkstationHost> {
        None
    }

    /// Runs `request` as it stands on `host`, the workstation's machine, over SSH.
    ///
    /// # Errors
    /// By default, always: only a transport that reaches hosts over SSH can.
    fn run_on_workstation(&mut self, host: &WorkstationHost, _request: &Request<'_>) -> Result<Completed, ExecError> {
        Err(ExecError::Input(format!("this transport cannot reach the workstation {host}")))
    }
}

/// The script that reads `path` with sudo, exiting [`MISSING_EXIT`] when there is none. A file
/// that is there costs one sudo (each is a PAM session on a real host); only a failed read asks
/// whether the file exists, and a file that exists but cannot be read exits 1 with cat's error.
pub fn read_script(path: &str) -> String {
    format!("{}; exit $code", read_status(path))
}

/// Reads `path` with sudo and leaves in `$code` what [`read_script`] exits with.
fn read_status(path: &str) -> String {
    format!("if sudo cat {p}; then code=0; elif sudo test -e {p}; then code=1; else code={MISSING_EXIT}; fi", p = quote(path))
}

/// The request that runs a [`read_script`].
pub fn read_request(script: &str) -> Request<'_> {
    Request { step: "observe", shell: script, stdin: None, secret: false, timeout: Duration::from_secs(READ_TIMEOUT_S) }
}

/// The request that runs a [`ReadsEnd::script`] of `files` files: [`READ_TIMEOUT_S`] for each.
pub fn reads_request(script: &str, files: usize) -> Request<'_> {
    Request { timeout: Duration::from_secs(READ_TIMEOUT_S * files.max(1) as u64), ..read_request(script) }
}

/// What a [`read_script`] that ran on `host` found.
///
/// # Errors
/// The read failed for another reason than a missing file.
pub fn read_result(host: &str, path: &str, done: Completed) -> Result<FileRead, ExecError> {
    match done.exit {
        Some(0) => Ok(FileRead::Present(done.stdout)),
        Some(MISSING_EXIT) => Ok(FileRead::Missing),
        _ => {
            Err(ExecError::Ssh { host: host.to_string(), reason: format!("reading {path}: {}", crate::redact::redact(done.stderr.trim())) })
        }
    }
}

/// Several files read on one host by one command (one session and one shell instead of one each):
/// each read as [`read_script`] reads, followed by a line that ends the file's text and gives what
/// that script would exit with, `\n<end> <code>\n`, and by `<end>\n` on stderr, which ends
/// what the read said there. The end is random per look, so no file's text holds it.
pub struct ReadsEnd(String);

impl ReadsEnd {
    pub fn new() -> ReadsEnd {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
        ReadsEnd(format!("@@plan-read-end-{random:016x}@@"))
    }

    /// The script that reads `paths` in order.
    pub fn script(&self, paths: &[&str]) -> String {
        paths
            .iter()
            .map(|path| format!("{}; printf '\\n%s %s\\n' {end} \"$code\"; printf '%s\\n' {end} >&2", read_status(path), end = self.0))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What each of `paths` read on `host`, from the [`ReadsEnd::script`] that ran there. A
    /// command that failed as a whole (no connection, past its deadline) fails every read.
    pub fn results(&self, host: &str, paths: &[&str], done: Result<Completed, ExecError>) -> Vec<Result<FileRead, ExecError>> {
        let done = match done {
            Ok(done) => done,
            Err(e) => return paths.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut rest = done.stdout.as_str();
        let stderr_end = format!("{}\n", self.0);
        let mut said = done.stderr.split(stderr_end.as_str());
        let mut results = Vec::new();
        for path in paths {
            let stderr = said.next().unwrap_or_default().to_string();
            let parsed = rest.find(&format!("\n{} ", self.0)).and_then(|at| {
                let (text, after) = (&rest[..at], &rest[at + self.0.len() + 2..]);
                let (code, next) = after.split_once('\n')?;
                Some((text, code.trim().parse::<i32>().ok()?, next))
            });
            let Some((text, code, next)) = parsed else {
                let reason = format!("reading {path}: {}", crate::redact::redact(stderr.trim()));
                results.push(Err(ExecError::Ssh { host: host.to_string(), reason }));
                continue;
            };
            let one = Completed { exit: Some(code), stdout: text.to_string(), stderr, duration: done.duration };
            results.push(read_result(host, path, one));
            rest = next;
        }
        results
    }
}

impl Default for ReadsEnd {
    fn default() -> ReadsEnd {
        ReadsEnd::new()
    }
}

/// `text` quoted for a POSIX shell.
pub fn quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@,+".contains(c)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One command the recorder saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub step: String,
    pub place: String,
    pub shell: String,
    pub secret: bool,
}

/// The `--dry-run` transport: records every command per place, never connects, runs nothing.
#[derive(Debug, Default)]
pub struct Recorder {
    pub commands: Vec<Recorded>,
    /// The machine the workstation's commands would run on (`--workstation`): their places
    /// name it.
    pub workstation: Option<WorkstationHost>,
}

impl Transport for Recorder {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        self.commands.push(Recorded {
            step: request.step.to_string(),
            place: place.label(),
            shell: crate::redact::redact(request.shell),
            secret: request.secret,
        });
        Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
    }

    fn read_file(&mut self, _host: &HostTarget, _path: &str) -> Result<FileRead, ExecError> {
        Ok(FileRead::Unobserved)
    }

    fn workstation(&self) -> Option<&WorkstationHost> {
        self.workstation.as_ref()
    }
}

/// Runs commands on this machine with `bash -c` (the infra repo's edits and terraform, kubectl).
///
/// With the guard on, every command runs in a network namespace of its own (`unshare --net`),
/// which holds nothing but a loopback interface that is down: the command, and whatever it starts,
/// can reach no address at all, on this machine or off it. That holds whatever the command is
/// (`kubectl` with the machine's kubeconfig, `scripts/tg apply`, `git push`, `curl https://name`),
/// which a check of its text could never promise. [`Guard::check_local_command`] still runs first,
/// for a clearer refusal of the obvious cases.
#[derive(Debug, Clone, Copy)]
pub struct LocalTransport {
    pub guard: Guard,
}

/// Whether this process can make a network namespace (`unshare --net`, as root, else in a user
/// namespace of its own), asked once: with the guard on, a local command runs only inside one.
fn network_namespace() -> Result<(), ExecError> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let output = unshare_net().arg("true").stdin(Stdio::null()).output().map_err(|e| format!("unshare: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!("unshare --net: {}", String::from_utf8_lossy(&output.stderr).trim()))
            }
        })
        .clone()
        .map_err(|reason| ExecError::Local {
            reason: format!("{LOOPBACK_ONLY_VAR}=1 runs local commands without a network, and that is not possible here: {reason}"),
        })
}

/// `unshare --net --` (with a user namespace when not root), ready for the program to run.
fn unshare_net() -> Command {
    let mut command = Command::new("unshare");
    // SAFETY: geteuid reads this process's effective uid; it cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        command.args(["--user", "--map-root-user"]);
    }
    command.args(["--net", "--"]);
    command
}

/// How often a local command's end is polled.
const POLL_INTERVAL_MS: u64 = 20;

impl LocalTransport {
    /// Runs `shell` in `dir` with a deadline.
    ///
    /// # Errors
    /// The guard refuses it, bash cannot start, or the deadline passed (the command is killed).
    pub fn run_local(&self, dir: Option<&str>, request: &Request<'_>) -> Result<Completed, ExecError> {
        self.guard.check_local_command(request.shell)?;
        let mut command = if self.guard.loopback_only {
            network_namespace()?;
            let mut isolated = unshare_net();
            isolated.arg("bash");
            isolated
        } else {
            Command::new("bash")
        };
        let started = Instant::now();
        command.arg("-c").arg(request.shell).stdout(Stdio::piped()).stderr(Stdio::piped());
        // A process group of its own, so that a deadline stops everything the command started
        // (terraform under `tg apply`, a pipeline), not only bash.
        command.process_group(0);
        command.stdin(if request.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| ExecError::Local { reason: format!("bash: {e}") })?;
        if let (Some(bytes), Some(mut stdin)) = (request.stdin, child.stdin.take()) {
            stdin.write_all(bytes).map_err(|e| ExecError::Local { reason: format!("stdin: {e}") })?;
        }
        // Read both pipes on threads so a chatty command cannot block on a full pipe.
        let mut out_pipe = child.stdout.take().expect("stdout is piped above");
        let mut err_pipe = child.stderr.take().expect("stderr is piped above");
        let out = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out_pipe.read_to_end(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err_pipe.read_to_end(&mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| ExecError::Local { reason: e.to_string() })? {
                break status;
            }
            if started.elapsed() > request.timeout {
                kill_process_group(child.id());
                let _ = child.wait();
                return Err(ExecError::Timeout { place: "workstation".to_string(), timeout_s: request.timeout.as_secs() });
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        };
        let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        Ok(Completed { exit: status.code(), stdout, stderr, duration: started.elapsed() })
    }
}

/// SIGKILL to every process of the group `leader` leads (the command and what it started).
fn kill_process_group(leader: u32) {
    let Ok(group) = libc::pid_t::try_from(leader) else { return };
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory. The group
    // is the one this transport made for the command (process_group(0) above).
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

impl Transport for LocalTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        match place {
            Place::Local { dir, on: None } => self.run_local(dir.as_deref(), request),
            Place::Local { on: Some(host), .. } => {
                Err(ExecError::Input(format!("the local transport cannot reach the workstation {host}")))
            }
            Place::Host(host) => Err(ExecError::Input(format!("the local transport cannot reach {}", host.name))),
        }
    }
}

/// Where [`Dispatch`] runs the workstation's commands (the infra repo's, kubectl's).
#[derive(Debug, Clone)]
pub enum Workstation {
    /// On this machine, with `bash -c`.
    Here(LocalTransport),
    /// On another machine, over the remote transport (`--workstation HOST`), `cd <dir> && ` in
    /// front where the place has a directory. The remote transport holds each command to its rule
    /// for hosts; `guard` holds it to the rule for local commands as well (no ssh of its own).
    Host { host: WorkstationHost, guard: Guard },
}

/// Sends host commands to one transport (SSH) and the workstation's where [`Workstation`] says.
pub struct Dispatch<R: Transport> {
    pub remote: R,
    pub local: Workstation,
}

impl<R: Transport> Dispatch<R> {
    /// The workstation's command at `place`: on this machine, or on the workstation's machine in
    /// the place's directory. A place compiled for another workstation than this transport's is
    /// refused, never run elsewhere than it says.
    fn run_workstation(&mut self, dir: Option<&str>, on: Option<&WorkstationHost>, request: &Request<'_>) -> Result<Completed, ExecError> {
        match (&self.local, on) {
            (Workstation::Here(local), None) => local.run_local(dir, request),
            (Workstation::Host { host, guard }, Some(on)) if on == host => {
                let shell = match dir {
                    Some(dir) => format!("cd {} && {}", quote(dir), request.shell),
                    None => request.shell.to_string(),
                };
                guard.check_local_command(&shell)?;
                self.remote.run_on_workstation(host, &Request { shell: &shell, ..*request })
            }
            (Workstation::Here(_), Some(on)) => Err(ExecError::Input(format!(
                "a command compiled for the workstation {on} reached a run whose workstation is this machine"
            ))),
            (Workstation::Host { host, .. }, on) => Err(ExecError::Input(format!(
                "a command compiled for the workstation {} reached a run whose workstation is {host}",
                on.map_or("on this machine".to_string(), ToString::to_string)
            ))),
        }
    }
}

impl<R: Transport> Transport for Dispatch<R> {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        match place {
            Place::Local { dir, on } => self.run_workstation(dir.as_deref(), on.as_ref(), request),
            Place::Host(_) => self.remote.run(place, request),
        }
    }

    fn workstation(&self) -> Option<&WorkstationHost> {
        match &self.local {
            Workstation::Here(_) => None,
            Workstation::Host { host, .. } => Some(host),
        }
    }

    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        self.remote.read_file(host, path)
    }

    fn run_each(&mut self, work: &[(Place, Request<'_>)]) -> Vec<Result<Completed, ExecError>> {
        if work.iter().all(|(place, _)| matches!(place, Place::Host(_))) {
            return self.remote.run_each(work);
        }
        work.iter().map(|(place, request)| self.run(place, request)).collect()
    }

    fn read_and_run(&mut self, reads: &[(HostTarget, &str)], runs: &[(Place, Request<'_>)]) -> ReadAndRun {
        if runs.iter().all(|(place, _)| matches!(place, Place::Host(_))) {
            return self.remote.read_and_run(reads, runs);
        }
        read_and_run_one_by_one(self, reads, runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(shell: &str) -> Request<'_> {
        Request { step: "t", shell, stdin: None, secret: false, timeout: Duration::from_secs(10) }
    }

    /// The read script on a shell whose `sudo` runs its command: a file there, a file not there,
    /// and one there that cannot be read (a directory) each come back as what they are.
    #[test]
    fn the_read_script_tells_present_missing_and_unreadable_apart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubelet.conf"), "server: https://10.0.20.99:6443\n").unwrap();
        std::fs::create_dir(dir.path().join("a-directory")).unwrap();
        let local = LocalTransport { guard: Guard::OPEN };
        let read = |name: &str| {
            let path = dir.path().join(name).display().to_string();
            let shell = format!("sudo() {{ \"$@\"; }}; {}", read_script(&path));
            read_result("host", &path, local.run_local(None, &request(&shell)).unwrap())
        };
        assert_eq!(read("kubelet.conf").unwrap(), FileRead::Present("server: https://10.0.20.99:6443\n".to_string()));
        assert_eq!(read("no-such-file").unwrap(), FileRead::Missing);
        let unreadable = read("a-directory").unwrap_err().to_string();
        assert!(unreadable.contains("Is a directory"), "{unreadable}");
    }

    /// The same three files and one more present, read by one command: each as the one-file
    /// script reads it, in order; a command that failed fails each read; a missing end line is
    /// an error, never a file's text.
    #[test]
    fn several_files_read_by_one_command_come_back_each_as_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubelet.conf"), "server: https://10.0.20.99:6443\n").unwrap();
        std::fs::write(dir.path().join("no-newline"), "last line").unwrap();
        std::fs::create_dir(dir.path().join("a-directory")).unwrap();
        let local = LocalTransport { guard: Guard::OPEN };
        let paths: Vec<String> = ["kubelet.conf", "no-such-file", "a-directory", "no-newline"]
            .iter()
            .map(|n| dir.path().join(n).display().to_string())
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let end = ReadsEnd::new();
        let shell = format!("sudo() {{ \"$@\"; }}; {}", end.script(&paths));
        let done = local.run_local(None, &request(&shell)).unwrap();
        let results = end.results("host", &paths, Ok(done.clone()));
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap(), &FileRead::Present("server: https://10.0.20.99:6443\n".to_string()));
        assert_eq!(results[1].as_ref().unwrap(), &FileRead::Missing);
        let unreadable = results[2].as_ref().unwrap_err().to_string();
        assert!(unreadable.contains("Is a directory") && !unreadable.contains("No such file"), "its own error only: {unreadable}");
        assert_eq!(results[3].as_ref().unwrap(), &FileRead::Present("last line".to_string()));
        // Another look's end is not this one's: nothing is taken for a file's end.
        let other = ReadsEnd::new().results("host", &paths, Ok(done.clone()));
        assert!(other.iter().all(Result::is_err), "{other:?}");
        // Cut short after the first file: the rest are errors, the first is read.
        let cut = Completed { stdout: done.stdout[..done.stdout.find("\n").unwrap() + 1 + end.0.len() + 4].to_string(), ..done };
        let cut = end.results("host", &paths, Ok(cut));
        assert!(cut[0].is_ok() && cut[1..].iter().all(Result::is_err), "{cut:?}");
        assert_eq!(reads_request(&shell, paths.len()).timeout, Duration::from_secs(4 * READ_TIMEOUT_S), "a deadline for each file");
        let failed = end.results("host", &paths, Err(ExecError::Input("no connection".to_string())));
        assert!(failed.iter().all(|r| r.as_ref().unwrap_err().to_string().contains("no connection")));
    }

    #[test]
    fn local_commands_report_exit_and_output() {
        let local = LocalTransport { guard: Guard::LOOPBACK_ONLY };
        let done = local.run_local(None, &request("echo out; echo err >&2; exit 4")).unwrap();
        assert_eq!((done.exit, done.stdout.as_str(), done.stderr.as_str()), (Some(4), "out\n", "err\n"));
        let stdin = Request { stdin: Some(b"piped"), ..request("cat") };
        assert_eq!(local.run_local(None, &stdin).unwrap().stdout, "piped");
    }

    #[test]
    fn local_commands_stop_at_their_deadline() {
        let local = LocalTransport { guard: Guard::OPEN };
        let slow = Request { timeout: Duration::from_millis(200), ..request("sleep 5") };
        let started = Instant::now();
        assert!(matches!(local.run_local(None, &slow), Err(ExecError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_deadline_stops_what_the_command_started_too() {
        let dir = tempfile::tempdir().unwrap();
        for guard in [Guard::OPEN, Guard::LOOPBACK_ONLY] {
            let marker = dir.path().join(format!("survived-{}", guard.loopback_only));
            // A child in the background, as `tg apply` starts terraform: it must not outlive the deadline.
            let shell = format!("(/bin/sleep 1; echo survived > {}) & wait", marker.display());
            let slow = Request { timeout: Duration::from_millis(300), ..request(&shell) };
            assert!(matches!(LocalTransport { guard }.run_local(None, &slow), Err(ExecError::Timeout { .. })));
            std::thread::sleep(Duration::from_millis(1500));
            assert!(!marker.exists(), "the background child was killed with its group ({guard:?})");
        }
    }

    #[test]
    fn local_commands_under_the_guard_have_no_network() {
        // A server on this machine's loopback: reachable from here, not from the command.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dial = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
        let open = LocalTransport { guard: Guard::OPEN };
        assert_eq!(open.run_local(None, &request(&dial)).unwrap().stdout, "connected\n", "the guard off: the host's network");
        let guarded = LocalTransport { guard: Guard::LOOPBACK_ONLY };
        let done = guarded.run_local(None, &request(&dial)).unwrap();
        assert!(!done.success(), "the guard on: not even this machine's loopback: {done:?}");
        // /proc/net/dev lists the interfaces of the reader's namespace: only lo.
        let interfaces = guarded.run_local(None, &request("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")).unwrap();
        assert_eq!(interfaces.stdout, "lo\n");
        drop(listener);
    }

    #[test]
    fn the_recorder_never_runs_anything() {
        let mut recorder = Recorder::default();
        let host = HostTarget { name: "k8s-node1".into(), address: std::net::Ipv4Addr::new(10, 0, 20, 101), user: "wizard".into() };
        let done = recorder.run(&Place::Host(host.clone()), &request("sudo reboot")).unwrap();
        assert!(done.success());
        assert_eq!(recorder.read_file(&host, "/etc/kubernetes/kubelet.conf").unwrap(), FileRead::Unobserved);
        assert_eq!(recorder.commands[0].place, "k8s-node1");
    }

    /// A remote transport that records what the workstation's machine was asked to run.
    #[derive(Default)]
    struct Remote {
        on_workstation: Vec<(String, String)>,
    }

    impl Transport for Remote {
        fn run(&mut self, _place: &Place, _request: &Request<'_>) -> Result<Completed, ExecError> {
            Ok(Completed { exit: Some(0), stdout: String::new(), stderr: String::new(), duration: Duration::ZERO })
        }

        fn run_on_workstation(&mut self, host: &WorkstationHost, request: &Request<'_>) -> Result<Completed, ExecError> {
            self.on_workstation.push((host.destination().to_string(), request.shell.to_string()));
            self.run(&Place::here(None), request)
        }
    }

    fn bastion() -> WorkstationHost {
        WorkstationHost::parse("ops@bastion").unwrap()
    }

    fn on(dir: Option<&str>, host: &WorkstationHost) -> Place {
        Place::Local { dir: dir.map(str::to_string), on: Some(host.clone()) }
    }

    #[test]
    fn the_workstations_commands_run_on_its_machine_in_their_directory() {
        let host = bastion();
        let mut dispatch =
            Dispatch { remote: Remote::default(), local: Workstation::Host { host: host.clone(), guard: Guard::LOOPBACK_ONLY } };
        assert_eq!(dispatch.workstation(), Some(&host));
        dispatch.run(&on(Some("/srv/infra repo"), &host), &request("scripts/tg apply stacks/flags")).unwrap();
        dispatch.run(&on(None, &host), &request("kubectl --server=https://127.0.20.99:6443 get nodes")).unwrap();
        assert_eq!(
            dispatch.remote.on_workstation,
            [
                ("ops@bastion".to_string(), "cd '/srv/infra repo' && scripts/tg apply stacks/flags".to_string()),
                ("ops@bastion".to_string(), "kubectl --server=https://127.0.20.99:6443 get nodes".to_string())
            ]
        );
        assert_eq!(on(Some("/srv/infra"), &host).label(), "infra-repo@bastion");
        assert_eq!(on(None, &host).label(), "workstation@bastion");
    }

    #[test]
    fn over_ssh_the_workstations_commands_still_may_not_call_ssh_themselves() {
        let host = bastion();
        let mut dispatch =
            Dispatch { remote: Remote::default(), local: Workstation::Host { host: host.clone(), guard: Guard::LOOPBACK_ONLY } };
        for shell in ["for n in a b; do ssh root@$n uptime; done", "curl https://10.0.20.99:6443/readyz"] {
            let refused = dispatch.run(&on(None, &host), &request(shell)).unwrap_err();
            assert!(matches!(refused, ExecError::NotLoopback { .. }), "{shell}: {refused}");
        }
        assert!(dispatch.remote.on_workstation.is_empty(), "nothing sent");
    }

    #[test]
    fn a_command_compiled_for_another_workstation_than_the_runs_is_refused_not_run_elsewhere() {
        let host = bastion();
        let other = WorkstationHost::parse("laptop").unwrap();
        let mut over = Dispatch { remote: Remote::default(), local: Workstation::Host { host: host.clone(), guard: Guard::OPEN } };
        for place in [Place::here(None), on(None, &other)] {
            let refused = over.run(&place, &request("true")).unwrap_err();
            assert!(matches!(refused, ExecError::Input(_)), "{refused}");
        }
        assert!(over.remote.on_workstation.is_empty());
        let mut here = Dispatch { remote: Remote::default(), local: Workstation::Here(LocalTransport { guard: Guard::OPEN }) };
        assert_eq!(here.workstation(), None);
        assert!(matches!(here.run(&on(None, &host), &request("true")), Err(ExecError::Input(_))));
        assert!(here.remote.on_workstation.is_empty());
        assert!(matches!(LocalTransport { guard: Guard::OPEN }.run(&on(None, &host), &request("true")), Err(ExecError::Input(_))));
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("/etc/kubernetes/kubelet.conf"), "/etc/kubernetes/kubelet.conf");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
