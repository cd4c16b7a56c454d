//! HAProxy on a Linux load balancer, on the lab: the infra repo's `haproxy.cfg` as the twin's
//! state declares it, the by-hand edits of its apiserver sections made from the operation's typed
//! change ([`Change::HaproxySections`], [`Change::HaproxyServers`]), and the `systemctl` shim that
//! runs HAProxy's unit for real on the LB's host (a graceful `-sf` reload).
//!
//! [`Change::HaproxySections`]: plan_model::hand::Change::HaproxySections
//! [`Change::HaproxyServers`]: plan_model::hand::Change::HaproxyServers

use plan_model::cluster::Cluster;
use plan_model::hand::HaproxyBackend;
use plan_model::topology::Topology;
use std::net::Ipv4Addr;

/// A Linux load balancer's HAProxy config and admin socket, and its pid file (Debian's paths,
/// each host's own: [`crate::host::PRIVATE_DIRS`]).
pub const CONFIG: &str = "/etc/haproxy/haproxy.cfg";
pub const SOCKET: &str = "/run/haproxy/admin.sock";
const PID: &str = "/run/haproxy/haproxy.pid";
/// What the `systemctl` shim ran for HAProxy's unit, a line each, in the host's directory.
const UNIT_LOG: &str = "haproxy-unit.log";
/// The port of the load balancer's own stats page: HAProxy runs (and its socket answers) before
/// the apiserver's frontend exists, as it does for the LB's other services.
const STATS_PORT: u16 = 8404;

/// A Linux load balancer's `haproxy.cfg` in the infra repo, in state `c`: the lab's global and
/// defaults sections (the admin socket at Debian's path, checks every 100 ms), the LB's own stats
/// page, and the apiserver's frontend and backend as the model renders them where `c` declares
/// them ([`plan_model::operation::haproxy_sections`]: the plan's by-hand edits make the same).
pub(super) fn haproxy_config(t: &Topology, c: &Cluster) -> String {
    let lb = &t.scenario.load_balancer;
    let mut lines: Vec<String> = vec![
        format!("# HAProxy on {} (the lab's global and defaults; the apiserver's sections are the plan's)", lb.name),
        "global".to_string(),
        "    maxconn 256".to_string(),
        format!("    stats socket {SOCKET} mode 660 level admin expose-fd listeners"),
        String::new(),
        "defaults".to_string(),
        "    mode tcp".to_string(),
        "    timeout connect 1s".to_string(),
        "    timeout client 30s".to_string(),
        "    timeout server 30s".to_string(),
        "    timeout check 500ms".to_string(),
        "    default-server inter 100ms fall 2 rise 1".to_string(),
        String::new(),
        "listen stats".to_string(),
        "    mode http".to_string(),
        format!("    bind {}:{STATS_PORT}", lb.machine_address().unwrap_or(Ipv4Addr::LOCALHOST)),
        "    stats enable".to_string(),
    ];
    let pool: Vec<String> = c.lb_declared.pool.iter().map(|n| t.name(n).to_string()).collect();
    let (frontend, backend) = plan_model::operation::haproxy_sections(t, &pool);
    if c.lb_declared.frontend {
        lines.push(String::new());
        lines.extend(frontend.section());
    }
    if c.lb_declared.frontend || !pool.is_empty() {
        lines.push(String::new());
        lines.extend(backend.section());
    }
    lines.join("\n") + "\n"
}

/// The lines of an HAProxy config, each section (`frontend x`, `backend x`, …) a range from its
/// header to the next header; a blank line or a comment ends nothing.
fn section_range(lines: &[&str], header: &str) -> Option<std::ops::Range<usize>> {
    let is_header = |l: &str| !l.is_empty() && !l.starts_with(char::is_whitespace) && !l.starts_with('#');
    let start = lines.iter().position(|l| l.trim_end() == header)?;
    let end = lines.iter().skip(start + 1).position(|l| is_header(l)).map_or(lines.len(), |i| start + 1 + i);
    // Trailing blank lines and comments stay between the sections (a comment before a header is
    // the next section's).
    let kept = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    let end = (start + 1..end).rev().find(|&i| !kept(lines[i])).map_or(start + 1, |i| i + 1);
    Some(start..end)
}

/// `config` with `section` (its header first) in place of the section of that header, or added
/// at the end after a blank line.
pub(super) fn put_section(config: &str, section: &[String]) -> String {
    let lines: Vec<&str> = config.lines().collect();
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
    match section_range(&lines, &section[0]) {
        Some(range) => {
            out.splice(range, section.iter().cloned());
        }
        None => {
            if out.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
            out.extend(section.iter().cloned());
        }
    }
    out.join("\n") + "\n"
}

/// `config` with the `server` lines of `backend`'s section replaced by its servers (where the
/// first one stood, with its indentation; after the section's last line when it had none).
///
/// # Errors
/// The config has no section for the backend.
pub(super) fn put_servers(config: &str, backend: &HaproxyBackend) -> Result<String, String> {
    let lines: Vec<&str> = config.lines().collect();
    let header = format!("backend {}", backend.name);
    let range = section_range(&lines, &header).ok_or_else(|| format!("no `{header}` section"))?;
    let is_server = |l: &str| l.trim_start().starts_with("server ");
    let first = range.clone().find(|&i| is_server(lines[i]));
    let indent = first.map_or("    ", |i| &lines[i][..lines[i].len() - lines[i].trim_start().len()]);
    let servers: Vec<String> = backend.server_lines().iter().map(|l| format!("{indent}{l}")).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if Some(i) == first || (first.is_none() && i + 1 == range.end) {
            if first.is_none() {
                out.push((*line).to_string());
            }
            out.extend(servers.iter().cloned());
        } else if !(range.contains(&i) && is_server(line)) {
            out.push((*line).to_string());
        }
    }
    Ok(out.join("\n") + "\n")
}

/// `systemctl` on a lab host: every call logged (the kubelet stand-in reads the restarts), and
/// HAProxy's unit on a Linux load balancer run for real as Debian's does, on `/etc/haproxy` and
/// `/run/haproxy` (the host's own): `reload` and `reload-or-restart` a graceful reload
/// (`haproxy -x SOCKET -sf OLD`: the new process takes the old one's listening sockets over the
/// admin socket, `expose-fd listeners`, so no connection is refused, and the old one finishes its
/// connections), or a start where none runs; `restart` a hard one (`-st`); `stop`; `is-active`.
pub(super) fn systemctl_shim() -> String {
    format!(
        r#"#!/bin/sh
echo "$*" >> "$PLAN_FIXTURE_HOST_DIR/systemctl.log"
unit=""; for a; do case "$a" in -*) ;; *) [ -n "$verb" ] && {{ unit=${{a%.service}}; break; }}; verb=$a ;; esac; done
[ "$unit" = haproxy ] || exit 0
pid=$(cat {PID} 2>/dev/null); kill -0 "$pid" 2>/dev/null || pid=""
run() {{ /usr/sbin/haproxy -c -q -f {CONFIG} && /usr/sbin/haproxy -D -f {CONFIG} -p {PID} "$@" &&
  echo "systemctl $verb haproxy: haproxy -D -f {CONFIG} -p {PID} $*" >> "$PLAN_FIXTURE_HOST_DIR/{UNIT_LOG}"; }}
case "$verb" in
  start) [ -n "$pid" ] || run ;;
  reload|reload-or-restart|try-reload-or-restart) if [ -n "$pid" ]; then run -x {SOCKET} -sf $pid; else run; fi ;;
  restart) if [ -n "$pid" ]; then run -st $pid; else run; fi ;;
  stop) [ -z "$pid" ] || kill $pid ;;
  is-active) [ -n "$pid" ] || {{ echo inactive; exit 3; }}; echo active ;;
esac
"#
    )
}

/// What HAProxy's unit did on the load balancer's host, in order (`lb-1: systemctl reload haproxy:
/// haproxy … -sf 41`): the lab's account of each start and graceful reload.
pub(super) fn unit_notes(lb: &str, host_dir: &std::path::Path) -> Vec<String> {
    let log = std::fs::read_to_string(host_dir.join(UNIT_LOG)).unwrap_or_default();
    log.lines().map(|l| format!("{lb}: {}", l.trim_end())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor_lab::{carry_out, ByHand};
    use plan_model::hand::{Change, RepoEdit};

    fn scenario() -> Topology {
        let text = include_str!("../../../scenarios/haproxy-libvirt.yaml");
        Topology::new(&plan_model::validate::parse_scenario(text).expect("the scenario parses"))
    }

    /// The plan's own typed edits (1.2, 2.8, 3.8), made on the file the lab starts from: the
    /// frontend and backend appear once, each pool change replaces the servers and nothing else,
    /// and real HAProxy accepts the result (`haproxy -c`, where it is installed).
    #[test]
    fn the_plans_haproxy_edits_leave_one_frontend_one_backend_and_the_pool_declared() {
        let t = scenario();
        let plan = plan_model::planner::generate(&t);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = t.scenario.load_balancer.config_file();
        let start = haproxy_config(&t, &plan_model::cluster::Cluster::initial(&t));
        assert!(!start.contains("frontend apiserver") && !start.contains("backend apiserver"), "{start}");
        crate::host::write_file(&dir.path().join(file), &start).unwrap();
        let edits: Vec<RepoEdit> = plan
            .steps
            .iter()
            .filter(|s| ["1.2", "2.8", "3.8"].contains(&s.id.as_str()))
            .flat_map(|s| &s.commands)
            .filter_map(|c| match &c.hand {
                Some(plan_model::hand::HandTask::Repo(edits)) => Some(edits.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(edits.iter().all(|e| matches!(e.change, Change::HaproxySections { .. } | Change::HaproxyServers(_))), "{edits:?}");
        for (i, edit) in edits.iter().enumerate() {
            let made = carry_out(dir.path(), std::slice::from_ref(edit));
            assert!(matches!(made, ByHand::Edited(_)), "edit {i}: {made:?}");
        }
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for header in ["frontend apiserver", "backend apiserver"] {
            assert_eq!(text.lines().filter(|l| *l == header).count(), 1, "{text}");
        }
        assert!(text.contains("    bind 203.0.113.5:6443\n"), "{text}");
        let servers: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("server ")).collect();
        assert_eq!(
            servers,
            [
                "    server cp-1 203.0.113.21:6443 check check-ssl verify none",
                "    server cp-2 203.0.113.22:6443 check check-ssl verify none",
                "    server cp-3 203.0.113.23:6443 check check-ssl verify none",
            ]
        );
        assert!(text.starts_with(&start), "the lab's sections before the plan's stay as they were:\n{text}");
        if std::path::Path::new("/usr/sbin/haproxy").exists() {
            let checked =
                std::process::Command::new("/usr/sbin/haproxy").args(["-c", "-q", "-f"]).arg(dir.path().join(file)).output().unwrap();
            assert!(checked.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&checked.stderr));
        }
    }

    #[test]
    fn a_section_is_replaced_in_place_and_servers_keep_their_indentation() {
        let config =
            "global\n    maxconn 1\n\nbackend apiserver\n  mode tcp\n  server a 1.1.1.1:1 check\n\n# note\nlisten x\n    bind 1.1.1.1:2\n";
        let backend = |names: &[&str]| HaproxyBackend {
            name: "apiserver".into(),
            check: plan_model::scenario::HealthCheck::Tcp,
            servers: names.iter().map(|n| plan_model::hand::HaproxyServer { name: (*n).into(), address: "2.2.2.2:6443".into() }).collect(),
        };
        let two = put_servers(config, &backend(&["a", "b"])).unwrap();
        assert_eq!(
            two,
            "global\n    maxconn 1\n\nbackend apiserver\n  mode tcp\n  server a 2.2.2.2:6443 check\n  server b 2.2.2.2:6443 check\n\n# note\nlisten x\n    bind 1.1.1.1:2\n"
        );
        let replaced = put_section(&two, &backend(&["c"]).section());
        assert_eq!(
            replaced,
            "global\n    maxconn 1\n\nbackend apiserver\n    mode tcp\n    server c 2.2.2.2:6443 check\n\n# note\nlisten x\n    bind 1.1.1.1:2\n"
        );
        let added = put_section("global\n", &["frontend f".to_string(), "    bind 1.1.1.1:3".to_string()]);
        assert_eq!(added, "global\n\nfrontend f\n    bind 1.1.1.1:3\n");
        assert!(put_servers("global\n", &backend(&["a"])).is_err(), "no backend section: the edit cannot be made");
    }
}
