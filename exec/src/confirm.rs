//! What a host tells the loopback guard about a command its text cannot settle: which server the
//! host's `kubectl` would reach, and whether the host resolves names from its files only.
//!
//! The guard ([`crate::guard::Guard::check_remote_command`]) reads a command and names what the
//! host must confirm ([`HostMustConfirm`]); the SSH transport asks the host over the same
//! connection ([`Ask::shell`]) before the command runs, and [`Ask::judge`] reads the answer.
//! Both asks read local configuration only: `kubectl config view` dials nothing, and
//! `/etc/nsswitch.conf` is a file.

use crate::transport::{Completed, FileRead};
use crate::ExecError;
use std::collections::BTreeSet;
use std::time::Duration;

/// Bound on one ask (`kubectl config view`, reading nsswitch.conf): both read local files.
pub const ASK_TIMEOUT_S: u64 = 30;

/// Where `getent hosts` looks names up: the name service switch's `hosts:` line.
pub const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";

/// What `kubectl` reports as the server of the context it would use: local configuration only
/// (the kubeconfig's current context, minified), nothing is dialled.
pub const KUBECTL_SERVER_ASK: &str = "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'";

/// Name services that answer `hosts` look-ups without asking the network: `files`
/// (`/etc/hosts`), `myhostname` (the machine's own name and addresses, from its interfaces) and
/// `mymachines` (local containers, from systemd-machined over a local socket). Any other (`dns`,
/// `resolve`, `mdns*`, `wins`, `nis`, `ldap`, `sss`, one this list does not know) is refused.
pub const OFFLINE_HOSTS_SERVICES: [&str; 3] = ["files", "myhostname", "mymachines"];

/// The account a `kubectl` runs as on its host: whose `~/.kube/config` it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunAs {
    /// The SSH login, as the command names it (`kubectl …`).
    Login,
    /// Root, through `sudo` (`sudo kubectl …`).
    Root,
}

/// What a host must confirm before a command the guard read runs there. Empty when the text
/// settles everything (or the guard is off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMustConfirm {
    /// A `kubectl` with no `--server`, run as each of these accounts: the server its kubeconfig
    /// names must be an `https://` URL on a loopback literal.
    pub kubectl_server: BTreeSet<RunAs>,
    /// `getent hosts`: the host's `hosts:` name services must all answer without the network.
    pub resolver: bool,
    /// A workstation command whose programs take their destination from configuration
    /// (terraform, git): it runs on its machine in a network namespace of its own, which holds
    /// only a loopback interface that is down ([`offline`]).
    pub offline: bool,
}

/// `shell` run on its machine cut off from every network (`unshare --net`, in a user namespace
/// of its own unless the login is root), as [`crate::transport::LocalTransport`] runs a local
/// command under the guard.
pub fn offline(shell: &str, root: bool) -> String {
    let user = if root { "" } else { "--user --map-root-user " };
    format!("unshare {user}--net -- sh -c {}", crate::transport::quote(shell))
}

impl HostMustConfirm {
    /// Nothing to confirm: the command runs on what its text says.
    pub fn is_empty(&self) -> bool {
        self.kubectl_server.is_empty() && !self.resolver && !self.offline
    }

    /// The questions to put to the host, in a fixed order.
    pub fn asks(&self) -> Vec<Ask> {
        let kubectl = self.kubectl_server.iter().map(|&run_as| Ask::KubectlServer(run_as));
        kubectl.chain(self.resolver.then_some(Ask::Resolver)).collect()
    }
}

/// One question to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ask {
    /// Which server `kubectl`, run as this account, would reach ([`KUBECTL_SERVER_ASK`]).
    KubectlServer(RunAs),
    /// The host's name service switch ([`NSSWITCH_CONF`]).
    Resolver,
}

impl Ask {
    /// The command that asks: run on the host as the command's own `kubectl` would run.
    pub fn shell(self) -> String {
        match self {
            Ask::KubectlServer(RunAs::Login) => KUBECTL_SERVER_ASK.to_string(),
            Ask::KubectlServer(RunAs::Root) => format!("sudo {KUBECTL_SERVER_ASK}"),
            Ask::Resolver => crate::transport::read_script(NSSWITCH_CONF),
        }
    }

    /// The deadline of the ask.
    pub fn timeout(self) -> Duration {
        Duration::from_secs(ASK_TIMEOUT_S)
    }

    /// Whether `answer`, the host `host`'s to this ask, lets the command run.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming the host and what it answered; [`ExecError::Ssh`] when
    /// nsswitch.conf could not be read for another reason than its absence.
    pub fn judge(self, host: &str, answer: Completed) -> Result<(), ExecError> {
        match self {
            Ask::KubectlServer(run_as) => kubectl_server(host, run_as, &answer),
            Ask::Resolver => {
                let read = crate::transport::read_result(host, NSSWITCH_CONF, answer)?;
                resolver(host, &read)
            }
        }
    }
}

/// `kubectl`'s server, as [`KUBECTL_SERVER_ASK`] printed it: an `https://` URL on a loopback
/// literal (or `localhost`), else refused.
fn kubectl_server(host: &str, run_as: RunAs, answer: &Completed) -> Result<(), ExecError> {
    let server = answer.stdout.trim();
    let who = match run_as {
        RunAs::Login => "kubectl",
        RunAs::Root => "sudo kubectl",
    };
    let refuse = |found: String, why: String| {
        Err(ExecError::NotLoopback { destination: format!("{host}: {who} reaches {found}"), why: format!(" ({why})") })
    };
    if !answer.success() || server.is_empty() {
        let said = crate::redact::redact(answer.stderr.trim());
        let why = if said.is_empty() { String::new() } else { format!(": {said}") };
        return refuse("no server".to_string(), format!("its kubeconfig names none{why}; give --server"));
    }
    let on_loopback = server.starts_with("https://") && crate::guard::Guard::LOOPBACK_ONLY.check_url("", server).is_ok();
    if on_loopback {
        Ok(())
    } else {
        refuse(server.to_string(), format!("the server its kubeconfig names, asked with `{KUBECTL_SERVER_ASK}`"))
    }
}

/// The services of every `hosts:` line of `nsswitch` (comments and `[ACTION]` items taken out),
/// or `None` when there is no such line.
pub fn hosts_services(nsswitch: &str) -> Option<Vec<String>> {
    let mut services: Option<Vec<String>> = None;
    for line in nsswitch.lines() {
        let line = line.split('#').next().unwrap_or_default().trim_start();
        let Some((database, rest)) = line.split_once(':') else { continue };
        if !database.trim().eq_ignore_ascii_case("hosts") {
            continue;
        }
        let mut words = String::new();
        let mut in_action = false;
        for c in rest.chars() {
            match c {
                '[' => in_action = true,
                ']' => in_action = false,
                _ if !in_action => words.push(c),
                _ => {}
            }
        }
        services.get_or_insert_with(Vec::new).extend(words.split_whitespace().map(str::to_string));
    }
    services
}

/// Whether `getent hosts` on `host` stays off the network: its `hosts:` line lists `files` and no
/// service outside [`OFFLINE_HOSTS_SERVICES`]. No file, or no `hosts:` line, is glibc's default
/// (`dns [!UNAVAIL=return] files`): refused.
fn resolver(host: &str, nsswitch: &FileRead) -> Result<(), ExecError> {
    let refuse = |why: String| Err(ExecError::NotLoopback { destination: format!("{host}: getent"), why: format!(" ({why})") });
    let text = match nsswitch {
        FileRead::Present(text) => text,
        FileRead::Missing => return refuse(format!("no {NSSWITCH_CONF}: glibc's default asks DNS")),
        // A transport that does not look (a dry run) runs nothing either.
        FileRead::Unobserved => return Ok(()),
    };
    let Some(services) = hosts_services(text) else {
        return refuse(format!("no hosts: line in {NSSWITCH_CONF}: glibc's default asks DNS"));
    };
    if let Some(online) = services.iter().find(|s| !OFFLINE_HOSTS_SERVICES.contains(&s.as_str())) {
        return refuse(format!("{NSSWITCH_CONF} looks host names up with {online}, which may ask the network"));
    }
    if !services.iter().any(|s| s == "files") {
        return refuse(format!("{NSSWITCH_CONF} does not look host names up in files"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(exit: i32, stdout: &str, stderr: &str) -> Completed {
        Completed { exit: Some(exit), stdout: stdout.to_string(), stderr: stderr.to_string(), duration: Duration::ZERO }
    }

    #[test]
    fn kubectl_runs_only_where_its_kubeconfig_names_a_loopback_https_server() {
        let ask = Ask::KubectlServer(RunAs::Login);
        assert!(ask.judge("lab-cp-1", answered(0, "https://127.0.20.10:6443", "")).is_ok());
        assert!(ask.judge("lab-cp-1", answered(0, "https://localhost:6443\n", "")).is_ok());
        assert!(ask.judge("lab-cp-1", answered(0, "https://[::1]:6443", "")).is_ok());
        let off = ask.judge("lab-cp-1", answered(0, "https://10.0.20.99:6443", "")).unwrap_err();
        assert!(matches!(off, ExecError::NotLoopback { .. }), "{off}");
        assert!(off.to_string().contains("lab-cp-1: kubectl reaches https://10.0.20.99:6443"), "{off}");
        let named = Ask::KubectlServer(RunAs::Root).judge("lab-cp-1", answered(0, "https://k8s-api.lan:6443", "")).unwrap_err();
        assert!(named.to_string().contains("lab-cp-1: sudo kubectl reaches https://k8s-api.lan:6443"), "{named}");
        // Plain HTTP on loopback is not what kubectl would reach through a kubeconfig's cluster.
        assert!(ask.judge("lab-cp-1", answered(0, "http://127.0.0.1:8080", "")).is_err());
    }

    #[test]
    fn kubectl_with_no_server_is_refused_with_what_it_said() {
        let ask = Ask::KubectlServer(RunAs::Login);
        let empty = ask.judge("lab-cp-1", answered(0, "", "")).unwrap_err();
        assert!(empty.to_string().contains("lab-cp-1: kubectl reaches no server"), "{empty}");
        let failed = ask.judge("lab-cp-1", answered(1, "", "error: current-context must exist in order to minify\n")).unwrap_err();
        assert!(failed.to_string().contains("current-context must exist"), "{failed}");
    }

    #[test]
    fn the_hosts_line_is_read_without_its_actions_and_comments() {
        let text = "# comment: hosts: dns\npasswd: files systemd\nhosts:   files mdns4_minimal [NOTFOUND=return] dns # tail\n";
        assert_eq!(hosts_services(text), Some(vec!["files".into(), "mdns4_minimal".into(), "dns".into()]));
        assert_eq!(hosts_services("passwd: files\n"), None);
        assert_eq!(hosts_services("hosts: files [ NOTFOUND = return ] myhostname"), Some(vec!["files".into(), "myhostname".into()]));
    }

    #[test]
    fn getent_runs_only_where_hosts_resolve_without_the_network() {
        let judge = |text: &str| Ask::Resolver.judge("lab-cp-1", answered(0, text, ""));
        assert!(judge("hosts: files\n").is_ok());
        assert!(judge("hosts: files myhostname\n").is_ok());
        for online in ["hosts: files dns\n", "hosts: files mdns4_minimal [NOTFOUND=return]\n", "hosts: resolve [!UNAVAIL=return] files\n"] {
            let refused = judge(online).unwrap_err();
            assert!(matches!(refused, ExecError::NotLoopback { .. }) && refused.to_string().contains("lab-cp-1: getent"), "{refused}");
        }
        assert!(judge("hosts: myhostname\n").is_err(), "no files: /etc/hosts is not read");
        assert!(judge("passwd: files\n").unwrap_err().to_string().contains("glibc's default asks DNS"));
        // No nsswitch.conf at all: the read script's exit for a missing file.
        let missing = Ask::Resolver.judge("lab-cp-1", answered(3, "", "")).unwrap_err();
        assert!(missing.to_string().contains("no /etc/nsswitch.conf"), "{missing}");
    }

    #[test]
    fn the_asks_are_the_documented_commands() {
        let must = HostMustConfirm { kubectl_server: [RunAs::Root, RunAs::Login].into(), resolver: true, offline: false };
        let shells: Vec<String> = must.asks().into_iter().map(Ask::shell).collect();
        assert_eq!(shells[0], "kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'");
        assert_eq!(shells[1], "sudo kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'");
        assert!(shells[2].contains("/etc/nsswitch.conf"), "{}", shells[2]);
        assert!(HostMustConfirm::default().is_empty() && HostMustConfirm::default().asks().is_empty());
    }
}
