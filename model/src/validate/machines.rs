//! The machines of a scenario, checked: the hypervisors, the nodes and new masters with their
//! names and addresses unique across all of them, the VIP free, the MetalLB pool clear of the
//! VIP and the new masters, and the VM ids.

use super::ScenarioErrorKind::{BadValue, DuplicateAddress, DuplicateName, UnknownReference, VipConflict};
use super::{check_amount, check_name, problem, root, Problem, HYPERVISORS_MAX, NODES_MAX};
use crate::locate::FieldPath;
use crate::scenario::Scenario;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The hypervisors: at least one and at most [`HYPERVISORS_MAX`], each with a safe, unique name
/// and sane RAM figures. Their names, with each one's index.
pub(super) fn check_hypervisors(s: &Scenario) -> Result<HashMap<&str, usize>, Problem> {
    if s.hypervisors.is_empty() {
        return Err(problem(BadValue, root().key("hypervisors"), "at least one hypervisor is needed".to_string()));
    }
    if s.hypervisors.len() > HYPERVISORS_MAX {
        return Err(problem(BadValue, root().key("hypervisors"), format!("at most {HYPERVISORS_MAX} hypervisors are supported")));
    }
    let mut hypervisor_names: HashMap<&str, usize> = HashMap::new();
    for (i, h) in s.hypervisors.iter().enumerate() {
        let at = root().key("hypervisors").index(i);
        check_name(&h.name, at.clone().key("name"), "hypervisor name")?;
        check_amount(h.ram_physical_gb, at.clone().key("ram_physical_gb"), "physical RAM")?;
        check_amount(h.ram_allocated_gb, at.clone().key("ram_allocated_gb"), "allocated RAM")?;
        check_amount(h.swap_used_gb, at.clone().key("swap_used_gb"), "swap used")?;
        if h.ram_physical_gb <= 0.0 {
            return Err(problem(BadValue, at.key("ram_physical_gb"), "physical RAM must be more than 0 GB".to_string()));
        }
        if let Some(first) = hypervisor_names.insert(&h.name, i) {
            return Err(problem(
                DuplicateName,
                at.key("name"),
                format!("hypervisor name {:?} is used twice (also hypervisors[{first}])", h.name),
            ));
        }
    }
    Ok(hypervisor_names)
}

/// The hypervisors a scenario declares (`hypervisors`: their names) and the one a machine names.
struct Hypervisors<'s> {
    s: &'s Scenario,
    names: &'s HashMap<&'s str, usize>,
}

impl Hypervisors<'_> {
    fn known(&self, name: &str, path: FieldPath) -> Result<(), Problem> {
        if self.names.contains_key(name) {
            Ok(())
        } else {
            let known: Vec<&str> = self.s.hypervisors.iter().map(|h| h.name.as_str()).collect();
            Err(problem(UnknownReference, path, format!("unknown hypervisor {name:?} (known: {})", known.join(", "))))
        }
    }
}

/// The names and addresses claimed so far, each with the field that claimed it first.
struct Claims<'s> {
    names: HashMap<&'s str, FieldPath>,
    addresses: HashMap<Ipv4Addr, FieldPath>,
}

impl<'s> Claims<'s> {
    fn address(&mut self, address: Ipv4Addr, path: FieldPath, what: &str) -> Result<(), Problem> {
        if let Some(first) = self.addresses.get(&address) {
            return Err(problem(DuplicateAddress, path, format!("address {address} of {what} is already used by {first}")));
        }
        self.addresses.insert(address, path);
        Ok(())
    }

    /// The node name `name` at `at`, safe and not claimed before.
    fn name(&mut self, name: &'s str, at: &FieldPath) -> Result<(), Problem> {
        check_name(name, at.clone().key("name"), "node name")?;
        if let Some(first) = self.names.insert(name, at.clone()) {
            return Err(problem(DuplicateName, at.clone().key("name"), format!("node name {name:?} is used twice (also {first})")));
        }
        Ok(())
    }
}

/// The nodes and new masters: at most [`NODES_MAX`] in all, names and addresses unique across
/// both (and the hypervisors' and load balancer's addresses), none at the VIP, every hypervisor
/// they name known. Their names, with the field of each.
pub(super) fn check_machines<'s>(
    s: &'s Scenario,
    hypervisor_names: &'s HashMap<&'s str, usize>,
) -> Result<HashMap<&'s str, FieldPath>, Problem> {
    let hypervisors = Hypervisors { s, names: hypervisor_names };
    let total = s.nodes.len() + s.new_masters.len();
    if total > NODES_MAX {
        return Err(problem(BadValue, root().key("nodes"), format!("{total} nodes: at most {NODES_MAX} are supported")));
    }
    let mut claims = Claims { names: HashMap::new(), addresses: HashMap::new() };
    for (i, h) in s.hypervisors.iter().enumerate() {
        if let Some(address) = h.address {
            claims.address(address, root().key("hypervisors").index(i).key("address"), &format!("hypervisor {}", h.name))?;
        }
    }
    if let Some(address) = s.load_balancer.machine_address() {
        claims.address(address, root().key("load_balancer").key("address"), "the load balancer")?;
    }
    check_nodes(s, &mut claims, &hypervisors)?;
    check_new_masters(s, &mut claims, &hypervisors)?;
    if let Some(h) = &s.load_balancer.hypervisor {
        hypervisors.known(h, root().key("load_balancer").key("hypervisor"))?;
    }
    Ok(claims.names)
}

/// The existing nodes: name, address and hypervisor, and RAM figures where given.
fn check_nodes<'s>(s: &'s Scenario, claims: &mut Claims<'s>, hypervisors: &Hypervisors<'_>) -> Result<(), Problem> {
    let vip = s.control_plane_endpoint.vip;
    for (i, n) in s.nodes.iter().enumerate() {
        let at = root().key("nodes").index(i);
        claims.name(&n.name, &at)?;
        if n.address == vip {
            return Err(problem(
                VipConflict,
                at.key("address"),
                format!("the VIP {vip} cannot be the address of node {}: the VIP must be a free address", n.name),
            ));
        }
        claims.address(n.address, at.clone().key("address"), &format!("node {}", n.name))?;
        hypervisors.known(&n.hypervisor, at.clone().key("hypervisor"))?;
        if let Some(ram) = n.ram_gb {
            check_amount(ram, at.clone().key("ram_gb"), "RAM")?;
        }
        if let Some(used) = n.ram_used_gb {
            check_amount(used, at.clone().key("ram_used_gb"), "RAM used")?;
            if n.ram_gb.is_some_and(|ram| used > ram) {
                return Err(problem(BadValue, at.key("ram_used_gb"), format!("node {} uses more RAM than it has", n.name)));
            }
        }
    }
    Ok(())
}

/// The new masters: name, address and hypervisor, and the RAM and vCPUs their VMs get.
fn check_new_masters<'s>(s: &'s Scenario, claims: &mut Claims<'s>, hypervisors: &Hypervisors<'_>) -> Result<(), Problem> {
    let vip = s.control_plane_endpoint.vip;
    for (i, n) in s.new_masters.iter().enumerate() {
        let at = root().key("new_masters").index(i);
        claims.name(&n.name, &at)?;
        if n.address == vip {
            return Err(problem(
                VipConflict,
                at.key("address"),
                format!("the VIP {vip} cannot be the address of new master {}: the VIP must be a free address", n.name),
            ));
        }
        claims.address(n.address, at.clone().key("address"), &format!("new master {}", n.name))?;
        hypervisors.known(&n.hypervisor, at.clone().key("hypervisor"))?;
        check_amount(n.ram_gb, at.clone().key("ram_gb"), "RAM")?;
        if n.ram_gb <= 0.0 || n.vcpu == 0 {
            return Err(problem(BadValue, at.key("ram_gb"), format!("new master {} needs RAM and vCPUs", n.name)));
        }
    }
    Ok(())
}

/// The VIP is neither the load balancer's own address nor a hypervisor's.
pub(super) fn check_vip_is_free(s: &Scenario) -> Result<(), Problem> {
    let vip = s.control_plane_endpoint.vip;
    if Some(vip) == s.load_balancer.machine_address() {
        return Err(problem(
            VipConflict,
            root().key("control_plane_endpoint").key("vip"),
            format!("the VIP {vip} is the load balancer's own address: reserve a separate virtual IP"),
        ));
    }
    if s.hypervisors.iter().any(|h| h.address == Some(vip)) {
        return Err(problem(
            VipConflict,
            root().key("control_plane_endpoint").key("vip"),
            format!("the VIP {vip} is a hypervisor's address"),
        ));
    }
    Ok(())
}

/// The MetalLB pool, where there is one: not empty, and holding neither the VIP nor a new
/// master's address.
pub(super) fn check_metallb_pool(s: &Scenario) -> Result<(), Problem> {
    let vip = s.control_plane_endpoint.vip;
    if let Some(pool) = &s.metallb_pool {
        if pool.first > pool.last {
            return Err(problem(BadValue, root().key("metallb_pool"), format!("MetalLB pool {}-{} is empty", pool.first, pool.last)));
        }
        if pool.contains(vip) {
            return Err(problem(
                VipConflict,
                root().key("control_plane_endpoint").key("vip"),
                format!("the VIP {vip} is inside the MetalLB pool {}-{}: MetalLB could hand it to a Service", pool.first, pool.last),
            ));
        }
        for (i, n) in s.new_masters.iter().enumerate() {
            if pool.contains(n.address) {
                return Err(problem(
                    VipConflict,
                    root().key("new_masters").index(i).key("address"),
                    format!("new master address {} is inside the MetalLB pool {}-{}", n.address, pool.first, pool.last),
                ));
            }
        }
    }
    Ok(())
}

/// The VM ids: every new master on Proxmox has one, and no two machines share one.
pub(super) fn check_vmids(s: &Scenario) -> Result<(), Problem> {
    let mut vmids: HashMap<u32, FieldPath> = HashMap::new();
    for (i, n) in s.nodes.iter().enumerate() {
        if let Some(id) = n.vmid {
            vmids.insert(id, root().key("nodes").index(i));
        }
    }
    for (i, n) in s.new_masters.iter().enumerate() {
        let at = root().key("new_masters").index(i).key("vmid");
        let proxmox = s.hypervisors.iter().any(|h| h.name == n.hypervisor && h.kind == crate::scenario::HypervisorKind::Proxmox);
        let Some(id) = n.vmid else {
            if proxmox {
                return Err(problem(BadValue, at, format!("new master {} needs a vmid: Proxmox creates its VM by it", n.name)));
            }
            continue;
        };
        if let Some(first) = vmids.insert(id, at.clone()) {
            return Err(problem(DuplicateName, at, format!("VMID {id} is used twice (also {first})")));
        }
    }
    Ok(())
}
