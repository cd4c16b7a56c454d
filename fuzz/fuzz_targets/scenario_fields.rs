//! Fuzzes the scenario pipeline field by field: the input bytes drive edits of the parsed
//! homelab scenario (counts, versions, addresses and names from small pools so they collide,
//! RAM figures including NaN, roles, references), the result is written back to YAML and run
//! through parse_scenario -> Topology -> planner -> the twin with one fault. The byte-level
//! `scenario` target mostly exercises the YAML parser; this one reaches validation, the planner
//! and the simulator with inventories that are almost valid, where the arithmetic lives.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use plan_model::fault::Fault;
use plan_model::scenario::{
    ConsumerKind, ConsumerSpec, HealthCheck, HypervisorKind, HypervisorSpec, LearnerModeSetting, NewMasterSpec, NodeRole, NodeSpec,
    Scenario, StackHosts,
};
use plan_model::{planner, topology::Topology, validate::parse_scenario};
use plan_sim::run::{Engine, Injection, Point, Recording};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// Edits one input may make: enough to build 7 masters and many workers, bounded so a run stays short.
const EDITS_MAX: usize = 24;

static HOMELAB: OnceLock<Scenario> = OnceLock::new();

fn address(u: &mut Unstructured) -> Result<Ipv4Addr> {
    // One /24 plus the hypervisor's: collisions with nodes, the VIP, the LB and the pool are likely.
    Ok(if u.ratio(1, 8)? { Ipv4Addr::new(192, 168, 1, 127) } else { Ipv4Addr::new(10, 0, 20, u.arbitrary()?) })
}

fn name(u: &mut Unstructured, prefix: &str) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0 => "k8s-master".to_string(),
        1 => "pve".to_string(),
        2 => String::new(),
        3 => "a;b".to_string(),
        n => format!("{prefix}{n}"),
    })
}

fn gb(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0..=5)? {
        0 => f64::NAN,
        1 => -1.0,
        2 => 0.0,
        3 => f64::INFINITY,
        _ => u.int_in_range(1..=600)? as f64,
    })
}

fn edit(s: &mut Scenario, u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0..=17)? {
        which @ 0..=3 => edit_versions(s, u, which),
        which @ 4..=7 => edit_nodes(s, u, which),
        which @ 8..=9 => edit_hypervisors(s, u, which),
        which @ 10..=13 => edit_addresses(s, u, which),
        which => edit_settings(s, u, which),
    }
}

/// A hypervisor's name for a new machine: one of the scenario's, or one it does not have.
fn hypervisor(u: &mut Unstructured, s: &Scenario) -> Result<String> {
    if u.ratio(1, 10)? {
        return Ok("nowhere".to_string());
    }
    let i = u.choose_index(s.hypervisors.len().max(1))?;
    Ok(s.hypervisors.get(i).map(|h| h.name.clone()).unwrap_or_default())
}

/// The target count, the cluster's and the template's versions, the learner mode.
fn edit_versions(s: &mut Scenario, u: &mut Unstructured, which: i32) -> Result<()> {
    match which {
        0 => s.target.control_plane_count = if u.arbitrary()? { u.int_in_range(0..=9)? } else { u.arbitrary()? },
        1 => s.kubernetes.version = format!("{}.{}", u.int_in_range(0..=2)?, u.int_in_range(20..=40)?),
        2 => {
            let version = format!("1.{}", u.int_in_range(20..=40)?);
            if let Some(template) = s.vm_template.as_mut() {
                template.kubernetes_version = version;
            }
        }
        3 => s.kubernetes.etcd_learner_mode = *u.choose(&[LearnerModeSetting::Auto, LearnerModeSetting::On, LearnerModeSetting::Off])?,
        _ => unreachable!("edit {which} is no version edit"),
    }
    Ok(())
}

/// A new master or a node added or removed, a node's role changed.
fn edit_nodes(s: &mut Scenario, u: &mut Unstructured, which: i32) -> Result<()> {
    match which {
        4 => {
            let master = NewMasterSpec {
                name: name(u, "m")?,
                address: address(u)?,
                vmid: Some(u.int_in_range(199..=215)?),
                hypervisor: hypervisor(u, s)?,
                vcpu: u.int_in_range(0..=16)?,
                ram_gb: gb(u)?,
                disk_gb: 64,
            };
            s.new_masters.push(master);
        }
        5 => {
            if !s.new_masters.is_empty() {
                let i = u.choose_index(s.new_masters.len())?;
                s.new_masters.remove(i);
            }
        }
        6 => {
            let worker = NodeSpec {
                name: name(u, "w")?,
                role: if u.ratio(1, 8)? { NodeRole::ControlPlane } else { NodeRole::Worker },
                address: address(u)?,
                vmid: if u.arbitrary()? { Some(u.int_in_range(199..=215)?) } else { None },
                hypervisor: hypervisor(u, s)?,
                vcpu: None,
                ram_gb: if u.arbitrary()? { Some(gb(u)?) } else { None },
                disk_gb: None,
                ram_used_gb: if u.arbitrary()? { Some(gb(u)?) } else { None },
            };
            s.nodes.push(worker);
        }
        7 => {
            if !s.nodes.is_empty() {
                let i = u.choose_index(s.nodes.len())?;
                if u.arbitrary()? {
                    s.nodes.remove(i);
                } else {
                    s.nodes[i].role = if u.arbitrary()? { NodeRole::ControlPlane } else { NodeRole::Worker };
                }
            }
        }
        _ => unreachable!("edit {which} is no node edit"),
    }
    Ok(())
}

/// A hypervisor added, or the first one's RAM changed.
fn edit_hypervisors(s: &mut Scenario, u: &mut Unstructured, which: i32) -> Result<()> {
    match which {
        8 => {
            let spec = HypervisorSpec {
                name: name(u, "hv")?,
                kind: *u.choose(&[HypervisorKind::Proxmox, HypervisorKind::Libvirt])?,
                address: Some(address(u)?),
                ssh_user: "root".to_string(),
                ram_physical_gb: gb(u)?,
                ram_allocated_gb: gb(u)?,
                swap_used_gb: 0.0,
                cpus_physical: None,
                vcpu_allocated: None,
            };
            s.hypervisors.push(spec);
        }
        9 => {
            if let Some(h) = s.hypervisors.first_mut() {
                h.ram_physical_gb = gb(u)?;
                h.ram_allocated_gb = gb(u)?;
            }
        }
        _ => unreachable!("edit {which} is no hypervisor edit"),
    }
    Ok(())
}

/// The VIP, the load balancer's address, the MetalLB pool, a consumer's server.
fn edit_addresses(s: &mut Scenario, u: &mut Unstructured, which: i32) -> Result<()> {
    match which {
        10 => s.control_plane_endpoint.vip = address(u)?,
        11 => s.load_balancer.address = Some(address(u)?),
        12 => {
            let first = address(u)?;
            let last = address(u)?;
            s.metallb_pool = if u.ratio(1, 4)? { None } else { Some(plan_model::scenario::AddressRange { first, last }) };
        }
        13 => {
            let consumer = ConsumerSpec {
                name: name(u, "c")?,
                kind: *u.choose(&[
                    ConsumerKind::Kubeconfig,
                    ConsumerKind::CiPipeline,
                    ConsumerKind::UserPortal,
                    ConsumerKind::JoinCommand,
                ])?,
                path: "clients/c.yaml".to_string(),
                line: None,
                server: match u.int_in_range(0..=3)? {
                    0 => "https://10.0.20.100".to_string(),
                    1 => format!("https://{}:6443", address(u)?),
                    _ => "https://10.0.20.100:6443".to_string(),
                },
                oidc: u.arbitrary()?,
            };
            s.consumers.push(consumer);
        }
        _ => unreachable!("edit {which} is no address edit"),
    }
    Ok(())
}

/// The profiles' settings, a CronJob's pin, the upgrade chain's masters, the TTLs.
fn edit_settings(s: &mut Scenario, u: &mut Unstructured, which: i32) -> Result<()> {
    match which {
        14 => {
            if !s.consumers.is_empty() && u.arbitrary()? {
                s.consumers.clear();
            }
            s.load_balancer.health_check = *u.choose(&[HealthCheck::Tcp, HealthCheck::HttpsReadyz])?;
            s.load_balancer.reset_to_declared_state = u.arbitrary()?;
            let hosts = *u.choose(&[StackHosts::Single, StackHosts::List])?;
            if let Some(stack) = s.config_stack.as_mut() {
                stack.hosts = hosts;
            }
            let check = u.arbitrary()?;
            if let Some(gate) = s.reboot_gate.as_mut() {
                gate.control_plane_quorum_check = check;
            }
        }
        15 => {
            if let Some(job) = s.cronjobs.first_mut() {
                job.pinned_to = if u.arbitrary()? { Some(name(u, "k8s-node")?) } else { None };
            }
        }
        16 => {
            let master = name(u, "k8s-master-")?;
            if let Some(chain) = s.upgrade_chain.as_mut() {
                chain.masters = vec![master];
            }
        }
        _ => {
            s.kubeadm.certs_ttl_min = u.int_in_range(0..=300)?;
            s.kubeadm.token_ttl_h = u.int_in_range(0..=48)?;
            s.etcd_backup.age_h = u.arbitrary()?;
        }
    }
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let homelab =
        HOMELAB.get_or_init(|| parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the embedded scenario is valid"));
    let mut u = Unstructured::new(bytes);
    let mut scenario = homelab.clone();
    for _ in 0..EDITS_MAX {
        if u.is_empty() || edit(&mut scenario, &mut u).is_err() {
            break;
        }
    }
    // Through the text, as a user's file would go: the locator runs on every error too.
    let Ok(text) = serde_yaml_ng::to_string(&scenario) else { return };
    // To turn a crash into a regression file: PLAN_FUZZ_PRINT=1 cargo fuzz run scenario_fields ARTIFACT
    if std::env::var_os("PLAN_FUZZ_PRINT").is_some() {
        eprintln!("{text}");
    }
    let Ok(valid) = parse_scenario(&text) else { return };
    let topology = Topology::new(&valid);
    let plan = planner::generate(&topology);
    assert!(plan.check_order().is_ok(), "the planner's own plan breaks its DAG");
    let faults = Fault::all(&topology);
    let steps = plan.steps.len().max(1);
    let injection = Injection {
        at: Point { step: (bytes.len() % steps) as u16, action: (bytes.first().copied().unwrap_or(0) % 4) as u16 },
        fault: faults[bytes.last().copied().unwrap_or(0) as usize % faults.len()],
    };
    let _ = Engine::new(&topology, &plan, Recording { events: true, downtime: true }).run(&[injection]);
});
