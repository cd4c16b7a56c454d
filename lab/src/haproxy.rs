//! Real HAProxy at the lab VIP: TCP mode, an HTTP health check per backend, state from the
//! stats socket.
//!
//! The backends stand in for the apiservers: each master's etcd client port, checked with
//! `GET /health`, which etcd answers `"health":"true"` only while its member has a leader — the
//! part of `/readyz` the twin derives from quorum. There is no TLS and no apiserver behind it.

use crate::address::{LabHost, LabLayout};
use crate::error::LabError;
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

/// One backend as the stats socket reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backend {
    pub name: String,
    /// `UP`, `DOWN`, `no check`, ...
    pub status: String,
}

impl Backend {
    pub fn is_up(&self) -> bool {
        self.status.starts_with("UP")
    }
}

/// Parses `show stat` CSV: the servers of [`POOL`].
pub fn parse_stat(csv: &str) -> Vec<Backend> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status)) = (at("pxname"), at("svname"), at("status")) else { return Vec::new() };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&POOL) && !matches!(f.get(sv), Some(&"FRONTEND") | Some(&"BACKEND")))
        .filter_map(|f| Some(Backend { name: f.get(sv)?.to_string(), status: f.get(status)?.to_string() }))
        .collect()
}

/// Asks the admin socket for the pool's backends.
///
/// # Errors
/// The socket does not answer within [`STATS_TIMEOUT_MS`].
pub fn backends(socket: &Path) -> Result<Vec<Backend>, LabError> {
    let what = format!("haproxy stats socket {}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(|e| LabError::io(&what, e))?;
    let timeout = Some(Duration::from_millis(STATS_TIMEOUT_MS));
    stream.set_read_timeout(timeout).map_err(|e| LabError::io(&what, e))?;
    stream.set_write_timeout(timeout).map_err(|e| LabError::io(&what, e))?;
    stream.write_all(b"show stat\n").map_err(|e| LabError::io(&what, e))?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).map_err(|e| LabError::io(&what, e))?;
    Ok(parse_stat(&csv))
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
        assert!(parse_stat("# nothing,useful\n").is_empty());
    }
}
