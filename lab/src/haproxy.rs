//! Real HAProxy on the lab's load balancer host: the servers of its apiserver pool and their
//! state, read from its stats socket.

use crate::error::LabError;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Debian's haproxy.
pub const HAPROXY_BIN: &str = "/usr/sbin/haproxy";
/// Bound on one exchange with the stats socket.
pub const STATS_TIMEOUT_MS: u64 = 2000;
/// The backend (pool) name, as in the source plan's bootstrap script.
pub const POOL: &str = "apiserver_nodes";

/// One server as the stats socket reports it: the executor's own type and parser, so the lab reads
/// HAProxy as the executor does.
pub use plan_exec::haproxy::Backend;

/// Parses `show stat` CSV: the servers of the backend `pool`.
pub fn parse_stat_of(csv: &str, pool: &str) -> Vec<Backend> {
    plan_exec::haproxy::parse_show_stat(csv).servers.into_iter().filter(|b| b.proxy == pool).collect()
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
        let backends = parse_stat_of(csv, POOL);
        assert_eq!(backends.len(), 2);
        assert!(backends[0].is_up());
        assert!(!backends[1].is_up());
        assert!(parse_stat_of("", POOL).is_empty());
        assert!(parse_stat_of(csv, "apiserver").is_empty(), "another backend's servers only");
        let csv = "# pxname,svname,status,check_status\napiserver_nodes,m,UP,* L7OK\napiserver_nodes,n,UP 1/2,L7STS\n";
        let servers = parse_stat_of(csv, POOL);
        let checks: Vec<(bool, &str)> = servers.iter().map(|b| (b.is_up(), b.check.as_str())).collect();
        assert_eq!(checks, [(true, "L7OK"), (true, "L7STS")], "going down is still UP; the last check is read");
    }
}
