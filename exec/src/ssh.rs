//! The SSH transport: the `openssh` crate over the system's OpenSSH client, one multiplexed
//! ControlMaster session per host, the user's ssh config honoured, host keys checked strictly.

use crate::guard::Guard;
use crate::target::{HostTarget, Place};
use crate::transport::{Completed, Request, Transport};
use crate::ExecError;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Bound on opening one SSH connection.
pub const CONNECT_TIMEOUT_S: u64 = 15;
/// Keep-alive interval: a dead connection is noticed within a few of these.
pub const SERVER_ALIVE_INTERVAL_S: u64 = 15;

/// After its deadline a remote command gets SIGTERM; this many seconds later, SIGKILL.
pub const REMOTE_KILL_GRACE_S: u64 = 5;
/// How long past a command's deadline the transport waits for the remote `timeout` to report,
/// before it gives up on the session.
pub const REMOTE_REPORT_GRACE_S: u64 = REMOTE_KILL_GRACE_S + 5;
/// The exit codes of coreutils `timeout` when it stopped the command (TERM, then KILL).
const TIMEOUT_EXITS: [i32; 2] = [124, 137];

/// `shell` as run on the host: under coreutils `timeout`, which runs it in a process group of its
/// own and stops the whole group at the deadline. Closing the SSH channel would not: sshd leaves a
/// command without a terminal running.
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
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let failed = |e: std::io::Error| ExecError::Ssh { host: "-".to_string(), reason: format!("control directory {}: {e}", path.display()) };
    let refused = |reason: String| ExecError::UnsafePath { path: path.display().to_string(), reason };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(failed)?;
    let meta = std::fs::symlink_metadata(path).map_err(failed)?;
    if meta.file_type().is_symlink() {
        return Err(refused("the control socket directory is a symbolic link: refused".to_string()));
    }
    if !meta.is_dir() {
        return Err(refused("the control socket directory is not a directory".to_string()));
    }
    // SAFETY: geteuid reads this process's effective uid; it cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(refused(format!(
            "the control socket directory belongs to uid {}, not to you (uid {uid}): its owner could plant or use ssh master sockets; remove it or use a shorter --state-dir",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(format!(
            "the control socket directory is writable by other users (mode {mode:o}): another user could plant an ssh master socket; remove it"
        )));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    }
    Ok(())
}

/// One ControlMaster session per host, opened on first use.
pub struct OpensshTransport {
    runtime: tokio::runtime::Runtime,
    sessions: HashMap<HostTarget, Session>,
    options: SshOptions,
    guard: Guard,
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
        Ok(OpensshTransport { runtime, sessions: HashMap::new(), options, guard })
    }

    fn connect(&mut self, host: &HostTarget) -> Result<(), ExecError> {
        if self.sessions.contains_key(host) {
            return Ok(());
        }
        self.guard.check_ssh_destination(&host.name, &host.user, host.address, self.options.config.as_deref())?;
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .control_directory(&self.options.control_dir)
            .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
            .server_alive_interval(Duration::from_secs(SERVER_ALIVE_INTERVAL_S));
        if let Some(config) = &self.options.config {
            builder.config_file(config);
        }
        let destination = host.destination();
        let session = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(CONNECT_TIMEOUT_S + 5), builder.connect_mux(&destination)).await })
            .map_err(|_| ExecError::Ssh { host: host.name.clone(), reason: format!("no connection within {CONNECT_TIMEOUT_S} s") })?
            .map_err(|e| ExecError::Ssh { host: host.name.clone(), reason: chain(&e) })?;
        tracing::debug!(host = %host.name, "ssh session open");
        self.sessions.insert(host.clone(), session);
        Ok(())
    }
}

impl Transport for OpensshTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let Place::Host(host) = place else {
            return Err(ExecError::Input("the ssh transport runs on hosts only".to_string()));
        };
        // With the guard on a host is a loopback address, that is this machine: what the command
        // dials is checked before anything connects.
        self.guard.check_remote_command(&host.name, request.shell)?;
        self.connect(host)?;
        let session = self.sessions.get(host).expect("connect inserted the session");
        let started = Instant::now();
        let shell = bounded_remote_command(request.shell, request.timeout);
        let stdin = request.stdin;
        let name = host.name.clone();
        let result = self.runtime.block_on(async {
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
            tokio::time::timeout(request.timeout + Duration::from_secs(REMOTE_REPORT_GRACE_S), work).await
        });
        let output = match result {
            Err(_) => return Err(ExecError::Timeout { place: name, timeout_s: request.timeout.as_secs() }),
            Ok(Err(e)) => {
                // A broken master: drop it so the next command reconnects.
                if let Some(session) = self.sessions.remove(host) {
                    let _ = self.runtime.block_on(session.close());
                }
                return Err(ExecError::Ssh { host: name, reason: chain(&e) });
            }
            Ok(Ok(output)) => output,
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
        let request = Request { step: "t", shell: "kubectl get nodes", stdin: None, secret: false, timeout: Duration::from_secs(5) };
        let refused = transport.run(&Place::Host(host), &request).unwrap_err();
        assert!(matches!(refused, ExecError::NotLoopback { .. }), "{refused}");
        assert!(refused.to_string().contains("lab-cp-1: command calling kubectl"), "{refused}");
    }

    #[test]
    fn remote_commands_run_under_timeout_quoted() {
        let wrapped = bounded_remote_command("sudo sed -i 's|a|b|' /etc/x && echo it's", Duration::from_secs(90));
        assert_eq!(wrapped, r"timeout -k 5 90 sh -c 'sudo sed -i '\''s|a|b|'\'' /etc/x && echo it'\''s'");
        assert!(bounded_remote_command("true", Duration::from_millis(10)).starts_with("timeout -k 5 1 sh -c"), "at least a second");
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
