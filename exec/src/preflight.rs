//! Before anything runs: can the executor reach and act on every machine, and is the cluster
//! what the twin starts from? A failed preflight is not a halt: nothing ran, nothing is undone.

use crate::guard::Guard;
use crate::invocation::Work;
use crate::observe::{self, Observer, Scope};
use crate::target::{HostTarget, Hosts, Place};
use crate::transport::{Request, Transport};
use crate::workstation::WorkstationHost;
use crate::ExecError;
use plan_model::cluster::Cluster;
use plan_model::topology::Topology;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Bound on one preflight command on a host.
pub const PREFLIGHT_COMMAND_TIMEOUT_S: u64 = 20;
/// Bound on one TCP connect that asks whether an address is taken.
pub const ADDRESS_PROBE_TIMEOUT_MS: u64 = 1_000;
/// A hypervisor's physical RAM may differ from the scenario's figure by this much (firmware and
/// kernel reservations) before the scenario is called wrong.
pub const RAM_TOLERANCE_PERCENT: f64 = 5.0;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// What was checked, for people (`ssh and sudo on k8s-master`).
    pub check: String,
    pub passed: bool,
    /// What was seen.
    pub detail: String,
    /// What to fix, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Item {
    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Item {
        Item { check: check.into(), passed: true, detail: detail.into(), fix: None }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Item {
        Item { check: check.into(), passed: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Everything the preflight found, in the order it looked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preflight {
    pub items: Vec<Item>,
}

impl Preflight {
    pub fn passed(&self) -> bool {
        self.items.iter().all(|i| i.passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| !i.passed)
    }
}

/// What a preflight looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every machine that exists before the migration, the observers (etcd, the LB, the API)
    /// against the twin's first state, the VIP and new masters' addresses, hypervisor RAM.
    Everything,
    /// Only SSH and sudo on `hosts` (what `plan execute` needs before its first command).
    Hosts,
}

/// The machines a preflight reaches from the twin's state `c`: with [`Reach::Everything`] every
/// machine that exists (nodes, the load balancer, the hypervisors), else the hosts the plan's
/// commands run on that exist yet (a new master's VM is made by the plan).
pub fn hosts(t: &Topology, plan: &plan_model::plan::Plan, c: &Cluster, reach: Reach) -> Vec<HostTarget> {
    let all = match reach {
        Reach::Everything => crate::invocation::hosts_touched(t, plan),
        Reach::Hosts => crate::invocation::hosts_commanded(t, plan),
    };
    let missing: Vec<String> = t
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !c.vm_exists.contains(plan_model::topology::NodeIx(*i as u8)))
        .map(|(_, n)| n.name.clone())
        .collect();
    let mut out: Vec<HostTarget> = Vec::new();
    for host in all {
        // One check per machine, whatever user a command names.
        if !missing.contains(&host.name) && !out.iter().any(|h| h.name == host.name) {
            out.push(host);
        }
    }
    out
}

/// The places of the workstation's commands on the workstation's machine (`--workstation`), each
/// once: the machine itself, then each directory the plan's commands run in there (the infra
/// repo, also where uploads read their files). None when the workstation is this machine.
pub fn workstation_places(t: &Topology, plan: &plan_model::plan::Plan, workstation: Option<&WorkstationHost>) -> Vec<Place> {
    let Some(host) = workstation else { return Vec::new() };
    let mut out = vec![Place::Local { dir: None, on: Some(host.clone()) }];
    let repo = Place::Local { dir: Some(t.scenario.infra_repo.clone()), on: Some(host.clone()) };
    for invocation in crate::invocation::compile_on(t, plan, workstation).into_iter().flatten() {
        let place = match invocation.work {
            Work::Shell { place: place @ Place::Local { .. }, .. } => place,
            Work::Upload { from: Some(_), .. } => repo.clone(),
            _ => continue,
        };
        if !out.contains(&place) {
            out.push(place);
        }
    }
    out
}

/// Runs the preflight from the twin's state `c` (the scenario's start for a fresh run): SSH and
/// sudo on `hosts`, SSH (and the directory) at each of the `workstation`'s places.
///
/// # Errors
/// Only what stops looking altogether: the loopback guard refusing a destination. Everything
/// else that fails is an [`Item`] that did not pass.
pub fn preflight(
    t: &Topology,
    c: &Cluster,
    hosts: &[HostTarget],
    workstation: &[Place],
    transport: &mut dyn Transport,
    observer: &mut Observer,
    reach: Reach,
) -> Result<Preflight, ExecError> {
    let mut items = Vec::new();
    for host in hosts {
        items.push(ssh_and_sudo(transport, host)?);
    }
    for place in workstation {
        items.push(workstation_answers(transport, place)?);
    }
    if reach == Reach::Everything {
        // The hypervisors' SSH is an item of its own above: not asked twice.
        let scope = Scope { hypervisors: false, ..Scope::ALL };
        let observation = observe::observe(t, c, transport, scope, observer)?;
        let drift = observe::drift(t, &observation, &[c]);
        if drift.is_empty() {
            items.push(Item::pass("the cluster is as the scenario describes it", "etcd members, LB pool, nodes, kubelet.conf, certs"));
        }
        for d in drift {
            items.push(Item::fail(
                format!("{} on {}", d.what, d.node),
                format!("the scenario says {}, the host shows {} ({})", d.twin, d.observed, d.evidence),
                "bring the cluster to the state the scenario describes, or correct the scenario",
            ));
        }
        items.extend(addresses_free(t, observer.probes.guard)?);
        for (i, hypervisor) in t.scenario.hypervisors.iter().enumerate() {
            if let Some(host) = Hosts::new(t).hypervisor(i) {
                items.push(hypervisor_ram(transport, &host, hypervisor.ram_physical_gb)?);
            }
        }
    }
    Ok(Preflight { items })
}

fn request(shell: &str) -> Request<'_> {
    Request { step: "preflight", shell, stdin: None, secret: false, timeout: Duration::from_secs(PREFLIGHT_COMMAND_TIMEOUT_S) }
}

fn ssh_and_sudo(transport: &mut dyn Transport, host: &HostTarget) -> Result<Item, ExecError> {
    let check = format!("ssh and sudo on {} ({}@{})", host.name, host.user, host.address);
    Ok(match transport.run(&Place::Host(host.clone()), &request("sudo -n true")) {
        Ok(done) if done.success() => Item::pass(check, "answers; sudo without a password"),
        Ok(done) => Item::fail(
            check,
            format!("sudo refused (exit {}): {}", done.exit.map_or("signal".to_string(), |e| e.to_string()), done.stderr.trim()),
            format!("let {} run sudo without a password on {}", host.user, host.name),
        ),
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => Item::fail(
            check,
            e.to_string(),
            format!("make {}@{} reachable over SSH with a key (ssh config, known_hosts)", host.user, host.address),
        ),
    })
}

/// The workstation's machine answers over SSH at `place`, and the place's directory is there.
fn workstation_answers(transport: &mut dyn Transport, place: &Place) -> Result<Item, ExecError> {
    let (dir, host) = match place {
        Place::Local { dir, on: Some(host) } => (dir.as_deref(), host),
        other => return Err(ExecError::Input(format!("{} is no place on the workstation's machine", other.label()))),
    };
    let check = match dir {
        None => format!("ssh on the workstation {host}"),
        Some(dir) => format!("the infra repo {dir} on the workstation {host}"),
    };
    let fix = match dir {
        None => format!("make {host} reachable over SSH with a key (a Host {} block in the ssh config, known_hosts)", host.name()),
        Some(dir) => format!("put the infra repo at {dir} on {}, or correct infra_repo in the scenario", host.name()),
    };
    Ok(match transport.run(place, &request("true")) {
        Ok(done) if done.success() => Item::pass(check, if dir.is_some() { "there" } else { "answers" }),
        Ok(done) => {
            Item::fail(check, format!("exit {}: {}", done.exit.map_or("signal".to_string(), |e| e.to_string()), done.stderr.trim()), fix)
        }
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => Item::fail(check, e.to_string(), fix),
    })
}

/// The VIP and the new masters' addresses must be free: nothing may answer on the apiserver port
/// there before the migration puts something there.
fn addresses_free(t: &Topology, guard: Guard) -> Result<Vec<Item>, ExecError> {
    let port = t.scenario.control_plane_endpoint.port;
    let mut wanted: Vec<(String, Ipv4Addr)> = vec![("the VIP".to_string(), t.scenario.control_plane_endpoint.vip)];
    wanted.extend(t.new_masters().map(|m| (format!("{}'s address", t.name(m)), t.node(m).address)));
    let mut items = Vec::new();
    for (what, address) in wanted {
        guard.check_address(&what, address)?;
        let check = format!("{what} {address} is free");
        let answered =
            TcpStream::connect_timeout(&SocketAddr::from((address, port)), Duration::from_millis(ADDRESS_PROBE_TIMEOUT_MS)).is_ok();
        items.push(if answered {
            Item::fail(
                check,
                format!("something answers on {address}:{port}"),
                format!("free {address} or pick another address in the scenario"),
            )
        } else {
            Item::pass(check, format!("nothing answers on {address}:{port}"))
        });
    }
    Ok(items)
}

/// The hypervisor's physical RAM against the scenario's figure, where it can be read.
fn hypervisor_ram(transport: &mut dyn Transport, host: &HostTarget, declared_gb: f64) -> Result<Item, ExecError> {
    let check = format!("RAM of hypervisor {}", host.name);
    let done = match transport.run(&Place::Host(host.clone()), &request("awk '/^MemTotal:/ { print $2 }' /proc/meminfo")) {
        Ok(done) => done,
        Err(e @ ExecError::NotLoopback { .. }) => return Err(e),
        Err(e) => return Ok(Item::pass(check, format!("not read ({e}): capacity judges the scenario's figures only"))),
    };
    let Some(kib) = done.stdout.trim().parse::<f64>().ok().filter(|_| done.success()) else {
        return Ok(Item::pass(check, "not readable: capacity judges the scenario's figures only"));
    };
    let seen_gb = kib / (1024.0 * 1024.0);
    let off = (seen_gb - declared_gb).abs() / declared_gb.max(1.0) * 100.0;
    Ok(if off <= RAM_TOLERANCE_PERCENT {
        Item::pass(check, format!("{seen_gb:.1} GB, the scenario says {declared_gb} GB"))
    } else {
        Item::fail(
            check,
            format!("{seen_gb:.1} GB, the scenario says {declared_gb} GB"),
            format!("set ram_physical_gb of {} to what the host has, then run plan capacity again", host.name),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Completed, FileRead};

    /// A transport whose hosts answer as told.
    struct Scripted {
        answer: fn(&str, &str) -> Result<Completed, ExecError>,
    }

    impl Transport for Scripted {
        fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
            (self.answer)(&place.label(), request.shell)
        }

        fn read_file(&mut self, _host: &HostTarget, _path: &str) -> Result<FileRead, ExecError> {
            Ok(FileRead::Unobserved)
        }
    }

    fn done(exit: i32, stdout: &str, stderr: &str) -> Result<Completed, ExecError> {
        Ok(Completed { exit: Some(exit), stdout: stdout.to_string(), stderr: stderr.to_string(), duration: Duration::ZERO })
    }

    fn host() -> HostTarget {
        HostTarget { name: "cp-1".to_string(), address: Ipv4Addr::new(127, 0, 30, 10), user: "ops".to_string() }
    }

    #[test]
    fn ssh_and_sudo_pass_fail_and_say_what_to_fix() {
        let ok = ssh_and_sudo(&mut Scripted { answer: |_, _| done(0, "", "") }, &host()).expect("looked");
        assert!(ok.passed && ok.fix.is_none());
        let sudo = ssh_and_sudo(&mut Scripted { answer: |_, _| done(1, "", "sudo: a password is required") }, &host()).expect("looked");
        assert!(!sudo.passed && sudo.detail.contains("a password is required"), "{sudo:?}");
        assert!(sudo.fix.as_deref().unwrap_or_default().contains("sudo without a password"));
        let down = ssh_and_sudo(
            &mut Scripted { answer: |h, _| Err(ExecError::Ssh { host: h.to_string(), reason: "connection refused".to_string() }) },
            &host(),
        )
        .expect("an unreachable host is an item, not an error");
        assert!(!down.passed && down.detail.contains("connection refused"), "{down:?}");
    }

    #[test]
    fn the_guard_stops_the_preflight_itself() {
        let refused = ssh_and_sudo(
            &mut Scripted { answer: |h, _| Err(ExecError::NotLoopback { destination: h.to_string(), why: String::new() }) },
            &host(),
        );
        assert!(matches!(refused, Err(ExecError::NotLoopback { .. })));
    }

    #[test]
    fn hypervisor_ram_is_judged_where_it_can_be_read() {
        let gb_267 = |_: &str, _: &str| done(0, &format!("{}\n", 267 * 1024 * 1024), "");
        assert!(hypervisor_ram(&mut Scripted { answer: gb_267 }, &host(), 267.0).expect("read").passed);
        let wrong = hypervisor_ram(&mut Scripted { answer: gb_267 }, &host(), 512.0).expect("read");
        assert!(!wrong.passed && wrong.detail.starts_with("267.0 GB"), "{wrong:?}");
        let unreadable = hypervisor_ram(&mut Scripted { answer: |_, _| done(1, "", "no /proc") }, &host(), 512.0).expect("read");
        assert!(unreadable.passed && unreadable.detail.contains("not readable"), "{unreadable:?}");
    }

    #[test]
    fn an_address_something_listens_on_is_not_free() {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let text = include_str!("../../scenarios/loopback.yaml");
        let mut scenario = plan_model::validate::parse_scenario(text).expect("the loopback scenario parses");
        scenario.control_plane_endpoint.vip = Ipv4Addr::LOCALHOST;
        scenario.control_plane_endpoint.port = port;
        let t = Topology::new(&scenario);
        let items = addresses_free(&t, Guard::LOOPBACK_ONLY).expect("loopback only");
        let vip = items.iter().find(|i| i.check.starts_with("the VIP")).expect("the VIP is checked");
        assert!(!vip.passed && vip.detail.contains(&format!("127.0.0.1:{port}")), "{vip:?}");
        drop(listener);
        let items = addresses_free(&t, Guard::LOOPBACK_ONLY).expect("loopback only");
        assert!(items.iter().all(|i| i.passed), "{items:?}");
        let mut off = scenario.clone();
        off.control_plane_endpoint.vip = Ipv4Addr::new(192, 0, 2, 1);
        assert!(matches!(addresses_free(&Topology::new(&off), Guard::LOOPBACK_ONLY), Err(ExecError::NotLoopback { .. })));
    }
}
