//! Real HAProxy at the lab VIP: TCP mode, a health check per backend, state from the stats socket.
//!
//! Two configurations. [`config`] (`plan lab up`): the backends are each master's etcd client
//! port checked with `GET /health`. [`scenario_config`] (`plan rehearse`): the backends are the
//! apiserver stand-ins in the twin's running pool, checked as the scenario says — `https-readyz`:
//! `option httpchk GET /readyz` with `check-ssl verify none`; `tcp`: a plain connect check.

use crate::address::{LabHost, LabLayout};
use crate::error::LabError;
use plan_model::scenario::HealthCheck;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Debian's haproxy.
pub const HAPROXY_BIN: &str = "/usr/sbin/haproxy";
/// Interval between health checks of one backend.
pub const CHECK_INTERVAL_MS: u32 = 200;
/// Bound on one exchange with the stats socket.
pub const STATS_TIMEOUT_MS: u64 = 2000;
/// The backend (pool) name, as in the source plan's bootstrap script.
pub const POOL: &str = "apiserver_nodes";

/// The configuration for `pool` behind the VIP; `socket` is the admin socket's path.
pub fn config(layout: &LabLayout, pool: &[&LabHost], socket: &Path) -> String {
    let mut text = format!(
        "global\n    maxconn 256\n    stats socket {} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend apiserver_proxy\n    bind {}:{}\n    default_backend {POOL}\n\n\
         backend {POOL}\n    option httpchk GET /health\n    http-check expect rstring '\"health\":\\s*\"true\"'\n    \
         default-server inter {CHECK_INTERVAL_MS}ms fall 2 rise 1\n",
        socket.display(),
        layout.vip,
        layout.vip_port,
    );
    for host in pool {
        text.push_str(&format!("    server {} {}:{} check\n", host.name, host.loopback, host.client_port));
    }
    text
}

/// Interval between health checks of one backend during a rehearsal (HAProxy's default is 2 s).
pub const REHEARSAL_CHECK_INTERVAL_MS: u32 = 100;
/// Consecutive failed checks before a backend is DOWN.
pub const CHECK_FALL: u32 = 2;
/// The bound on one health check.
pub const CHECK_TIMEOUT_MS: u32 = 500;

/// One backend of a rehearsal's pool: the master's name and its apiserver stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
}

/// The scenario's load balancer on the lab: the VIP frontend in TCP mode and `pool` behind it,
/// health-checked per `check`.
pub fn scenario_config(vip: Ipv4Addr, vip_port: u16, pool: &[PoolMember], check: HealthCheck, socket: &Path) -> String {
    let mut text = format!(
        "global\n    maxconn 256\n    stats socket {} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    \
         timeout check {CHECK_TIMEOUT_MS}ms\n\n\
         frontend apiserver_proxy\n    bind {vip}:{vip_port}\n    default_backend {POOL}\n\n\
         backend {POOL}\n    balance roundrobin\n",
        socket.display(),
    );
    let server_check = match check {
        HealthCheck::HttpsReadyz => {
            text.push_str("    option httpchk GET /readyz\n    http-check expect status 200\n");
            "check check-ssl verify none"
        }
        HealthCheck::Tcp => "check",
    };
    text.push_str(&format!("    default-server inter {REHEARSAL_CHECK_INTERVAL_MS}ms fall {CHECK_FALL} rise 1\n"));
    for member in pool {
        text.push_str(&format!("    server {} {}:{} {server_check}\n", member.name, member.address, member.port));
    }
    text
}

/// One backend as the stats socket reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backend {
    pub name: String,
    /// `UP`, `DOWN`, `UP 1/2` (going down), `no check`, ...
    pub status: String,
    /// The last check's result (`L7OK`, `L4CON`, `L7STS`, `INI` before the first one, ...).
    #[serde(default)]
    pub check: String,
}

impl Backend {
    pub fn is_up(&self) -> bool {
        self.status.starts_with("UP")
    }
    /// Checked at least once since HAProxy started and not between UP and DOWN: HAProxy starts
    /// every server UP until its checks say otherwise.
    pub fn is_settled(&self) -> bool {
        (self.status == "UP" || self.status == "DOWN") && !self.check.is_empty() && !self.check.starts_with("INI")
    }
}

/// Parses `show stat` CSV: the servers of [`POOL`].
pub fn parse_stat(csv: &str) -> Vec<Backend> {
    parse_stat_of(csv, POOL)
}

/// Parses `show stat` CSV: the servers of the backend `pool`.
pub fn parse_stat_of(csv: &str, pool: &str) -> Vec<Backend> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status)) = (at("pxname"), at("svname"), at("status")) else { return Vec::new() };
    let check = at("check_status");
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&pool) && !matches!(f.get(sv), Some(&"FRONTEND") | Some(&"BACKEND")))
        .filter_map(|f| {
            let check = check.and_then(|c| f.get(c)).map(|c| c.trim_start_matches("* ").to_string()).unwrap_or_default();
            Some(Backend { name: f.get(sv)?.to_string(), status: f.get(status)?.to_string(), check })
        })
        .collect()
}

/// Asks the admin socket for the pool's backends.
///
/// # Errors
/// The socket does not answer within [`STATS_TIMEOUT_MS`].
pub fn backends(socket: &Path) -> Result<Vec<Backend>, LabError> {
    backends_of(socket, POOL)
}

/// Asks the admin socket for the servers of the backend `pool`.
///
/// # Errors
/// The socket does not answer within [`STATS_TIMEOUT_MS`].
pub fn backends_of(socket: &Path, pool: &str) -> Result<Vec<Backend>, LabError> {
    let what = format!("haproxy stats socket {}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(|e| LabError::io(&what, e))?;
    let timeout = Some(Duration::from_millis(STATS_TIMEOUT_MS));
    stream.set_read_timeout(timeout).map_err(|e| LabError::io(&what, e))?;
    stream.set_write_timeout(timeout).map_err(|e| LabError::io(&what, e))?;
    stream.write_all(b"show stat\n").map_err(|e| LabError::io(&what, e))?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).map_err(|e| LabError::io(&what, e))?;
    Ok(parse_stat_of(&csv, pool))
}

/// `GET /health` through the VIP: whether HAProxy forwards to a backend that says healthy.
///
/// # Errors
/// The VIP is not loopback, or does not answer within [`STATS_TIMEOUT_MS`].
pub fn health_through_vip(vip: Ipv4Addr, port: u16) -> Result<bool, LabError> {
    let vip = crate::address::guard_loopback(vip)?;
    let what = format!("GET /health through the VIP {vip}:{port}");
    let timeout = Duration::from_millis(STATS_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((vip, port)), timeout).map_err(|e| LabError::io(&what, e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| LabError::io(&what, e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| LabError::io(&what, e))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: lab\r\n\r\n").map_err(|e| LabError::io(&what, e))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| LabError::io(&what, e))?;
    Ok(answer.contains("\"health\":\"true\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lists_the_pool_servers_only() {
        let csv = "# pxname,svname,qcur,status,weight\n\
                   apiserver_proxy,FRONTEND,,OPEN,\n\
                   apiserver_nodes,k8s-master,0,UP,1\n\
                   apiserver_nodes,k8s-master-2,0,DOWN,1\n\
                   apiserver_nodes,BACKEND,0,UP,1\n";
        let backends = parse_stat(csv);
        assert_eq!(backends.len(), 2);
        assert!(backends[0].is_up());
        assert!(!backends[1].is_up());
        assert!(parse_stat("").is_empty());
        let csv =
            "# pxname,svname,status,check_status\napiserver_nodes,m,UP,* L7OK\napiserver_nodes,n,UP 1/2,L7STS\napiserver_nodes,o,UP,INI\n";
        let settled: Vec<bool> = parse_stat(csv).iter().map(Backend::is_settled).collect();
        assert_eq!(settled, [true, false, false], "going down and not yet checked are not settled");
    }

    #[test]
    fn the_scenario_check_kind_decides_the_server_lines() {
        let pool = [PoolMember { name: "k8s-master".to_string(), address: Ipv4Addr::new(127, 0, 20, 100), port: 6543 }];
        let https = scenario_config(Ipv4Addr::new(127, 0, 20, 99), 6543, &pool, HealthCheck::HttpsReadyz, Path::new("/s"));
        assert!(https.contains("option httpchk GET /readyz"), "{https}");
        assert!(https.contains("server k8s-master 127.0.20.100:6543 check check-ssl verify none"), "{https}");
        assert!(https.contains("bind 127.0.20.99:6543"), "{https}");
        let tcp = scenario_config(Ipv4Addr::new(127, 0, 20, 99), 6543, &pool, HealthCheck::Tcp, Path::new("/s"));
        assert!(!tcp.contains("httpchk") && tcp.contains("127.0.20.100:6543 check\n"), "{tcp}");
        let empty = scenario_config(Ipv4Addr::new(127, 0, 20, 99), 6543, &[], HealthCheck::Tcp, Path::new("/s"));
        assert!(!empty.contains("    server "), "an empty pool has no server line: {empty}");
        assert!(parse_stat("# nothing,useful\n").is_empty());
    }
}
