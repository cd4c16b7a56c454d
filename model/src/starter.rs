//! A starter scenario for `plan init`: the operator's answers (flags, or what a live cluster said)
//! written as YAML with a comment over every field, which validates as it stands.
//!
//! What the operator did not say and the file cannot do without is never made up when it is an
//! address: the first master's, the new masters', the VIP, the hypervisors' and the load
//! balancer's are asked for, and a missing one is a [`StarterError::Missing`] naming its flag.
//! Everything else the schema requires (VM ids, sizes, RAM figures, repo paths) is written as a
//! placeholder under a `TODO:` comment, so the file validates and `grep TODO` lists what to edit.

pub mod from_cluster;
mod profile;
mod sections;
pub mod yaml;

use crate::scenario::{DnsVia, HypervisorKind, IacKind, LbKind};
use crate::validate::{parse_scenario_every_problem, ScenarioError};
use std::net::Ipv4Addr;

/// A machine the operator named: `NAME=ADDRESS` on the command line, or a node the API listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    pub address: Ipv4Addr,
}

impl std::str::FromStr for Machine {
    type Err = String;

    /// `NAME=ADDRESS`, the address an IPv4 address in dotted form.
    fn from_str(s: &str) -> Result<Machine, String> {
        let (name, address) = s.split_once('=').ok_or_else(|| format!("'{s}' is not NAME=ADDRESS"))?;
        let address = address.trim().parse().map_err(|_| format!("'{address}' in '{s}' is not an IPv4 address (like 10.0.20.110)"))?;
        Ok(Machine { name: name.trim().to_string(), address })
    }
}

/// The environment's profiles: what serves the VIP, what runs the machines, how the infra repo's
/// changes are applied and how DNS records change (the scenario's own kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profiles {
    pub lb: LbKind,
    pub hypervisor: HypervisorKind,
    pub iac: IacKind,
    pub dns: DnsVia,
}

impl Default for Profiles {
    /// The homelab's: pfSense, Proxmox, a terragrunt repo, DNS through it.
    fn default() -> Profiles {
        Profiles { lb: LbKind::PfsenseBootstrap, hypervisor: HypervisorKind::Proxmox, iac: IacKind::Terragrunt, dns: DnsVia::Iac }
    }
}

/// The operator's answers, from flags or read from a cluster (flags first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answers {
    pub name: String,
    /// The target `control_plane_count`.
    pub masters: u32,
    /// `major.minor` (a leading `v` and a patch part are accepted); `None`: [`DEFAULT_KUBERNETES`]
    /// under a TODO.
    pub kubernetes_version: Option<String>,
    pub first_master: Option<Machine>,
    pub new_masters: Vec<Machine>,
    pub workers: Vec<Machine>,
    pub vip: Option<Ipv4Addr>,
    pub fqdn: Option<String>,
    /// `None`: [`DEFAULT_PORT`].
    pub port: Option<u16>,
    /// The separate load balancer machine (pfSense, a Linux HAProxy box).
    pub lb_host: Option<Machine>,
    /// The hypervisors the VMs run on; the new masters are spread over them in order.
    pub hypervisor_hosts: Vec<Machine>,
    pub profiles: Profiles,
    /// Said in the header: where the answers came from and what was read (one line each).
    pub provenance: Vec<String>,
    /// Facts read from a cluster that belong beside a field, as comments (e.g. its apiserver flags).
    pub observed: Observed,
}

/// What a cluster said that the starter writes as comments beside the fields it concerns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The flags kubeadm-config's `apiServer.extraArgs` sets.
    pub apiserver_extra_args: Vec<String>,
    /// kubeadm-config's `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
    /// Nodes left out, and why (no IPv4 InternalIP).
    pub skipped_nodes: Vec<String>,
    /// The kubelet versions seen, when they differ (`name version` each).
    pub kubelet_versions: Vec<String>,
}

/// Why no starter was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarterError {
    /// Answers the file cannot do without and that must not be made up: every one missing,
    /// so the operator sees them all at once.
    #[error("{}", needed_words(.0))]
    Missing(Vec<Needed>),
    /// The cluster read is not one `plan` converts (it has several control-plane nodes already).
    #[error("{0}")]
    Refused(String),
    /// The answers do not make a valid scenario (a repeated address, a target count of 4, ...).
    #[error("{0}")]
    Invalid(String),
}

/// A flag `plan init` needs, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub flag: &'static str,
    pub why: String,
}

impl Needed {
    /// The one missing answer, as the error.
    pub fn alone(flag: &'static str, why: String) -> StarterError {
        StarterError::Missing(vec![Needed { flag, why }])
    }
}

/// One missing answer as `FLAG is needed: why`; several on the one line a refusal takes, as
/// `N answers are needed; FLAG: why; FLAG: why`.
fn needed_words(needed: &[Needed]) -> String {
    match needed {
        [one] => format!("{} is needed: {}", one.flag, one.why),
        several => {
            several.iter().fold(format!("{} answers are needed", several.len()), |words, n| words + &format!("; {}: {}", n.flag, n.why))
        }
    }
}

/// The version written when neither a flag nor a cluster gave one (under a TODO).
pub const DEFAULT_KUBERNETES: &str = "1.34";
/// The API port when neither a flag nor a cluster gave one.
pub const DEFAULT_PORT: u16 = 6443;

/// The target counts `plan` converts to.
pub const MASTER_COUNTS: [u32; 3] = [3, 5, 7];

/// The starter scenario's text for `answers`, already checked to validate.
///
/// # Errors
/// [`StarterError::Missing`] for an address not given, [`StarterError::Invalid`] when the answers
/// would not validate (with the validator's reason).
///
/// ```
/// use plan_model::starter::{render, Answers, Machine};
/// let answers = Answers {
///     name: "lab".into(),
///     masters: 3,
///     kubernetes_version: Some("1.34".into()),
///     first_master: Some("cp-1=192.0.2.10".parse().unwrap()),
///     new_masters: vec!["cp-2=192.0.2.11".parse().unwrap(), "cp-3=192.0.2.12".parse().unwrap()],
///     vip: Some("192.0.2.9".parse().unwrap()),
///     fqdn: Some("api.lab.example".into()),
///     lb_host: Some("lb=192.0.2.2".parse().unwrap()),
///     hypervisor_hosts: vec!["pve=192.0.2.3".parse().unwrap()],
///     ..Answers::default()
/// };
/// let text = render(&answers).unwrap();
/// assert!(text.contains("control_plane_count: 3"));
/// assert!(plan_model::validate::parse_scenario(&text).is_ok());
/// ```
pub fn render(answers: &Answers) -> Result<String, StarterError> {
    let shape = Shape::of(answers)?;
    let text = yaml::render(&sections::header(answers), &sections::document(answers, &shape));
    // Validated here, so a starter that would be refused is never written: the operator's
    // answers may clash (two machines on one address, the VIP on a node).
    // Every problem the validator tells apart, on one line as every refusal of `plan init`.
    parse_scenario_every_problem(&text).map_err(|problems| {
        let words: Vec<String> = problems.iter().map(ScenarioError::message_and_field).collect();
        StarterError::Invalid(match words.as_slice() {
            [only] => only.clone(),
            _ => format!("{} problems: {}", words.len(), words.join("; ")),
        })
    })?;
    Ok(text)
}

/// The answers every starter needs, each present.
struct Shape<'a> {
    first_master: &'a Machine,
    vip: Ipv4Addr,
    fqdn: &'a str,
    /// `dns.zone`: the FQDN less its first label.
    zone: &'a str,
    hypervisors: Vec<Host<'a>>,
    /// The separate load balancer machine; none when the VIP lives on the masters.
    lb_host: Option<&'a Machine>,
    /// The VIP's port, and the apiserver's own when it differs (keepalived's HAProxy on the masters).
    port: u16,
    apiserver_port: Option<u16>,
}

/// A hypervisor of the starter: a host the operator named, or the machines they provide.
struct Host<'a> {
    name: &'a str,
    address: Option<Ipv4Addr>,
}

/// The name of the one hypervisor entry for machines the operator provides (`--hypervisor none`).
pub const PROVIDED_MACHINES: &str = "provided";
/// The VIP's port with keepalived when none is given: HAProxy on a master cannot bind the
/// apiserver's own port on the VIP (the kubeadm HA guide's 8443).
pub const KEEPALIVED_PORT: u16 = 8443;

impl<'a> Shape<'a> {
    fn of(a: &'a Answers) -> Result<Shape<'a>, StarterError> {
        if !MASTER_COUNTS.contains(&a.masters) {
            return Err(StarterError::Invalid(format!(
                "--masters {} is not a control-plane size plan converts to: 3, 5 or 7 (an even count tolerates no more failures than the odd count below it)",
                a.masters
            )));
        }
        let mut needed = Vec::new();
        let mut need = |flag: &'static str, why: String| needed.push(Needed { flag, why });
        if a.first_master.is_none() {
            need("--first-master NAME=ADDRESS", "the cluster's one control-plane node today".to_string());
        }
        let wanted = a.masters as usize - 1;
        if a.new_masters.len() != wanted {
            need(
                "--new-master NAME=ADDRESS",
                format!(
                    "--masters {} needs {wanted} new masters, one --new-master each, in the order they join ({} given)",
                    a.masters,
                    a.new_masters.len()
                ),
            );
        }
        if a.vip.is_none() {
            need("--vip ADDRESS", "the free address every client will reach the API on".to_string());
        }
        if a.fqdn.is_none() {
            need("--fqdn NAME", "the DNS name of the VIP, added to the certificates' SANs (e.g. k8s-api.example.lan)".to_string());
        }
        let hypervisors = hosts(a, &mut need);
        let lb_host = lb_host(a, &mut need);
        // Every answer missing first, in one refusal; then the ones given wrong.
        let (Some(first_master), Some(vip), Some(fqdn), true) = (a.first_master.as_ref(), a.vip, a.fqdn.as_deref(), needed.is_empty())
        else {
            return Err(StarterError::Missing(needed));
        };
        let zone = fqdn.split_once('.').map(|(_, zone)| zone).filter(|z| !z.is_empty()).ok_or_else(|| {
            StarterError::Invalid(format!("--fqdn {fqdn} has no zone: give the name with its DNS zone (e.g. {fqdn}.example.lan)"))
        })?;
        let lb_host = lb_host?;
        let (port, apiserver_port) = match (a.profiles.lb, a.port) {
            (LbKind::Keepalived, None) => (KEEPALIVED_PORT, Some(DEFAULT_PORT)),
            (LbKind::Keepalived, Some(port)) => (port, Some(DEFAULT_PORT)),
            (_, port) => (port.unwrap_or(DEFAULT_PORT), None),
        };
        Ok(Shape { first_master, vip, fqdn, zone, hypervisors, lb_host, port, apiserver_port })
    }
}

/// The hypervisors: the hosts named, or one entry for the machines the operator provides; none,
/// and the flag `need`ed, where a kind of hypervisor is named without its hosts.
fn hosts<'a>(a: &'a Answers, need: &mut impl FnMut(&'static str, String)) -> Vec<Host<'a>> {
    let named = a.hypervisor_hosts.iter().map(|h| Host { name: &h.name, address: Some(h.address) });
    match a.profiles.hypervisor {
        HypervisorKind::None if a.hypervisor_hosts.is_empty() => vec![Host { name: PROVIDED_MACHINES, address: None }],
        kind if kind != HypervisorKind::None && a.hypervisor_hosts.is_empty() => {
            need(
                "--hypervisor-host NAME=ADDRESS",
                format!(
                    "the {} host the new master VMs are created on (repeat it for each host, or give --hypervisor none when you provide the machines)",
                    kind.as_str()
                ),
            );
            Vec::new()
        }
        _ => named.collect(),
    }
}

/// The load balancer machine: needed by the kinds that have one (the flag `need`ed where it is
/// not given), refused by those on the masters.
fn lb_host<'a>(a: &'a Answers, need: &mut impl FnMut(&'static str, String)) -> Result<Option<&'a Machine>, StarterError> {
    let kind = a.profiles.lb;
    match (&a.lb_host, kind.on_masters()) {
        (Some(host), true) => Err(StarterError::Invalid(format!(
            "--lb-host {}: --lb {} runs on the masters, there is no load balancer machine to name",
            host.name,
            kind.as_str()
        ))),
        (None, true) => Ok(None),
        (Some(host), false) => Ok(Some(host)),
        (None, false) => {
            need("--lb-host NAME=ADDRESS", format!("the {} load balancer machine that serves the VIP", kind.as_str()));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
