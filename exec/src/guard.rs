//! The loopback guard: with `PLAN_LOOPBACK_ONLY=1`, nothing leaves 127.0.0.0/8.
//!
//! Tests set the variable so that a mistake in a fixture (a scenario with a real address, an ssh
//! config that maps a loopback name elsewhere) fails loudly instead of touching a real machine.

use crate::address;
use crate::confirm::{HostMustConfirm, RunAs};
use crate::simple_command::{simple_commands, SimpleCommand};
use crate::ExecError;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// The environment variable that turns the guard on (value `1`).
pub const LOOPBACK_ONLY_VAR: &str = "PLAN_LOOPBACK_ONLY";

/// Whether destinations off loopback are refused. Transports hold one; read it from the
/// environment once with [`Guard::from_env`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub loopback_only: bool,
}

impl Guard {
    /// Destinations off loopback are refused.
    pub const LOOPBACK_ONLY: Guard = Guard { loopback_only: true };
    /// Nothing is refused (a real run on real hosts).
    pub const OPEN: Guard = Guard { loopback_only: false };

    /// The guard as `PLAN_LOOPBACK_ONLY` sets it.
    pub fn from_env() -> Guard {
        Guard { loopback_only: std::env::var(LOOPBACK_ONLY_VAR).is_ok_and(|v| v == "1") }
    }

    /// Refuses `address` when the guard is on and it is not loopback.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming the destination.
    pub fn check_address(self, destination: &str, address: Ipv4Addr) -> Result<(), ExecError> {
        if self.loopback_only && !address.is_loopback() {
            return Err(ExecError::NotLoopback { destination: format!("{destination} ({address})"), why: String::new() });
        }
        Ok(())
    }

    /// Refuses an SSH destination when the guard is on and ssh itself would go off loopback: the
    /// effective `hostname` that `ssh -G` resolves (an ssh config may remap a name) must be a loopback
    /// address, and no ProxyJump or ProxyCommand may be set. Before that, in every mode, the
    /// configuration's text is read by [`crate::ssh_config::check`].
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`], [`ExecError::SshConfigRefused`], or [`ExecError::Ssh`] when
    /// `ssh -G` cannot run.
    pub fn check_ssh_destination(self, label: &str, user: &str, address: Ipv4Addr, config: Option<&Path>) -> Result<(), ExecError> {
        self.check_address(label, address)?;
        // Read by us first, in every mode: `ssh -G` below would itself run a `Match exec`.
        crate::ssh_config::check(config, self)?;
        if !self.loopback_only {
            return Ok(());
        }
        let mut command = Command::new("ssh");
        if let Some(config) = config {
            command.arg("-F").arg(config);
        }
        command.arg("-G").arg(format!("{user}@{address}"));
        let output = command.output().map_err(|e| ExecError::Ssh { host: label.to_string(), reason: format!("ssh -G: {e}") })?;
        if !output.status.success() {
            return Err(ExecError::Ssh {
                host: label.to_string(),
                reason: format!("ssh -G failed: {}", crate::redact::redact(String::from_utf8_lossy(&output.stderr).trim())),
            });
        }
        let resolved = String::from_utf8_lossy(&output.stdout);
        for line in resolved.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let refuse = |why: String| Err(ExecError::NotLoopback { destination: format!("{label} ({address})"), why });
            match key {
                "hostname" => {
                    let loopback = value == "localhost" || value.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
                    if !loopback {
                        return refuse(format!(": the ssh config maps it to {value}"));
                    }
                }
                "proxyjump" | "proxycommand" if value != "none" && !value.is_empty() => {
                    return refuse(format!(": the ssh config sets {key} {value}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// [`Guard::check_ssh_destination`] for every host, before any is connected to: a run that
    /// would reach one host off loopback is refused before it reaches the others.
    ///
    /// # Errors
    /// As [`Guard::check_ssh_destination`], for the first host refused.
    pub fn check_hosts(self, hosts: &[crate::target::HostTarget], config: Option<&Path>) -> Result<(), ExecError> {
        // Even for no host: the file is refused before anything could read it with ssh.
        crate::ssh_config::check(config, self)?;
        hosts.iter().try_for_each(|host| self.check_ssh_destination(&host.name, &host.user, host.address, config))
    }

    /// Refuses a URL (an API server, an etcd endpoint the workstation dials) when the guard is on
    /// and its host is not a loopback IP literal or `localhost`: a name could resolve anywhere.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming the URL.
    pub fn check_url(self, destination: &str, url: &str) -> Result<(), ExecError> {
        if !self.loopback_only {
            return Ok(());
        }
        let host = crate::etcd::url_host(url);
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        if loopback {
            Ok(())
        } else {
            Err(ExecError::NotLoopback { destination: format!("{destination} {url}"), why: String::new() })
        }
    }

    /// Refuses a command for a host when the guard is on and its text may leave loopback: a
    /// non-loopback IPv4 literal, a URL whose host is not a loopback literal or `localhost`, a
    /// program whose destination comes from configuration ([`HIDDEN_DESTINATION_PROGRAMS`]: ssh,
    /// terraform, git, DNS look-ups), or a dialling program (curl, nc, socat, etcdctl…) given a
    /// host name. What only the host knows is returned for it to confirm, not refused: the server
    /// of a `kubectl` with no `--server` (its kubeconfig's), and whether `getent hosts` asks the
    /// network (its nsswitch.conf); the SSH transport asks the host ([`crate::confirm`]).
    ///
    /// Addresses are read in every notation inet_aton accepts (`10.1`, `167772161`, `0x0a000001`,
    /// `012.0.0.1`; the short and bare forms only as a dialling program's arguments, where they
    /// cannot be versions or counts), IPv6 literals (`fe80::1`, `[::ffff:10.0.0.1]`), and
    /// `name:port` anywhere in the text.
    ///
    /// # Caveats
    /// A courtesy, not the guarantee. A check of text, and so a blacklist: with the guard on, hosts are loopback addresses, which
    /// is to say this machine, in this machine's network (a lab's etcd listens there), so the
    /// command cannot be cut off from the network as a local command is. A program it does not
    /// know (python, php), a program run by another (`sh -c '…'`, `timeout 5 kubectl`) or a file
    /// whose content is run (`$(cat /root/.plan-join-command)`) can still reach what it names.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming what was refused.
    ///
    /// ```
    /// use plan_exec::confirm::RunAs;
    /// use plan_exec::guard::Guard;
    /// let must = Guard::LOOPBACK_ONLY.check_remote_command("lab-cp-1", "sudo kubectl get nodes").unwrap();
    /// assert_eq!(must.kubectl_server.into_iter().collect::<Vec<_>>(), vec![RunAs::Root]);
    /// assert!(Guard::LOOPBACK_ONLY.check_remote_command("lab-cp-1", "kubectl --server=https://127.0.20.99:6443 get nodes").unwrap().is_empty());
    /// assert!(Guard::LOOPBACK_ONLY.check_remote_command("lab-cp-1", "dig lab-cp-2.lab.test").is_err());
    /// ```
    pub fn check_remote_command(self, host: &str, shell: &str) -> Result<HostMustConfirm, ExecError> {
        self.check_command(host, shell, false)
    }

    /// [`Self::check_remote_command`] for a command of the plan's workstation run on another
    /// machine (`--workstation`), held also to the local rule (no ssh, scp, sftp or rsync of its
    /// own: remote work goes through the transport). Under the guard such a command runs cut off
    /// from the network on that machine ([`HostMustConfirm::offline`]), as a local command runs
    /// here, unless it visibly needs the network: a `kubectl` (its server asked of the machine),
    /// a dialling program, a URL. So `timeout 600 terraform apply`, `sh -c 'git push'` or a
    /// program the guard does not know cannot reach anything. A command that needs the network
    /// and also calls a program whose destination comes from configuration (terraform, git) is
    /// refused: it cannot be both.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming what was refused.
    pub fn check_workstation_command(self, host: &str, shell: &str) -> Result<HostMustConfirm, ExecError> {
        self.check_local_command(shell)?;
        // `offline` comes back set where a program takes its destination from configuration.
        let mut must = self.check_command(host, shell, true)?;
        if !self.loopback_only {
            return Ok(must);
        }
        let dials = simple_commands(shell).iter().any(|c| DIALING_PROGRAMS.contains(&c.program.as_str()));
        let needs_network = !must.kubectl_server.is_empty() || dials || !urls(shell).is_empty();
        if needs_network && must.offline {
            return Err(ExecError::NotLoopback {
                destination: format!("{host}: command mixing a program cut off from the network with one that needs it"),
                why: ": split it, or run it without PLAN_LOOPBACK_ONLY".to_string(),
            });
        }
        must.offline = !needs_network;
        Ok(must)
    }

    fn check_command(self, host: &str, shell: &str, workstation: bool) -> Result<HostMustConfirm, ExecError> {
        let mut must = HostMustConfirm::default();
        if !self.loopback_only {
            return Ok(must);
        }
        let refuse =
            |what: String, why: &str| Err(ExecError::NotLoopback { destination: format!("{host}: command {what}"), why: why.to_string() });
        if let Some(address) = address::addresses(shell).into_iter().find(|a| !address::is_loopback(*a)) {
            return refuse(format!("naming {address}"), "");
        }
        if let Some(name) = address::named_host_ports(shell).first() {
            return refuse(format!("naming {name} with a port"), ": a name could resolve anywhere");
        }
        for url in urls(shell) {
            self.check_url(&format!("{host}: command naming"), url)?;
        }
        for command in simple_commands(shell) {
            let program = command.program.as_str();
            match program {
                "kubectl" => match kubectl_destination(&command, shell) {
                    Ok(KubectlDestination::Named) => {}
                    Ok(KubectlDestination::Kubeconfig(run_as)) => {
                        must.kubectl_server.insert(run_as);
                    }
                    Err(why) => return refuse(format!("calling {program}"), &format!(": {why}")),
                },
                "getent" => match getent_database(&command) {
                    Ok(()) => must.resolver = true,
                    Err(why) => return refuse(format!("calling {program}"), &format!(": {why}")),
                },
                _ if HIDDEN_DESTINATION_PROGRAMS.contains(&program) && workstation => must.offline = true,
                _ if HIDDEN_DESTINATION_PROGRAMS.contains(&program) => {
                    return refuse(format!("calling {program}"), ": it takes its destination from configuration the guard cannot read");
                }
                _ if DIALING_PROGRAMS.contains(&program) => {
                    if let Some(name) = command.arguments.iter().filter_map(|a| named_host(a)).find(|h| *h != "localhost") {
                        return refuse(format!("calling {program} with {name}"), ": a name could resolve anywhere");
                    }
                    // `nc 10.1 22`, `ping 167772161`: what inet_aton reads, only where a program dials.
                    if let Some(found) =
                        command.arguments.iter().filter_map(|a| address::dialled_address(a)).find(|a| !address::is_loopback(*a))
                    {
                        return refuse(format!("calling {program} with {found}"), "");
                    }
                }
                _ => {}
            }
        }
        Ok(must)
    }

    /// Refuses a local command when the guard is on and it names a non-loopback IPv4 address or calls
    /// ssh/scp itself (remote work goes through the SSH transport, which the guard checks).
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming the address or the program.
    pub fn check_local_command(self, shell: &str) -> Result<(), ExecError> {
        if !self.loopback_only {
            return Ok(());
        }
        if let Some(found) = address::addresses(shell).into_iter().find(|a| !address::is_loopback(*a)) {
            return Err(ExecError::NotLoopback { destination: format!("local command naming {found}"), why: String::new() });
        }
        let words = shell.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'));
        if let Some(program) = words.into_iter().find(|w| matches!(*w, "ssh" | "scp" | "sftp" | "rsync")) {
            return Err(ExecError::NotLoopback {
                destination: format!("local command calling {program}"),
                why: ": remote commands go through the SSH transport".to_string(),
            });
        }
        Ok(())
    }
}

/// Programs whose destination comes from configuration or the environment (an ssh config, a
/// git remote, terraform state, a DNS server), not from the command line the guard reads:
/// refused. `kubectl` and `getent` are not here: their destination is asked of the host
/// ([`HostMustConfirm`]).
const HIDDEN_DESTINATION_PROGRAMS: [&str; 14] =
    ["ssh", "scp", "sftp", "rsync", "helm", "terraform", "terragrunt", "tg", "git", "apt", "apt-get", "nslookup", "dig", "host"];
/// Programs that dial what their arguments name: every host-like argument must be loopback.
const DIALING_PROGRAMS: [&str; 12] =
    ["curl", "wget", "nc", "ncat", "netcat", "socat", "ping", "ping6", "telnet", "etcdctl", "kubeadm", "openssl"];
/// `kubectl` options that choose the cluster by configuration: with one of them, the host's
/// answer to [`crate::confirm::KUBECTL_SERVER_ASK`] would be about another cluster.
const KUBECTL_CLUSTER_OPTIONS: [&str; 3] = ["--kubeconfig", "--context", "--cluster"];
/// `sudo` options that leave kubectl's kubeconfig where plain `sudo` would (non-interactive, HOME
/// set to the target's): letters of a short-option word.
const SUDO_PLAIN_OPTIONS: &str = "nH";
/// The `getent` databases that look host names up through nsswitch.conf's `hosts:` line.
const GETENT_HOSTS_DATABASES: [&str; 4] = ["hosts", "ahosts", "ahostsv4", "ahostsv6"];

/// Where a `kubectl` goes: a `--server` its text names (checked with the command's URLs), or the
/// server of its kubeconfig, which the host is asked as `RunAs`.
#[derive(Debug, PartialEq, Eq)]
enum KubectlDestination {
    Named,
    Kubeconfig(RunAs),
}

/// Where `command` (a `kubectl`) goes, or why the guard cannot know: a `--server` it cannot read,
/// a kubeconfig, context or cluster the command itself chooses (the ask would have to reproduce
/// the shell: `export`, sudo's environment), sudo as another account or with other options.
fn kubectl_destination(command: &SimpleCommand, shell: &str) -> Result<KubectlDestination, String> {
    let arguments = &command.arguments;
    let server_at = arguments.iter().position(|a| a == "--server" || a == "-s" || a.starts_with("--server="));
    if let Some(at) = server_at {
        let value = arguments[at].strip_prefix("--server=").or_else(|| arguments.get(at + 1).map(String::as_str)).unwrap_or_default();
        // A literal URL, which the command's URLs were checked for; `--server=$S` could be anything.
        return if value.contains("://") && !value.contains('$') {
            Ok(KubectlDestination::Named)
        } else {
            Err(format!("its --server {value:?} is not a URL the guard can read"))
        };
    }
    let chooses = arguments.iter().find_map(|a| KUBECTL_CLUSTER_OPTIONS.iter().find(|o| a == *o || a.starts_with(&format!("{o}="))));
    if let Some(option) = chooses {
        return Err(format!("it chooses its cluster with {option}, which the guard does not ask the host about; give --server"));
    }
    if shell.contains("KUBECONFIG") || command.assignments.iter().any(|a| a.starts_with("HOME=")) {
        return Err(
            "the command sets where kubectl finds its kubeconfig, which the guard does not ask the host about; give --server".to_string()
        );
    }
    match &command.sudo {
        None => Ok(KubectlDestination::Kubeconfig(RunAs::Login)),
        Some(options) if options.iter().all(|o| o == "--" || o.len() > 1 && o[1..].chars().all(|c| SUDO_PLAIN_OPTIONS.contains(c))) => {
            Ok(KubectlDestination::Kubeconfig(RunAs::Root))
        }
        Some(options) => Err(format!(
            "it runs under sudo {}, whose kubeconfig the guard does not ask (it asks as the login, or as root with plain sudo); give --server",
            options.join(" ")
        )),
    }
}

/// `getent`'s database must be one of the host-name ones, looked up through nsswitch.conf as it
/// stands (no `-s SERVICE` overriding it).
fn getent_database(command: &SimpleCommand) -> Result<(), String> {
    if let Some(service) = command.arguments.iter().find(|a| *a == "-s" || a.starts_with("--service") || a.starts_with("-s")) {
        return Err(format!("{service} chooses the name service, not the host's nsswitch.conf"));
    }
    match command.arguments.iter().find(|a| !a.starts_with('-')) {
        Some(database) if GETENT_HOSTS_DATABASES.contains(&database.as_str()) => Ok(()),
        Some(database) => Err(format!("the {database} database may ask the network (the guard asks the host about host names only)")),
        None => Err("no database named".to_string()),
    }
}

/// A word that names a machine rather than a file: `name.zone`, `host:port`, `TCP:host:port`.
fn named_host(word: &str) -> Option<&str> {
    let value = word.split_once('=').map_or(word, |(_, v)| v);
    if value.contains('/') || value.starts_with('-') || value.is_empty() {
        return None;
    }
    let value = value.strip_prefix("TCP:").or_else(|| value.strip_prefix("TCP4:")).unwrap_or(value);
    let host = match value.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => value,
    };
    let labels: Vec<&str> = host.split('.').collect();
    let dotted_name = labels.len() > 1
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_alphabetic()));
    (dotted_name || host == "localhost").then_some(host)
}

/// Every `scheme://…` URL in `text`; a comma ends one (`etcdctl --endpoints=a,b` lists several).
fn urls(text: &str) -> Vec<&str> {
    static URL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let url =
        URL.get_or_init(|| regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s'"|;)`,]+"#).expect("a constant pattern that compiles"));
    url.find_iter(text).map(|m| m.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Guard = Guard::LOOPBACK_ONLY;
    const OFF: Guard = Guard::OPEN;

    /// What the host must confirm for `shell`, the guard on.
    fn must(shell: &str) -> HostMustConfirm {
        ON.check_remote_command("lab-cp-1", shell).unwrap_or_else(|e| panic!("{shell}: {e}"))
    }

    fn refused_because(shell: &str) -> String {
        ON.check_remote_command("lab-cp-1", shell).expect_err(shell).to_string()
    }

    #[test]
    fn kubectl_without_a_server_is_asked_of_the_host_as_it_runs() {
        let login = HostMustConfirm { kubectl_server: [RunAs::Login].into(), resolver: false, offline: false };
        let root = HostMustConfirm { kubectl_server: [RunAs::Root].into(), resolver: false, offline: false };
        assert_eq!(must("kubectl -n kube-system get cm kubeadm-config -o yaml > /tmp/kubeadm-config.backup.yaml"), login);
        assert_eq!(must("sudo kubectl get nodes"), root);
        assert_eq!(must("sudo -n kubectl get nodes"), root);
        assert_eq!(must("if true; then sudo -- kubectl get nodes; fi"), root);
        assert_eq!(must("for i in $(seq 45); do [ \"$(kubectl get nodes -o name | wc -l)\" -gt 0 ] || exit 1; done"), login);
        let both = must("kubectl get nodes && sudo kubectl get pods");
        assert_eq!(both.kubectl_server.into_iter().collect::<Vec<_>>(), vec![RunAs::Login, RunAs::Root]);
        // A literal loopback --server is the command's own: nothing to ask.
        assert!(must("kubectl --server=https://127.0.20.99:6443 get nodes").is_empty());
        assert!(must("kubectl -s https://127.0.20.99:6443 get nodes").is_empty());
        // The guard off asks nothing.
        assert!(OFF.check_remote_command("lab-cp-1", "kubectl get nodes").unwrap().is_empty());
    }

    #[test]
    fn kubectl_whose_kubeconfig_the_command_chooses_is_refused_not_asked() {
        for shell in [
            "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes",
            "kubectl --kubeconfig=/etc/kubernetes/admin.conf get nodes",
            "kubectl --context prod get nodes",
            "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get nodes",
            "export KUBECONFIG=/etc/kubernetes/admin.conf; kubectl get nodes",
            "sudo env HOME=/home/wizard kubectl get nodes",
            "sudo -u wizard kubectl get nodes",
            "sudo -E kubectl get nodes",
            "kubectl --server=$SERVER get nodes",
        ] {
            let why = refused_because(shell);
            assert!(why.contains("lab-cp-1: command calling kubectl"), "{shell}: {why}");
        }
        assert!(refused_because("kubectl --server=https://10.0.20.99:6443 get nodes").contains("10.0.20.99"));
    }

    #[test]
    fn sudo_s_options_with_a_value_do_not_hide_the_program() {
        // Before, `wizard` was taken for the program and the kubectl after it went unseen.
        assert!(refused_because("sudo -u wizard ssh other true").contains("calling ssh"));
        assert!(refused_because("sudo --user wizard git push").contains("calling git"));
        assert!(refused_because("env -u HOME dig x.lab.test").contains("calling dig"));
        assert!(must("sudo -nu root true").is_empty());
    }

    #[test]
    fn getent_hosts_is_asked_of_the_host_and_other_look_ups_refused() {
        assert_eq!(
            must("getent hosts lab-cp-2.lab.test"),
            HostMustConfirm { kubectl_server: Default::default(), resolver: true, offline: false }
        );
        assert!(must("getent ahostsv4 lab-cp-2").resolver);
        // Only getent goes through the host's nsswitch.conf: dig asks a DNS server whatever it says.
        assert!(refused_because("dig lab-cp-2.lab.test").contains("calling dig"));
        assert!(refused_because("getent -s dns hosts lab-cp-2").contains("chooses the name service"));
        assert!(refused_because("getent passwd wizard").contains("the passwd database"));
    }

    #[test]
    fn the_guard_refuses_addresses_off_loopback_only_when_on() {
        assert!(ON.check_address("k8s-node1", Ipv4Addr::new(10, 0, 20, 101)).is_err());
        assert!(ON.check_address("lab-wk-1", Ipv4Addr::new(127, 0, 20, 21)).is_ok());
        assert!(OFF.check_address("k8s-node1", Ipv4Addr::new(10, 0, 20, 101)).is_ok());
    }

    #[test]
    fn the_guard_refuses_an_ssh_config_that_maps_loopback_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, "Host 127.0.20.21\n  HostName 192.0.2.21\n").unwrap();
        let remapped = ON.check_ssh_destination("lab-wk-1", "root", Ipv4Addr::new(127, 0, 20, 21), Some(&config)).unwrap_err();
        assert!(remapped.to_string().contains("maps it to 192.0.2.21"), "{remapped}");
        assert!(ON.check_ssh_destination("lab-cp-1", "root", Ipv4Addr::new(127, 0, 20, 10), Some(&config)).is_ok());
        // A proxy is refused from the text, with its line, whichever host it is under.
        std::fs::write(&config, "Host 127.0.20.21\n  HostName 127.0.20.21\nHost 127.0.20.22\n  ProxyJump jump.example\n").unwrap();
        let jump = ON.check_ssh_destination("lab-wk-1", "root", Ipv4Addr::new(127, 0, 20, 21), Some(&config)).unwrap_err();
        assert!(jump.to_string().contains("ssh_config:4: `proxyjump jump.example`"), "{jump}");
    }

    #[test]
    fn a_match_exec_is_refused_before_ssh_g_could_run_it() {
        let dir = tempfile::tempdir().unwrap();
        let (config, marker) = (dir.path().join("ssh_config"), dir.path().join("ran"));
        std::fs::write(&config, format!("Match exec \"touch {}\"\n  User root\n", marker.display())).unwrap();
        for guard in [ON, OFF] {
            let refused = guard.check_ssh_destination("lab-cp-1", "root", Ipv4Addr::new(127, 0, 20, 10), Some(&config)).unwrap_err();
            assert!(matches!(refused, ExecError::SshConfigRefused { line: 1, .. }), "{refused}");
            assert!(guard.check_hosts(&[], Some(&config)).is_err());
        }
        assert!(!marker.exists(), "ssh -G ran the Match exec");
    }

    #[test]
    fn the_guard_refuses_local_commands_that_leave_loopback() {
        assert!(ON.check_local_command("curl https://10.0.20.99:6443/readyz").is_err());
        assert!(ON.check_local_command("for n in a; do ssh wizard@$n 'x'; done").is_err());
        assert!(ON.check_local_command("curl https://127.0.20.99:6443/readyz && kubectl get nodes").is_ok());
        // etcdctl takes several endpoints, comma-separated: each is judged on its own.
        let health = |endpoints: &str| format!("etcdctl --endpoints='{endpoints}' endpoint health -w json");
        assert!(ON.check_remote_command("lab-cp-1", &health("https://127.0.20.10:2379,https://127.0.20.11:2379")).is_ok());
        assert!(ON.check_remote_command("lab-cp-1", &health("https://127.0.20.10:2379,https://etcd.example.lan:2379")).is_err());
        assert!(OFF.check_local_command("ssh 10.0.20.1 uptime").is_ok());
    }

    #[test]
    fn the_guard_refuses_remote_commands_that_may_leave_loopback() {
        let refused = [
            "curl -sk https://k8s-apiserver.viktorbarzin.lan:6443/readyz",
            "cd /srv/infra && scripts/tg apply -target=module.technitium",
            "sudo env TF_LOG=1 terraform apply",
            "git push",
            "echo 'show stat' | socat - TCP:lb.example.lan:9000",
            "nc -z api.lab.test 6443",
            "sudo kubeadm join 10.0.20.99:6443 --token x",
            "echo x | ssh other true",
            "sudo etcdctl --endpoints=https://etcd.lab.test:2379 member list",
            "if true; then wget -q lab.example.org; fi",
            "for n in a b; do scp x $n:/tmp; done",
        ];
        for shell in refused {
            let error = ON.check_remote_command("lab-cp-1", shell).expect_err(shell);
            assert!(matches!(error, ExecError::NotLoopback { .. }), "{shell}: {error}");
            assert!(OFF.check_remote_command("lab-cp-1", shell).is_ok_and(|m| m.is_empty()), "the guard off: {shell}");
        }
        let allowed = [
            "sudo sed -i.bak 's|server: https://127.0.20.10:6443|server: https://127.0.20.99:6443|' /etc/kubernetes/kubelet.conf && sudo systemctl restart kubelet",
            "if sudo test -e /etc/kubernetes/kubelet.conf; then sudo cat /etc/kubernetes/kubelet.conf; else exit 3; fi",
            "sudo env ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --dial-timeout=2s --cacert=/etc/kubernetes/pki/etcd/ca.crt member list -w json",
            "sudo openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -ext subjectAltName",
            "kubectl --server=https://127.0.20.99:6443 get nodes",
            "printf 'show stat\\n' | sudo socat stdio UNIX-CONNECT:/tmp/haproxy.socket",
            "sudo install -m 600 /dev/stdin /root/.plan-join-command",
            "cat > /tmp/haproxy-bootstrap.php",
            "curl --cacert /etc/kubernetes/pki/ca.crt https://127.0.20.99:6443/readyz",
            "sudo grep -c oidc-issuer-url /etc/kubernetes/manifests/kube-apiserver.yaml",
        ];
        for shell in allowed {
            assert!(must(shell).is_empty(), "{shell}");
        }
    }

    #[test]
    fn the_guard_reads_addresses_in_every_notation_and_names_with_ports() {
        let refused = [
            "nc 10.1 22",
            "nc 167772161 22",
            "ping -c 1 0x0a000001",
            "nc -z 012.0.0.1 22",
            "curl -g http://0xa.0.0.1:80/",
            "ping6 fe80::1",
            "curl -g https://[2001:db8::1]:6443/readyz",
            "nc ::ffff:10.0.0.1 22",
            "echo | openssl s_client -connect k8s-master:6443",
            "curl https://k8s-master:6443/readyz",
            "socat - TCP:lb:9000",
        ];
        for shell in refused {
            let error = ON.check_remote_command("lab-cp-1", shell).expect_err(shell);
            assert!(matches!(error, ExecError::NotLoopback { .. }), "{shell}: {error}");
        }
        let allowed = [
            "nc -z 127.1 22",
            "ping -c 1 2130706433",
            "curl -g https://[::1]:6443/readyz",
            "echo | openssl s_client -connect 127.0.20.10:6443 2>/dev/null | openssl x509 -noout -ext subjectAltName",
            "nc -z localhost:22",
        ];
        for shell in allowed {
            assert!(must(shell).is_empty(), "{shell}");
        }
    }

    #[test]
    fn the_guard_refuses_urls_off_loopback_and_names() {
        assert!(ON.check_url("api", "https://10.0.20.99:6443").is_err());
        assert!(ON.check_url("api", "https://k8s-apiserver.viktorbarzin.lan:6443").is_err());
        assert!(ON.check_url("api", "http://127.0.0.1:38001/").is_ok());
        assert!(ON.check_url("api", "https://[::1]:6443").is_ok());
        assert!(ON.check_url("api", "https://localhost:6443").is_ok());
        assert!(OFF.check_url("api", "https://10.0.20.99:6443").is_ok());
    }

    #[test]
    fn literals_are_found_in_urls_and_sed_expressions() {
        use std::net::IpAddr;
        let found = address::addresses("sed 's|server: https://10.0.20.100:6443|server: https://127.0.20.99:6443|' x; v1.34.2 2001");
        assert_eq!(found, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 20, 100)), IpAddr::V4(Ipv4Addr::new(127, 0, 20, 99))]);
        assert!(address::addresses("kubeadm v1.34.0").is_empty(), "a version is not an address");
    }
    #[test]
    fn a_workstation_command_that_reads_its_destination_from_configuration_runs_cut_off_from_the_network() {
        let on = Guard::LOOPBACK_ONLY;
        let apply = on.check_workstation_command("workstation@ws", "cd /repo && scripts/tg apply -target=module.technitium").expect("runs");
        assert!(apply.offline && apply.kubectl_server.is_empty(), "{apply:?}");
        assert!(on.check_workstation_command("workstation@ws", "git -C /repo commit -am x").expect("runs").offline);
        // What the guard cannot read is cut off too: a prefix it does not know, a shell, a listing.
        for unknown in ["timeout 600 scripts/tg apply x", "sh -c 'git push'", "ls -lh /backup | tail -5", "make deploy"] {
            assert!(on.check_workstation_command("workstation@ws", unknown).expect("runs").offline, "{unknown}");
        }
        let dialled = on.check_workstation_command("workstation@ws", "curl -sk https://127.0.20.99:6443/readyz").expect("runs");
        assert!(!dialled.offline, "a dialling program keeps the network");
        // The same text on a node is refused: only the workstation's commands are cut off.
        assert!(on.check_remote_command("cp-1", "scripts/tg apply x").is_err());
        let kubectl = on.check_workstation_command("workstation@ws", "kubectl get nodes").expect("asked");
        assert!(!kubectl.offline && !kubectl.kubectl_server.is_empty(), "{kubectl:?}");
        for refused in ["scripts/tg apply x && kubectl get nodes", "git pull && curl https://127.0.0.1:6443/readyz", "ssh 127.0.0.2 true"] {
            assert!(on.check_workstation_command("workstation@ws", refused).is_err(), "{refused}");
        }
        assert!(Guard::OPEN
            .check_workstation_command("workstation@ws", "scripts/tg apply x && kubectl get nodes")
            .expect("off")
            .is_empty());
    }

    #[test]
    fn offline_wraps_the_whole_command() {
        let wrapped = crate::confirm::offline("cd /r && git commit -m 'a b'", true);
        assert_eq!(wrapped, format!("unshare --net -- sh -c {}", crate::transport::quote("cd /r && git commit -m 'a b'")));
        assert!(crate::confirm::offline("true", false).starts_with("unshare --user --map-root-user --net -- sh -c "));
    }
}
