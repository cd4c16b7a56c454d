//! Fixture hosts: one real `sshd` per host on the host's loopback address, each in a mount namespace
//! of its own, so that `/etc/kubernetes`, `/etc/haproxy`, `/run/haproxy` (and optionally `/tmp`
//! and `/root`) are that host's own directories.
//!
//! Shared by the executor's tests (`tests/loopback/execute.rs`, `tests/loopback/execute_ssh.rs`) and the lab's
//! rehearsal through the executor ([`crate::executor_rehearsal`]). Layout under the root directory:
//! `host_key`, `id_ed25519` (the client key), `authorized_keys`, `known_hosts`, `ssh_config`
//! (for `ssh -F` and the executor's `--ssh-config`), `shims/` (first on every session's PATH; the
//! caller writes them), and per host `hosts/<name>/` with `etc-kubernetes/` (bind-mounted over
//! `/etc/kubernetes`), `etc-haproxy/` and `run-haproxy/` (over `/etc/haproxy` and `/run/haproxy`,
//! [`PRIVATE_DIRS`]), `tmp/` (over `/tmp` with [`TmpDir::PerHost`]), `root/` (over `/root` with
//! [`RootHome::PerHost`]), `sshd_config`, `sshd.log`.
//!
//! Each sshd runs as the first process of a PID namespace of its own (`unshare --pid --fork
//! --kill-child`, under `setpriv --pdeathsig KILL`): killing the namespace's `unshare` kills every
//! session sshd forked and every command they run, which killing the listening sshd alone would
//! not (its sessions live on, and keep an executor's ControlMasters, ControlPersist=yes, alive).
//! Every session gets `PLAN_FIXTURE_HOST_DIR`, `PLAN_FIXTURE_HOST_NAME` and
//! `PLAN_FIXTURE_HOST_ADDRESS` in its environment, for the shims.

use crate::address::guard_loopback;
use crate::error::LabError;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's OpenSSH server.
pub const SSHD_BIN: &str = "/usr/sbin/sshd";
/// Bound on waiting for every sshd to answer.
pub const SSHD_START_TIMEOUT_S: u64 = 20;
/// Ports tried before the fixture gives up (another process may take a port between its choice
/// and sshd's bind).
pub const PORT_ATTEMPTS_MAX: usize = 5;
const POLL_MS: u64 = 50;
/// The key exchange the lab's sshd offers. OpenSSH 9's default, the post-quantum
/// sntrup761x25519, costs some 60 ms of CPU per connection on each side, and a lab opens
/// hundreds of connections on two cores (every executor started, every login check); the hosts
/// are on loopback, so the classical curve is all the lab needs.
const KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org";
/// Directories each host has its own of, beside `/etc/kubernetes`: the real path, bind-mounted
/// over from the host's directory (`hosts/<name>/<dir>`). A Linux load balancer's HAProxy keeps its
/// config in `/etc/haproxy` and its admin socket and pid in `/run/haproxy` (Debian's paths).
pub const PRIVATE_DIRS: [(&str, &str); 2] = [("/etc/haproxy", "etc-haproxy"), ("/run/haproxy", "run-haproxy")];
/// Name service switch of a host whose names come from its `/etc/hosts` only.
const NSSWITCH_FILES_ONLY: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";

/// `/etc/passwd` with root's login shell `/bin/sh`: sshd runs every command through it, and every
/// command the executor sends is `timeout … sh -c '…'` (exec/'s `bounded_remote_command`), which
/// runs under sh whatever the login shell; bash as that outer shell only cost each of a lab's
/// thousands of commands its start (about 2 ms here).
fn with_root_shell_sh(passwd: &str) -> String {
    passwd
        .lines()
        .map(|line| match line.strip_prefix("root:").and_then(|rest| rest.rsplit_once(':')) {
            Some((fields, _shell)) => format!("root:{fields}:/bin/sh\n"),
            None => format!("{line}\n"),
        })
        .collect()
}

/// One host: its inventory name and loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureHost {
    pub name: String,
    pub address: Ipv4Addr,
}

/// Whether each host gets a `/tmp` of its own (as separate machines have). The root directory
/// must then not be under `/tmp`, or the shims would vanish behind the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmpDir {
    Shared,
    PerHost,
}

/// Whether each host gets a `/root` of its own: the plan keeps its join secrets in
/// `/root/.plan-*`, which separate machines do not share (and this machine's own `/root` must not
/// receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootHome {
    Shared,
    PerHost,
}

/// The sshd servers of one set of hosts; stops them when dropped, failed test or not.
pub struct FixtureHosts {
    root: PathBuf,
    hosts: Vec<FixtureHost>,
    tmp: TmpDir,
    root_home: RootHome,
    /// One per host, in the order of `hosts`; a crashed host's is killed and stays in its place.
    sshds: std::sync::Mutex<Vec<Child>>,
    /// The `/etc/hosts` every host reads, with name look-ups confined to it ([`Self::with_resolver`]).
    resolver: Option<String>,
    /// The port every sshd listens on (on its own address), once started.
    pub port: Option<u16>,
}

/// Whether the lab's Debian binaries are installed: etcd and etcdctl, HAProxy when `haproxy`.
///
/// # Errors
/// [`LabError::BinaryMissing`] naming the Debian package to install.
pub fn check_binaries(haproxy: bool) -> Result<(), LabError> {
    let etcd = [("etcd", crate::etcd::ETCD_BIN, "etcd-server"), ("etcdctl", crate::etcd::ETCDCTL_BIN, "etcd-client")];
    let load_balancer = [("haproxy", crate::haproxy::HAPROXY_BIN, "haproxy")];
    installed(etcd.iter().chain(load_balancer.iter().filter(|_| haproxy)))
}

fn installed<'a>(binaries: impl IntoIterator<Item = &'a (&'static str, &'static str, &'static str)>) -> Result<(), LabError> {
    for &(binary, path, package) in binaries {
        if !Path::new(path).is_file() {
            return Err(LabError::BinaryMissing { binary, path: PathBuf::from(path), package });
        }
    }
    Ok(())
}

/// Whether this machine can run the lab: sshd, unshare, etcd and HAProxy installed, and root.
///
/// # Errors
/// [`LabError::BinaryMissing`] for a binary, [`LabError::NotRehearsable`] when not root (mount
/// namespaces and bind mounts need it).
pub fn usable() -> Result<(), LabError> {
    installed(&[("sshd", SSHD_BIN, "openssh-server"), ("unshare", "/usr/bin/unshare", "util-linux")])?;
    check_binaries(true)?;
    // SAFETY: geteuid reads this process's effective uid; it cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRehearsable {
            what: "fixture hosts".to_string(),
            why: "bind mounts in a mount namespace need root".to_string(),
        });
    }
    Ok(())
}

/// Runs `program` with `args` to its end: [`LabError::Command`] with its stderr when it fails.
pub(crate) fn run_tool(program: &str, args: &[&str]) -> Result<(), LabError> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| LabError::io(format!("run {program}"), e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Writes `text` to `path`, making its directory.
pub fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(format!("create {}", parent.display()), e))?;
    }
    std::fs::write(path, text).map_err(|e| LabError::io(format!("write {}", path.display()), e))
}

/// Writes an executable script (mode 0755).
pub fn write_executable(path: &Path, text: &str) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    write_file(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| LabError::io(format!("chmod {}", path.display()), e))
}

fn utf8(path: &Path) -> Result<&str, LabError> {
    path.to_str().ok_or_else(|| LabError::NotRehearsable { what: path.display().to_string(), why: "the path is not UTF-8".to_string() })
}

impl FixtureHosts {
    /// Keys and each host's directories under `root`; nothing runs yet. The caller writes the
    /// shims and each host's files, then calls [`Self::start`].
    ///
    /// # Errors
    /// An address off loopback, `ssh-keygen` failing, a directory that cannot be made.
    pub fn prepare(root: &Path, hosts: Vec<FixtureHost>, tmp: TmpDir) -> Result<FixtureHosts, LabError> {
        for host in &hosts {
            guard_loopback(host.address)?;
        }
        for key in ["host_key", "id_ed25519"] {
            run_tool("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", utf8(&root.join(key))?])?;
        }
        std::fs::copy(root.join("id_ed25519.pub"), root.join("authorized_keys")).map_err(|e| LabError::io("authorized_keys", e))?;
        std::fs::create_dir_all(root.join("shims")).map_err(|e| LabError::io("shims", e))?;
        for dir in ["/etc/kubernetes", "/run/sshd"].into_iter().chain(PRIVATE_DIRS.map(|(real, _)| real)) {
            // The mount point at the real path, and sshd's privilege separation directory.
            std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("create {dir}"), e))?;
        }
        for host in &hosts {
            let dir = root.join("hosts").join(&host.name);
            for sub in ["etc-kubernetes", "tmp", "root"].into_iter().chain(PRIVATE_DIRS.map(|(_, sub)| sub)) {
                std::fs::create_dir_all(dir.join(sub)).map_err(|e| LabError::io(format!("create {}", dir.join(sub).display()), e))?;
            }
        }
        Ok(FixtureHosts {
            root: root.to_path_buf(),
            hosts,
            tmp,
            root_home: RootHome::Shared,
            sshds: std::sync::Mutex::new(Vec::new()),
            resolver: None,
            port: None,
        })
    }

    /// Gives every host `hosts` as its `/etc/hosts` and an `nsswitch.conf` that resolves host
    /// names from that file only (before [`Self::start`]): a name look-up on a host never asks a
    /// DNS server.
    pub fn with_resolver(mut self, hosts: String) -> FixtureHosts {
        self.resolver = Some(hosts);
        self
    }

    /// Gives every host its own `/root` (before [`Self::start`]).
    pub fn with_root_home(mut self, root_home: RootHome) -> FixtureHosts {
        self.root_home = root_home;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host's directory: `etc-kubernetes/`, `tmp/`, its logs.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.root.join("hosts").join(name)
    }

    /// Where the lab keeps what the host `name` sees at `path` (an absolute path under one of its
    /// own directories: `/etc/kubernetes`, `/etc/haproxy`, `/run/haproxy`, `/root`, and `/tmp`
    /// with [`TmpDir::PerHost`]); `None` for a path the host shares with this machine.
    pub fn private_path(&self, name: &str, path: &str) -> Option<PathBuf> {
        let mut dirs = vec![("/etc/kubernetes", "etc-kubernetes")];
        dirs.extend(PRIVATE_DIRS);
        if self.tmp == TmpDir::PerHost {
            dirs.push(("/tmp", "tmp"));
        }
        if self.root_home == RootHome::PerHost {
            dirs.push(("/root", "root"));
        }
        dirs.into_iter().find_map(|(real, sub)| {
            let rest = path.strip_prefix(real)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| self.host_dir(name).join(sub).join(rest.trim_start_matches('/')))
        })
    }

    /// What the host sees as `/etc/kubernetes`.
    pub fn etc_kubernetes(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("etc-kubernetes")
    }

    pub fn shims(&self) -> PathBuf {
        self.root.join("shims")
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.root.join("ssh_config")
    }

    pub fn sshd_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.host_dir(name).join("sshd.log")).unwrap_or_default()
    }

    /// Starts one sshd per host on a port no other process took first; returns once each answers
    /// as this fixture's sshd (its host key, its user key).
    ///
    /// # Errors
    /// [`LabError::Exited`] when no port of [`PORT_ATTEMPTS_MAX`] worked, [`LabError::Timeout`]
    /// when an sshd did not answer within [`SSHD_START_TIMEOUT_S`].
    pub fn start(&mut self) -> Result<(), LabError> {
        let first = self
            .hosts
            .first()
            .map(|h| h.address)
            .ok_or_else(|| LabError::NotRehearsable { what: "fixture hosts".to_string(), why: "no host to start".to_string() })?;
        for _ in 0..PORT_ATTEMPTS_MAX {
            let port = TcpListener::bind(SocketAddrV4::new(first, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| LabError::io(format!("a free port on {first}"), e))?
                .port();
            if self.serve(port)? {
                self.port = Some(port);
                return Ok(());
            }
            self.stop();
        }
        Err(LabError::Exited { process: format!("sshd (tried {PORT_ATTEMPTS_MAX} ports)"), log_tail: self.sshd_log(&self.hosts[0].name) })
    }

    /// `Ok(false)` when an sshd exited (its port was taken).
    fn serve(&mut self, port: u16) -> Result<bool, LabError> {
        let r = self.root.clone();
        let host_pub = std::fs::read_to_string(r.join("host_key.pub")).map_err(|e| LabError::io("host_key.pub", e))?;
        let host_pub: String = host_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let known: String = self.hosts.iter().map(|h| format!("[{}]:{port} {host_pub}\n", h.address)).collect();
        write_file(&r.join("known_hosts"), &known)?;
        let mut client = String::new();
        for host in &self.hosts {
            client.push_str(&format!(
                "Host {}\n  Port {port}\n  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 5\n",
                host.address,
                id = r.join("id_ed25519").display(),
                kh = r.join("known_hosts").display()
            ));
        }
        write_file(&self.ssh_config(), &client)?;
        for host in self.hosts.clone() {
            let child = self.spawn_sshd(&host, port)?;
            self.sshds_mut().push(child);
        }
        // Every host's login is tried at once (a dozen hosts would take seconds one by one), again
        // for those that did not answer yet.
        let deadline = Instant::now() + Duration::from_secs(SSHD_START_TIMEOUT_S);
        let mut waiting: Vec<usize> = (0..self.hosts.len()).collect();
        loop {
            if waiting.iter().any(|&i| self.sshds_mut()[i].try_wait().ok().flatten().is_some()) {
                return Ok(false);
            }
            let logins: Vec<(usize, std::io::Result<Child>)> = waiting.iter().map(|&i| (i, self.login(self.hosts[i].address))).collect();
            waiting = logins
                .into_iter()
                .filter_map(|(i, login)| {
                    let answered = login.and_then(|mut child| child.wait()).is_ok_and(|status| status.success());
                    (!answered).then_some(i)
                })
                .collect();
            if waiting.is_empty() {
                return Ok(true);
            }
            if Instant::now() > deadline {
                let host = &self.hosts[waiting[0]];
                return Err(LabError::Timeout {
                    what: format!("sshd for {} answering ({})", host.name, self.sshd_log(&host.name).trim()),
                    timeout_ms: SSHD_START_TIMEOUT_S * 1000,
                });
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
    }

    /// Starts `host`'s sshd on `port`, in a PID and mount namespace of its own.
    fn spawn_sshd(&self, host: &FixtureHost, port: u16) -> Result<Child, LabError> {
        let r = self.root.clone();
        let resolver = match &self.resolver {
            Some(hosts) => {
                let dir = r.join("resolver");
                write_file(&dir.join("hosts"), hosts)?;
                write_file(&dir.join("nsswitch.conf"), NSSWITCH_FILES_ONLY)?;
                format!("mount --bind {0}/hosts /etc/hosts && mount --bind {0}/nsswitch.conf /etc/nsswitch.conf && ", dir.display())
            }
            None => String::new(),
        };
        let dir = self.host_dir(&host.name);
        let config = dir.join("sshd_config");
        write_file(
            &config,
            &format!(
                "ListenAddress {address}:{port}\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 64\nMaxStartups 64\nKexAlgorithms {KEX}\nSetEnv PATH={shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PLAN_FIXTURE_HOST_DIR={hd} PLAN_FIXTURE_HOST_NAME={name} PLAN_FIXTURE_HOST_ADDRESS={address}\n",
                address = host.address,
                name = host.name,
                hk = r.join("host_key").display(),
                pid = dir.join("sshd.pid").display(),
                ak = r.join("authorized_keys").display(),
                shims = self.shims().display(),
                hd = dir.display(),
            ),
        )?;
        let tmp = match self.tmp {
            TmpDir::PerHost => format!("mount --bind {} /tmp && ", dir.join("tmp").display()),
            TmpDir::Shared => String::new(),
        };
        let home = match self.root_home {
            RootHome::PerHost => format!("mount --bind {} /root && ", dir.join("root").display()),
            RootHome::Shared => String::new(),
        };
        let private: String =
            PRIVATE_DIRS.iter().map(|(real, sub)| format!("mount --bind {} {real} && ", dir.join(sub).display())).collect();
        let passwd = r.join("passwd");
        if !passwd.exists() {
            // Written once, whole (renamed into place): it is every running host's /etc/passwd,
            // and a host booted again must not find it half written.
            let machine = std::fs::read_to_string("/etc/passwd").map_err(|e| LabError::io("/etc/passwd", e))?;
            let written = r.join("passwd.new");
            write_file(&written, &with_root_shell_sh(&machine))?;
            std::fs::rename(&written, &passwd).map_err(|e| LabError::io("the lab's passwd", e))?;
        }
        let script = format!(
            "mount --bind {} /etc/passwd && mount --bind {} /etc/kubernetes && {private}{tmp}{home}{resolver}exec {SSHD_BIN} -D -e -f {}",
            passwd.display(),
            dir.join("etc-kubernetes").display(),
            config.display()
        );
        // Appended: a host booted again after a crash keeps its first log.
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("sshd.log")).map_err(|e| LabError::io("sshd log", e))?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LabError::io("start sshd", e))?;
        Ok(child)
    }

    /// The host `name` boots again after a crash: its sshd starts on the port it had (its files
    /// are as the crash left them); returns once it answers.
    ///
    /// # Errors
    /// No such host, the hosts were never started, sshd does not start or answer within
    /// [`SSHD_START_TIMEOUT_S`].
    pub fn boot(&self, name: &str) -> Result<(), LabError> {
        let not_started = || LabError::NotRehearsable { what: format!("boot {name}"), why: "no such started host".to_string() };
        let i = self.hosts.iter().position(|h| h.name == name).ok_or_else(not_started)?;
        let port = self.port.ok_or_else(not_started)?;
        let host = self.hosts[i].clone();
        let child = self.spawn_sshd(&host, port)?;
        if let Some(old) = self.sshds_mut().get_mut(i) {
            let _ = old.kill();
            let _ = old.wait();
            *old = child;
        }
        let deadline = Instant::now() + Duration::from_secs(SSHD_START_TIMEOUT_S);
        while !self.answers(host.address) {
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!("sshd for {name} answering after its boot ({})", self.sshd_log(name).trim()),
                    timeout_ms: SSHD_START_TIMEOUT_S * 1000,
                });
            }
            std::thread::sleep(Duration::from_millis(POLL_MS));
        }
        Ok(())
    }

    /// Whether `address` answers as this fixture's sshd: a listener there that is not ours fails
    /// the host key check (StrictHostKeyChecking) or the user key.
    pub fn answers(&self, address: Ipv4Addr) -> bool {
        self.login(address).and_then(|mut child| child.wait()).is_ok_and(|s| s.success())
    }

    /// `ssh root@address COMMAND` with the fixture's ssh config, its input empty.
    fn ssh(&self, address: Ipv4Addr, command: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.arg("-F").arg(self.ssh_config()).arg(format!("root@{address}")).arg(command).stdin(Stdio::null());
        ssh
    }

    /// `ssh root@address true` started: [`Self::answers`] without waiting for it.
    fn login(&self, address: Ipv4Addr) -> std::io::Result<Child> {
        self.ssh(address, "true").stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    }

    /// Runs `command` on the host at `address` over SSH as root, as the executor would.
    ///
    /// # Errors
    /// ssh cannot start; [`LabError::Command`] when the command fails, with its stderr.
    pub fn run(&self, address: Ipv4Addr, command: &str) -> Result<String, LabError> {
        guard_loopback(address)?;
        let output = self.ssh(address, command).output().map_err(|e| LabError::io("run ssh", e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(LabError::Command {
                command: format!("ssh root@{address} {command}"),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Closes the ControlMasters an executor left under `control_dir` (a SIGKILLed executor
    /// cannot close its own).
    pub fn close_masters(&self, control_dir: &Path) {
        let Ok(dirs) = std::fs::read_dir(control_dir) else { return };
        for dir in dirs.flatten() {
            let socket = dir.path().join("master");
            if socket.exists() {
                let _ = Command::new("ssh")
                    .args(["-F", "/dev/null", "-O", "exit", "-S"])
                    .arg(&socket)
                    .arg("fixture")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    fn sshds_mut(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.sshds.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The host `name` crashes: its sshd's PID namespace is SIGKILLed, and with it every session
    /// and every process a command started there (an etcd the join started, a command running).
    /// It answers no more connections. `false` when no such host runs.
    pub fn crash(&self, name: &str) -> bool {
        let Some(i) = self.hosts.iter().position(|h| h.name == name) else { return false };
        let mut sshds = self.sshds_mut();
        let Some(child) = sshds.get_mut(i) else { return false };
        let running = child.try_wait().ok().flatten().is_none();
        let _ = child.kill();
        let _ = child.wait();
        running
    }

    /// Kills every sshd (and, with its PID namespace, every session and command under it).
    pub fn stop(&mut self) {
        let mut sshds = self.sshds_mut();
        for child in sshds.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        sshds.clear();
        drop(sshds);
        self.port = None;
    }
}

impl Drop for FixtureHosts {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test that cannot run here says why; under `CI=true` it fails instead (CI installs what the
/// lab needs, so a missing binary or privilege there is a broken set-up, never a silent pass).
#[cfg(test)]
pub(crate) fn skip_test(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but this test cannot run: {why}");
    eprintln!("skipping: {why} (not CI)");
}

#[cfg(test)]
mod tests {
    /// Root logs in to a lab host with `/bin/sh`; every other account, and every other field of
    /// root's, is the machine's.
    #[test]
    fn root_logs_in_with_sh_and_nothing_else_changes() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nrootless:x:7:7::/home/r:/bin/bash\n";
        assert_eq!(
            super::with_root_shell_sh(passwd),
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nrootless:x:7:7::/home/r:/bin/bash\n"
        );
    }
}
