//! The loopback guard: with `PLAN_LOOPBACK_ONLY=1`, nothing leaves 127.0.0.0/8.
//!
//! Tests set the variable so that a mistake in a fixture (a scenario with a real address, an ssh
//! config that maps a loopback name elsewhere) fails loudly instead of touching a real machine.

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
    /// address, and no ProxyJump or ProxyCommand may be set.
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`], or [`ExecError::Ssh`] when `ssh -G` cannot run.
    pub fn check_ssh_destination(self, label: &str, user: &str, address: Ipv4Addr, config: Option<&Path>) -> Result<(), ExecError> {
        self.check_address(label, address)?;
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
                reason: format!("ssh -G failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
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

    /// Refuses a local command when the guard is on and it names a non-loopback IPv4 address or calls
    /// ssh/scp itself (remote work goes through the SSH transport, which the guard checks).
    ///
    /// # Errors
    /// [`ExecError::NotLoopback`] naming the address or the program.
    pub fn check_local_command(self, shell: &str) -> Result<(), ExecError> {
        if !self.loopback_only {
            return Ok(());
        }
        for address in ipv4_literals(shell) {
            if !address.is_loopback() {
                return Err(ExecError::NotLoopback { destination: format!("local command naming {address}"), why: String::new() });
            }
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

/// Every dotted-quad IPv4 literal in `text`.
pub fn ipv4_literals(text: &str) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() && (start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'.')) {
            let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.').count();
            let candidate = text[start..end].trim_end_matches('.');
            if let Ok(address) = candidate.parse::<Ipv4Addr>() {
                found.push(address);
            }
            start = end.max(start + 1);
        } else {
            start += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Guard = Guard { loopback_only: true };
    const OFF: Guard = Guard { loopback_only: false };

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
        std::fs::write(&config, "Host 127.0.20.21\n  HostName 192.0.2.21\nHost 127.0.20.22\n  ProxyJump jump.example\n").unwrap();
        let remapped = ON.check_ssh_destination("lab-wk-1", "root", Ipv4Addr::new(127, 0, 20, 21), Some(&config)).unwrap_err();
        assert!(remapped.to_string().contains("maps it to 192.0.2.21"), "{remapped}");
        let jump = ON.check_ssh_destination("lab-wk-2", "root", Ipv4Addr::new(127, 0, 20, 22), Some(&config)).unwrap_err();
        assert!(jump.to_string().contains("proxyjump"), "{jump}");
        assert!(ON.check_ssh_destination("lab-cp-1", "root", Ipv4Addr::new(127, 0, 20, 10), Some(&config)).is_ok());
    }

    #[test]
    fn the_guard_refuses_local_commands_that_leave_loopback() {
        assert!(ON.check_local_command("curl https://10.0.20.99:6443/readyz").is_err());
        assert!(ON.check_local_command("for n in a; do ssh wizard@$n 'x'; done").is_err());
        assert!(ON.check_local_command("curl https://127.0.20.99:6443/readyz && kubectl get nodes").is_ok());
        assert!(OFF.check_local_command("ssh 10.0.20.1 uptime").is_ok());
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
        let found = ipv4_literals("sed 's|server: https://10.0.20.100:6443|server: https://127.0.20.99:6443|' x; v1.34.2 2001");
        assert_eq!(found, vec![Ipv4Addr::new(10, 0, 20, 100), Ipv4Addr::new(127, 0, 20, 99)]);
        assert!(ipv4_literals("kubeadm v1.34.0").is_empty(), "a version is not an address");
    }
}
