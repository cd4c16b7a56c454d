//! The environment's profiles, checked: each load balancer, hypervisor, IaC and DNS profile
//! needs its own fields and refuses the others', with the reason in the operator's words.

use super::{check_name, check_path, problem, root, Problem};
use crate::scenario::{DnsVia, HypervisorKind, IacKind, LbKind, Scenario};
use crate::validate::ScenarioErrorKind::BadValue;

/// Checks the profile sections of `s`.
pub(super) fn check(s: &Scenario) -> Result<(), Problem> {
    load_balancer(s)?;
    for (i, h) in s.hypervisors.iter().enumerate() {
        let at = root().key("hypervisors").index(i);
        match (h.kind, h.address) {
            (HypervisorKind::Proxmox | HypervisorKind::Libvirt, None) => {
                return Err(problem(
                    BadValue,
                    at.key("address"),
                    format!("hypervisor {} ({}) needs its address: the plan runs its tool there over SSH", h.name, h.kind.as_str()),
                ))
            }
            _ => check_name(&h.name, at.key("name"), "hypervisor name")?,
        }
    }
    if let Some(iac) = &s.iac {
        if iac.kind == IacKind::Terragrunt {
            check_path(&iac.vms, root().key("iac").key("vms"), "VM declarations path")?;
            if iac.apply.trim().is_empty() {
                return Err(problem(BadValue, root().key("iac").key("apply"), "the apply command is empty".to_string()));
            }
        }
    }
    if s.dns.via == DnsVia::None && s.dns.records.iter().any(|r| r.stale) {
        return Err(problem(
            BadValue,
            root().key("dns").key("records"),
            "stale records need a DNS the plan changes: dns.via none has none".to_string(),
        ));
    }
    Ok(())
}

fn load_balancer(s: &Scenario) -> Result<(), Problem> {
    let lb = &s.load_balancer;
    let at = || root().key("load_balancer");
    let kind = lb.kind.as_str();
    let refuse = |field: &str, why: String| Err(problem(BadValue, at().key(field), why));
    if lb.kind.on_masters() {
        if lb.address.is_some() {
            return refuse("address", format!("{kind} runs on the masters: there is no load balancer machine, so no address"));
        }
        if lb.interface.is_none() {
            return refuse("interface", format!("{kind} needs the masters' network interface that carries the VIP (for example eth0)"));
        }
        if lb.hypervisor.is_some() {
            return refuse("hypervisor", format!("{kind} runs on the masters, not on a VM of its own"));
        }
    } else {
        check_name(&lb.name, at().key("name"), "load balancer name")?;
        if lb.address.is_none() {
            return refuse("address", format!("the {kind} load balancer needs its address"));
        }
    }
    if !lb.name.is_empty() {
        check_name(&lb.name, at().key("name"), "load balancer name")?;
    }
    match lb.kind {
        LbKind::PfsenseBootstrap => match &lb.bootstrap_script {
            Some(script) => check_path(script, at().key("bootstrap_script"), "bootstrap script path")?,
            None => return refuse("bootstrap_script", "pfsense-bootstrap needs the bootstrap script's path in the infra repo".to_string()),
        },
        _ if lb.bootstrap_script.is_some() => {
            return refuse("bootstrap_script", format!("{kind} has no bootstrap script (pfsense-bootstrap has)"));
        }
        _ if lb.reset_to_declared_state => {
            return refuse("reset_to_declared_state", format!("{kind} reloads gracefully; only a pfSense bootstrap script resets"));
        }
        _ => {}
    }
    if let Some(config) = &lb.config {
        if !matches!(lb.kind, LbKind::Haproxy | LbKind::Keepalived) {
            return refuse("config", format!("{kind} has no HAProxy config of its own"));
        }
        check_path(config, at().key("config"), "HAProxy config path")?;
    }
    if lb.kind == LbKind::Keepalived {
        // kube-apiserver binds its port on every address, the VIP included: HAProxy on the same
        // master needs another port for the VIP (the kubeadm HA guide's APISERVER_DEST_PORT).
        let api = s.kubernetes.apiserver_port.unwrap_or(s.control_plane_endpoint.port);
        if api == s.control_plane_endpoint.port {
            return Err(problem(
                BadValue,
                root().key("control_plane_endpoint").key("port"),
                format!(
                    "with keepalived, HAProxy on each master cannot bind {}:{api}: kube-apiserver already holds port {api} there (kubernetes.apiserver_port, which defaults to the endpoint's port); give the endpoint another port (8443) and set kubernetes.apiserver_port to the apiservers' port (6443)",
                    s.control_plane_endpoint.vip
                ),
            ));
        }
    }
    if lb.kind == LbKind::KubeVip {
        // kube-vip puts the VIP on the leader's interface and the leader's apiserver answers it
        // on its own port: nothing listens on another.
        if let Some(api) = s.kubernetes.apiserver_port.filter(|api| *api != s.control_plane_endpoint.port) {
            return Err(problem(
                BadValue,
                root().key("control_plane_endpoint").key("port"),
                format!(
                    "with kube-vip the VIP reaches the leader's kube-apiserver on its own port {api}: the endpoint's port must be {api} too (nothing forwards {})",
                    s.control_plane_endpoint.port
                ),
            ));
        }
    }
    Ok(())
}
