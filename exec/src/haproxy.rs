//! The load balancer's apiserver pool, in the model's terms: the frontend at the VIP and the
//! servers of its backend, from HAProxy's config file and, when a stats socket is given, from
//! `show stat` (servers loaded and whether each passes its health check).
//!
//! The files are read on the load balancer through the transport. Servers map to inventory nodes by
//! address, else by name.

use crate::transport::quote;
use plan_model::topology::{NodeIx, Topology};

/// Where pfSense's HAProxy package writes the running config.
pub const PFSENSE_HAPROXY_CONFIG: &str = "/var/etc/haproxy/haproxy.cfg";
/// The admin socket the source plan queries (`socat /tmp/haproxy.socket stdio`).
pub const PFSENSE_HAPROXY_SOCKET: &str = "/tmp/haproxy.socket";

/// Where to read the load balancer's state on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbProbe {
    pub config: String,
    /// The admin/stats socket; `None`: the config file only.
    pub stats_socket: Option<String>,
}

impl Default for LbProbe {
    fn default() -> Self {
        LbProbe { config: PFSENSE_HAPROXY_CONFIG.to_string(), stats_socket: Some(PFSENSE_HAPROXY_SOCKET.to_string()) }
    }
}

impl LbProbe {
    /// `show stat` on the socket: socat where it is installed (as the source plan uses it), else
    /// python3's socket module.
    pub fn show_stat_command(&self) -> Option<String> {
        let socket = quote(self.stats_socket.as_ref()?);
        Some(format!(
            "if command -v socat >/dev/null 2>&1; then printf 'show stat\\n' | sudo socat stdio UNIX-CONNECT:{socket}; \
             else sudo python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); \
             s.sendall(b\"show stat\\n\"); sys.stdout.write(b\"\".join(iter(lambda: s.recv(65536), b\"\")).decode())' {socket}; fi"
        ))
    }
}

/// One `server` line of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// The host part of `address[:port]`.
    pub host: String,
}

/// The apiserver pool as a config file declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredPool {
    /// The frontend (or `listen` section) bound to the VIP and port.
    pub frontend: Option<String>,
    /// The backend it sends to (the `listen` section itself for a listen).
    pub backend: Option<String>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Default)]
struct Section {
    kind: String,
    name: String,
    binds: Vec<String>,
    default_backend: Option<String>,
    servers: Vec<Server>,
}

fn sections(config: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for raw in config.lines() {
        let line = raw.split('#').next().unwrap_or_default();
        if line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let indented = line.starts_with(char::is_whitespace);
        if !indented && matches!(first, "global" | "defaults" | "frontend" | "backend" | "listen" | "resolvers" | "userlist" | "peers") {
            out.push(Section { kind: first.to_string(), name: words.next().unwrap_or_default().to_string(), ..Section::default() });
            continue;
        }
        let Some(section) = out.last_mut() else { continue };
        match first {
            "bind" => section.binds.extend(words.next().unwrap_or_default().split(',').map(str::to_string)),
            "default_backend" => section.default_backend = words.next().map(str::to_string),
            "use_backend" if section.default_backend.is_none() => section.default_backend = words.next().map(str::to_string),
            "server" => {
                let name = words.next().unwrap_or_default().to_string();
                let address = words.next().unwrap_or_default();
                let host = if let Some(v6) = address.strip_prefix('[') {
                    v6.split(']').next().unwrap_or_default()
                } else {
                    address.rsplit_once(':').map_or(address, |(h, _)| h)
                };
                section.servers.push(Server { name, host: host.to_string() });
            }
            _ => {}
        }
    }
    out
}

/// Whether a `bind` address listens on the VIP (or on every address) at the endpoint's port.
fn binds_vip(bind: &str, t: &Topology) -> bool {
    let endpoint = &t.scenario.control_plane_endpoint;
    let Some((host, port)) = bind.rsplit_once(':') else { return false };
    let host = host.trim_start_matches("ipv4@").trim_start_matches('[').trim_end_matches(']');
    let on_vip = host == endpoint.vip.to_string() || host == endpoint.fqdn || matches!(host, "" | "*" | "0.0.0.0" | "::");
    on_vip && port == endpoint.port.to_string()
}

/// The frontend bound to the VIP and the servers of its backend.
pub fn parse_config(config: &str, t: &Topology) -> DeclaredPool {
    let all = sections(config);
    let Some(front) = all.iter().find(|s| matches!(s.kind.as_str(), "frontend" | "listen") && s.binds.iter().any(|b| binds_vip(b, t)))
    else {
        return DeclaredPool::default();
    };
    if front.kind == "listen" {
        return DeclaredPool { frontend: Some(front.name.clone()), backend: Some(front.name.clone()), servers: front.servers.clone() };
    }
    let backend = front.default_backend.clone();
    let servers = backend
        .as_ref()
        .and_then(|b| all.iter().find(|s| s.kind == "backend" && s.name == *b))
        .map(|s| s.servers.clone())
        .unwrap_or_default();
    DeclaredPool { frontend: Some(front.name.clone()), backend, servers }
}

/// One server row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub proxy: String,
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, `UP 1/2`…
    pub status: String,
    /// `host:port` when HAProxy prints it.
    pub address: Option<String>,
    /// The last check's result (`L7OK`, `L4CON`, `L7STS`, `INI` before the first one…), when
    /// HAProxy prints it.
    pub check: String,
}

impl Backend {
    /// Passes its health check (a server without a check counts as up).
    pub fn is_up(&self) -> bool {
        self.status.starts_with("UP") || self.status == "no check"
    }
}

/// What `show stat` shows: every server row, and the frontends that are open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedPool {
    pub servers: Vec<Backend>,
    pub open_frontends: Vec<String>,
}

/// Parses `show stat` CSV (`# pxname,svname,…,status,…,addr,…`).
pub fn parse_show_stat(csv: &str) -> LoadedPool {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return LoadedPool::default() };
    let columns: Vec<&str> = header.trim_start_matches('#').trim().split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status)) = (at("pxname"), at("svname"), at("status")) else { return LoadedPool::default() };
    let (addr, check) = (at("addr"), at("check_status"));
    let mut out = LoadedPool::default();
    for fields in lines.map(|l| l.split(',').collect::<Vec<_>>()) {
        let (Some(p), Some(s), Some(st)) = (fields.get(px), fields.get(sv), fields.get(status)) else { continue };
        match *s {
            "FRONTEND" if *st == "OPEN" => out.open_frontends.push(p.to_string()),
            "FRONTEND" | "BACKEND" => {}
            _ => out.servers.push(Backend {
                proxy: p.to_string(),
                name: s.to_string(),
                status: st.to_string(),
                address: addr.and_then(|a| fields.get(a)).filter(|a| !a.is_empty()).map(|a| a.to_string()),
                check: check.and_then(|c| fields.get(c)).map(|c| c.trim_start_matches("* ").to_string()).unwrap_or_default(),
            }),
        }
    }
    out
}

/// The node a server stands for: by address, else by name.
pub fn server_node(t: &Topology, name: &str, host: Option<&str>) -> Option<NodeIx> {
    let by_address = host.and_then(|h| t.nodes.iter().position(|n| n.address.to_string() == h));
    by_address.or_else(|| t.nodes.iter().position(|n| n.name == name)).map(|i| NodeIx(i as u8))
}

/// The host of a `show stat` address (`127.0.20.10:6443`).
pub fn address_host(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    fn loopback() -> Topology {
        Topology::new(&parse_scenario(include_str!("../../scenarios/loopback.yaml")).unwrap())
    }

    const CONFIG: &str = "global\n    stats socket /tmp/s mode 600 level admin\n\ndefaults\n    mode tcp\n\n\
        frontend stats\n    bind 127.0.20.1:8404\n\n\
        frontend apiserver_proxy_6443 # the VIP\n    bind 127.0.20.99:6443\n    default_backend apiserver_nodes\n\n\
        backend apiserver_nodes\n    option httpchk GET /readyz\n    server lab-cp-1 127.0.20.10:6443 check\n    server m2 127.0.20.11:6443 check\n\
        #    server lab-cp-3 127.0.20.12:6443 check\n";

    #[test]
    fn the_pool_is_the_backend_of_the_frontend_at_the_vip() {
        let t = loopback();
        let pool = parse_config(CONFIG, &t);
        assert_eq!(pool.frontend.as_deref(), Some("apiserver_proxy_6443"));
        assert_eq!(pool.backend.as_deref(), Some("apiserver_nodes"));
        let hosts: Vec<&str> = pool.servers.iter().map(|s| s.host.as_str()).collect();
        assert_eq!(hosts, vec!["127.0.20.10", "127.0.20.11"], "the commented-out server is not in the pool");
        assert_eq!(server_node(&t, "m2", Some("127.0.20.11")), t.resolve("lab-cp-2").ok(), "by address before name");
    }

    #[test]
    fn no_frontend_at_the_vip_is_no_pool() {
        let t = loopback();
        let other_port = CONFIG.replace("127.0.20.99:6443", "127.0.20.99:7443");
        assert_eq!(parse_config(&other_port, &t), DeclaredPool::default());
        assert_eq!(parse_config("", &t), DeclaredPool::default());
        let listen = "listen api\n    bind *:6443\n    server lab-cp-1 127.0.20.10:6443\n";
        assert_eq!(parse_config(listen, &t).servers.len(), 1);
    }

    #[test]
    fn show_stat_gives_servers_and_open_frontends() {
        let csv = "# pxname,svname,qcur,status,weight,addr\n\
                   apiserver_proxy_6443,FRONTEND,,OPEN,,\n\
                   apiserver_nodes,lab-cp-1,0,UP,1,127.0.20.10:6443\n\
                   apiserver_nodes,lab-cp-2,0,DOWN,1,127.0.20.11:6443\n\
                   apiserver_nodes,BACKEND,0,UP,1,\n";
        let loaded = parse_show_stat(csv);
        assert_eq!(loaded.open_frontends, vec!["apiserver_proxy_6443".to_string()]);
        assert_eq!(loaded.servers.len(), 2);
        assert!(loaded.servers[0].is_up() && !loaded.servers[1].is_up());
        assert_eq!(loaded.servers[1].address.as_deref().map(address_host), Some("127.0.20.11"));
        assert_eq!(parse_show_stat(""), LoadedPool::default());
        assert_eq!(parse_show_stat("Unknown command\n"), LoadedPool::default());
    }

    #[test]
    fn the_stats_command_quotes_the_socket() {
        let probe = LbProbe { config: "/x".into(), stats_socket: Some("/tmp/a b.sock".into()) };
        assert!(probe.show_stat_command().unwrap().contains("UNIX-CONNECT:'/tmp/a b.sock'"));
        assert!(LbProbe { stats_socket: None, ..probe }.show_stat_command().is_none());
    }
}
