//! The workstation on another machine (`plan execute --workstation HOST`): the ssh destination the
//! plan's workstation and infra-repo commands run on, and the loopback guard's look at where ssh
//! takes it.

use crate::guard::Guard;
use crate::ExecError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// The machine the plan's workstation and infra-repo commands run on when it is not the one
/// running `plan` (a bastion that holds the infra repo, kubectl and the name resolution): an ssh
/// destination as the ssh config knows it (`bastion`, `ops@bastion`), connected to by that name,
/// so its `Host` block applies (HostName, Port, User, IdentityFile). It is no machine of the
/// scenario and has no address of its own here: ssh resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkstationHost {
    destination: String,
}

impl WorkstationHost {
    /// `HOST` or `USER@HOST`: letters, digits, `.`, `_` and `-`, not starting with `-` or `.`
    /// (ssh would read a leading `-` as an option).
    ///
    /// # Errors
    /// The text is no such destination; the message says why.
    ///
    /// ```
    /// use plan_exec::workstation::WorkstationHost;
    /// let bastion = WorkstationHost::parse("ops@bastion").unwrap();
    /// assert_eq!((bastion.destination(), bastion.name()), ("ops@bastion", "bastion"));
    /// assert!(WorkstationHost::parse("-oProxyCommand=x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<WorkstationHost, String> {
        let word = |part: &str, what: &str| -> Result<(), String> {
            let allowed = part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if part.is_empty() || !allowed || part.starts_with(['-', '.']) {
                return Err(format!(
                    "{what} `{part}` is not one: letters, digits, `.`, `_` and `-`, not starting with `-` or `.` (the name the ssh config knows, or USER@NAME)"
                ));
            }
            Ok(())
        };
        match text.split_once('@') {
            Some((user, host)) => {
                word(user, "the user")?;
                word(host, "the host")?;
            }
            None => word(text, "the host")?,
        }
        Ok(WorkstationHost { destination: text.to_string() })
    }

    /// What ssh is given: `HOST` or `USER@HOST`, as the operator wrote it.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The login the destination names; without one, this process's user (ssh's default; a
    /// `User` line of the ssh config is not read here).
    pub fn user(&self) -> String {
        match self.destination.split_once('@') {
            Some((user, _)) => user.to_string(),
            None => std::env::var("USER").unwrap_or_default(),
        }
    }

    /// The machine's name, without the user: how places on it are labelled.
    pub fn name(&self) -> &str {
        self.destination.split_once('@').map_or(self.destination.as_str(), |(_, host)| host)
    }

    /// Refuses the destination when the loopback guard is on and ssh would take it off loopback:
    /// the host `ssh -G` resolves the name to (its `Host` block's HostName) must be an IPv4
    /// loopback address or `localhost`, and no ProxyJump or ProxyCommand may be set; that address
    /// is then checked as every host's is ([`Guard::check_ssh_destination`]). Before that, in every
    /// mode, the configuration's text is read by [`crate::ssh_config::check`].
    ///
    /// # Caveats
    /// A HostName that is a name (`bastion.lan`) is refused under the guard even when it would
    /// resolve to loopback: a name could resolve anywhere.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`], [`ExecError::SshConfigRefused`], or [`ExecError::Ssh`] when
    /// `ssh -G` cannot run.
    pub fn check(&self, guard: Guard, config: Option<&Path>) -> Result<(), ExecError> {
        // Read by us first, in every mode: `ssh -G` below would itself run a `Match exec`.
        crate::ssh_config::check(config, guard)?;
        if !guard.loopback_only {
            return Ok(());
        }
        let resolved = self.resolve(config)?;
        let refuse = |why: String| Err(ExecError::NotLoopback { destination: format!("workstation {}", self.destination), why });
        if let Some((key, value)) = &resolved.proxy {
            return refuse(format!(": the ssh config sets {key} {value}"));
        }
        let address = match resolved.hostname.as_str() {
            "localhost" => Ipv4Addr::LOCALHOST,
            hostname => match hostname.parse::<Ipv4Addr>() {
                Ok(address) => address,
                Err(_) => return refuse(format!(": the ssh config maps it to {hostname}, not an IPv4 address")),
            },
        };
        if !address.is_loopback() {
            return refuse(format!(": the ssh config maps it to {address}"));
        }
        guard.check_ssh_destination(&format!("workstation {}", self.name()), &resolved.user, address, config)
    }

    /// What `ssh -G` makes of the destination.
    fn resolve(&self, config: Option<&Path>) -> Result<Resolved, ExecError> {
        let mut command = Command::new("ssh");
        if let Some(config) = config {
            command.arg("-F").arg(config);
        }
        command.arg("-G").arg(&self.destination);
        let failed = |reason: String| ExecError::Ssh { host: self.destination.clone(), reason };
        let output = command.output().map_err(|e| failed(format!("ssh -G: {e}")))?;
        if !output.status.success() {
            return Err(failed(format!("ssh -G failed: {}", crate::redact::redact(String::from_utf8_lossy(&output.stderr).trim()))));
        }
        Ok(Resolved::from_ssh_g(&String::from_utf8_lossy(&output.stdout)))
    }
}

impl std::fmt::Display for WorkstationHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.destination)
    }
}

/// The part of `ssh -G`'s output the guard reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resolved {
    hostname: String,
    user: String,
    /// `proxyjump` or `proxycommand` and its value, when one is set.
    proxy: Option<(String, String)>,
}

impl Resolved {
    fn from_ssh_g(text: &str) -> Resolved {
        let mut resolved = Resolved::default();
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "hostname" => resolved.hostname = value.to_string(),
                "user" => resolved.user = value.to_string(),
                "proxyjump" | "proxycommand" if value != "none" && !value.is_empty() && resolved.proxy.is_none() => {
                    resolved.proxy = Some((key.to_string(), value.to_string()));
                }
                _ => {}
            }
        }
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_a_name_or_user_at_name_and_nothing_ssh_reads_as_an_option() {
        for good in ["workstation", "ops@bastion", "bastion.lan", "127.0.30.5", "root@ws-1"] {
            assert_eq!(WorkstationHost::parse(good).unwrap().destination(), good);
        }
        for bad in ["", "-oProxyCommand=sh", "ops@", "@bastion", "a@b@c", "ssh://bastion", "bastion:22", "bas tion", ".hidden", "ws;ls"] {
            assert!(WorkstationHost::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(WorkstationHost::parse("ops@bastion").unwrap().name(), "bastion");
        assert_eq!(WorkstationHost::parse("bastion").unwrap().name(), "bastion");
    }

    #[test]
    fn ssh_g_is_read_for_where_it_goes_and_through_what() {
        let resolved = Resolved::from_ssh_g("user ops\nhostname 127.0.30.5\nport 2222\nproxycommand none\nproxyjump jump.lan\n");
        assert_eq!(resolved.hostname, "127.0.30.5");
        assert_eq!(resolved.user, "ops");
        assert_eq!(resolved.proxy, Some(("proxyjump".to_string(), "jump.lan".to_string())));
        assert_eq!(Resolved::from_ssh_g("hostname 127.0.0.1\nproxyjump none\n").proxy, None);
    }

    #[test]
    fn over_ssh_the_workstations_command_is_held_to_the_rule_for_hosts_before_anything_connects() {
        use crate::transport::{Request, Transport};
        let dir = tempfile::tempdir().unwrap();
        let options = crate::ssh::SshOptions { config: Some(dir.path().join("no-config")), control_dir: dir.path().join("ssh") };
        let mut ssh = crate::ssh::OpensshTransport::new(options, Guard::LOOPBACK_ONLY).unwrap();
        let host = WorkstationHost::parse("workstation").unwrap();
        // An address off loopback; terraform's state beside a kubectl that needs the network (one
        // command cannot be both cut off and asked); an ssh of its own. (A kubectl alone is asked of
        // the machine, terraform alone runs cut off from the network: both need the connection.)
        for shell in [
            "curl https://10.0.20.99:6443/readyz",
            "cd /srv/infra && scripts/tg apply stacks/flags && kubectl get nodes",
            "ssh 127.0.0.2 true",
        ] {
            let request = Request { step: "t", shell, stdin: None, secret: false, timeout: std::time::Duration::from_secs(5) };
            let refused = ssh.run_on_workstation(&host, &request).unwrap_err();
            // Refused by the guard, not by the missing ssh config a connection would read.
            assert!(matches!(refused, ExecError::NotLoopback { .. }), "{shell}: {refused}");
        }
    }

    fn config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh_config");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn under_the_guard_a_name_the_ssh_config_maps_to_loopback_passes_and_one_it_maps_elsewhere_is_refused() {
        let (_dir, path) = config(
            "Host workstation\n  HostName 127.0.30.5\n  User ops\n  Port 2222\n\
             Host bastion\n  HostName 10.0.20.5\n\
             Host named\n  HostName bastion.lan\n",
        );
        let guard = Guard::LOOPBACK_ONLY;
        WorkstationHost::parse("workstation").unwrap().check(guard, Some(&path)).unwrap();
        WorkstationHost::parse("root@workstation").unwrap().check(guard, Some(&path)).unwrap();
        for (name, says) in [("bastion", "10.0.20.5"), ("named", "bastion.lan"), ("unknown-name", "unknown-name")] {
            let refused = WorkstationHost::parse(name).unwrap().check(guard, Some(&path)).unwrap_err();
            assert!(matches!(refused, ExecError::NotLoopback { .. }) && refused.to_string().contains(says), "{name}: {refused}");
        }
        // A ProxyJump: the config's text check refuses it before ssh -G reads the file.
        let (_jumped, jumped) = config("Host workstation\n  HostName 127.0.30.6\n  ProxyJump 127.0.30.7\n");
        let refused = WorkstationHost::parse("workstation").unwrap().check(guard, Some(&jumped)).unwrap_err();
        assert!(matches!(refused, ExecError::SshConfigRefused { .. }), "{refused}");
        // The guard off: nothing is asked of ssh, the text check alone runs.
        WorkstationHost::parse("bastion").unwrap().check(Guard::OPEN, Some(&path)).unwrap();
    }
}
