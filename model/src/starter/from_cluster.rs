//! What a live cluster said (its nodes and kubeadm-config), folded into the starter's answers:
//! it fills what the flags left open, never what they gave.

use super::{Answers, Machine, Needed, StarterError};
use crate::validate::parse_version;
use std::net::Ipv4Addr;

/// The label kubeadm puts on its control-plane nodes (from Kubernetes 1.20; the only one from 1.24).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The label before it, still on nodes of clusters made before 1.24.
pub const LEGACY_MASTER_LABEL: &str = "node-role.kubernetes.io/master";

/// A node as the API lists it, reduced to what a scenario holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenNode {
    pub name: String,
    /// The first IPv4 `InternalIP` of `status.addresses`.
    pub internal_ip: Option<Ipv4Addr>,
    /// Labelled [`CONTROL_PLANE_LABEL`] (or [`LEGACY_MASTER_LABEL`]).
    pub control_plane: bool,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.34.2`.
    pub kubelet_version: Option<String>,
}

/// kubeadm-config's ClusterConfiguration, the parts a starter uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenKubeadm {
    pub kubernetes_version: Option<String>,
    pub control_plane_endpoint: Option<String>,
    pub cert_sans: Vec<String>,
    /// The names of `apiServer.extraArgs` (a map in v1beta3, a list of `{name, value}` in v1beta4).
    pub apiserver_extra_args: Vec<String>,
}

/// Everything read from one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenCluster {
    /// The API server URL it was read from.
    pub server: String,
    pub nodes: Vec<SeenNode>,
    /// `None` when the ConfigMap (or its ClusterConfiguration key) is missing.
    pub kubeadm: Option<SeenKubeadm>,
}

/// Fills `answers` (as the flags gave them) from `seen`.
///
/// # Errors
/// [`StarterError::Refused`] when the cluster has more than one control-plane node (it is not a
/// one-master cluster: `plan` does not apply); [`StarterError::Missing`] naming `--first-master`
/// when it has none with an address and the flag was not given.
///
/// ```
/// use plan_model::starter::{from_cluster::{fill, SeenCluster, SeenNode}, Answers};
/// let seen = SeenCluster {
///     server: "https://127.0.0.1:6443".into(),
///     nodes: vec![SeenNode { name: "cp-1".into(), internal_ip: Some("127.0.30.10".parse().unwrap()), control_plane: true, kubelet_version: Some("v1.33.4".into()) }],
///     kubeadm: None,
/// };
/// let mut answers = Answers::default();
/// fill(&mut answers, &seen).unwrap();
/// assert_eq!(answers.first_master.unwrap().name, "cp-1");
/// assert_eq!(answers.kubernetes_version.as_deref(), Some("1.33"));
/// ```
pub fn fill(answers: &mut Answers, seen: &SeenCluster) -> Result<(), StarterError> {
    let masters: Vec<&SeenNode> = seen.nodes.iter().filter(|n| n.control_plane).collect();
    if masters.len() > 1 {
        let names: Vec<&str> = masters.iter().map(|n| n.name.as_str()).collect();
        return Err(StarterError::Refused(format!(
            "the cluster at {} already has {} control-plane nodes ({}): plan converts a cluster with exactly one",
            seen.server,
            masters.len(),
            names.join(", ")
        )));
    }
    answers.provenance.push(format!(
        "Read from the cluster at {}: {} node(s){}; what the flags gave wins over what was read.",
        seen.server,
        seen.nodes.len(),
        if seen.kubeadm.is_some() { ", kubeadm-config" } else { " (no kubeadm-config ConfigMap)" }
    ));
    let master = masters.first().copied();
    if answers.first_master.is_none() {
        let missing = |why: String| Needed::alone("--first-master NAME=ADDRESS", why);
        let m =
            master.ok_or_else(|| missing(format!("no node of the cluster at {} carries the label {CONTROL_PLANE_LABEL}", seen.server)))?;
        let address = m.internal_ip.ok_or_else(|| missing(format!("the control-plane node {} has no IPv4 InternalIP", m.name)))?;
        answers.first_master = Some(Machine { name: m.name.clone(), address });
    }
    if answers.workers.is_empty() {
        for node in seen.nodes.iter().filter(|n| !n.control_plane) {
            match node.internal_ip {
                Some(address) => answers.workers.push(Machine { name: node.name.clone(), address }),
                None => answers.observed.skipped_nodes.push(format!("{} (no IPv4 InternalIP)", node.name)),
            }
        }
    }
    fill_version(answers, seen, master);
    if let Some(kubeadm) = &seen.kubeadm {
        fill_endpoint(answers, kubeadm);
        answers.observed.cert_sans = kubeadm.cert_sans.clone();
        answers.observed.apiserver_extra_args = kubeadm.apiserver_extra_args.clone();
    }
    Ok(())
}

/// The version: kubeadm-config's kubernetesVersion, else the control-plane node's kubelet.
fn fill_version(answers: &mut Answers, seen: &SeenCluster, master: Option<&SeenNode>) {
    let mut versions: Vec<String> = seen.nodes.iter().filter_map(|n| n.kubelet_version.clone()).collect();
    versions.sort();
    versions.dedup();
    if versions.len() > 1 {
        answers.observed.kubelet_versions =
            seen.nodes.iter().filter_map(|n| n.kubelet_version.as_ref().map(|v| format!("{} {v}", n.name))).collect();
    }
    if answers.kubernetes_version.is_some() {
        return;
    }
    let from_kubeadm = seen.kubeadm.as_ref().and_then(|k| k.kubernetes_version.clone()).map(|v| (v, "kubeadm-config's kubernetesVersion"));
    let from_kubelet = master.and_then(|m| m.kubelet_version.clone()).map(|v| (v, "the control-plane node's kubelet"));
    if let Some((version, source)) = from_kubeadm.or(from_kubelet) {
        if let Some((major, minor)) = parse_version(&version) {
            answers.kubernetes_version = Some(format!("{major}.{minor}"));
            answers.provenance.push(format!("kubernetes.version {major}.{minor}: {version}, from {source}."));
        }
    }
}

/// The VIP, FQDN and port from a controlPlaneEndpoint that is not the master itself.
fn fill_endpoint(answers: &mut Answers, kubeadm: &SeenKubeadm) {
    let Some(endpoint) = kubeadm.control_plane_endpoint.as_deref().filter(|e| !e.is_empty()) else { return };
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok()),
        None => (endpoint, None),
    };
    let master_address = answers.first_master.as_ref().map(|m| m.address);
    let master_name = answers.first_master.as_ref().map(|m| m.name.as_str());
    let on_the_master = host.parse::<Ipv4Addr>().ok().is_some_and(|a| Some(a) == master_address) || Some(host) == master_name;
    if on_the_master {
        return;
    }
    let said = format!("from kubeadm-config's controlPlaneEndpoint {endpoint}");
    match host.parse::<Ipv4Addr>() {
        Ok(vip) if answers.vip.is_none() => {
            answers.vip = Some(vip);
            answers.provenance.push(format!("control_plane_endpoint.vip {vip}: {said}."));
        }
        Ok(_) => {}
        Err(_) if answers.fqdn.is_none() && host.contains('.') => {
            answers.fqdn = Some(host.to_string());
            answers.provenance.push(format!("control_plane_endpoint.fqdn {host}: {said}."));
        }
        Err(_) => {}
    }
    if let (None, Some(port)) = (answers.port, port) {
        answers.port = Some(port);
        answers.provenance.push(format!("control_plane_endpoint.port {port}: {said}."));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, last: u8, control_plane: bool, version: &str) -> SeenNode {
        SeenNode {
            name: name.to_string(),
            internal_ip: Some(Ipv4Addr::new(127, 0, 30, last)),
            control_plane,
            kubelet_version: Some(version.to_string()),
        }
    }

    fn cluster() -> SeenCluster {
        SeenCluster {
            server: "https://127.0.30.10:6443".to_string(),
            nodes: vec![node("cp-1", 10, true, "v1.33.4"), node("w-1", 20, false, "v1.33.4"), node("w-2", 21, false, "v1.32.9")],
            kubeadm: Some(SeenKubeadm {
                kubernetes_version: Some("v1.33.4".to_string()),
                control_plane_endpoint: Some("k8s-api.lab.example:8443".to_string()),
                cert_sans: vec!["k8s-api.lab.example".to_string()],
                apiserver_extra_args: vec!["oidc-issuer-url".to_string()],
            }),
        }
    }

    #[test]
    fn the_cluster_fills_what_the_flags_left_open() {
        let mut a = Answers::default();
        fill(&mut a, &cluster()).expect("one master");
        assert_eq!(a.first_master, Some(Machine { name: "cp-1".into(), address: Ipv4Addr::new(127, 0, 30, 10) }));
        assert_eq!(a.workers.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["w-1", "w-2"]);
        assert_eq!(a.kubernetes_version.as_deref(), Some("1.33"));
        assert_eq!((a.fqdn.as_deref(), a.port, a.vip), (Some("k8s-api.lab.example"), Some(8443), None));
        assert_eq!(a.observed.apiserver_extra_args, ["oidc-issuer-url"]);
        assert_eq!(a.observed.kubelet_versions.len(), 3, "the kubelets differ: each is named");
    }

    #[test]
    fn the_flags_win() {
        let given = Machine { name: "old".into(), address: Ipv4Addr::new(127, 0, 30, 99) };
        let mut a = Answers {
            first_master: Some(given.clone()),
            workers: vec![Machine { name: "w-9".into(), address: Ipv4Addr::new(127, 0, 30, 98) }],
            kubernetes_version: Some("1.34".into()),
            fqdn: Some("api.other.example".into()),
            port: Some(6443),
            ..Answers::default()
        };
        fill(&mut a, &cluster()).expect("one master");
        assert_eq!(a.first_master, Some(given));
        assert_eq!(a.workers.len(), 1);
        assert_eq!((a.kubernetes_version.as_deref(), a.fqdn.as_deref(), a.port), (Some("1.34"), Some("api.other.example"), Some(6443)));
    }

    #[test]
    fn a_cluster_without_a_labelled_master_asks_for_the_flag() {
        let mut seen = cluster();
        seen.nodes[0].control_plane = false;
        let said = fill(&mut Answers::default(), &seen).unwrap_err().to_string();
        assert_eq!(
            said,
            "--first-master NAME=ADDRESS is needed: no node of the cluster at https://127.0.30.10:6443 carries the label node-role.kubernetes.io/control-plane"
        );
        let mut given =
            Answers { first_master: Some(Machine { name: "cp-1".into(), address: Ipv4Addr::new(127, 0, 30, 10) }), ..Answers::default() };
        fill(&mut given, &seen).expect("the flag names it");
        let mut seen = cluster();
        seen.nodes[0].internal_ip = None;
        let said = fill(&mut Answers::default(), &seen).unwrap_err().to_string();
        assert!(said.ends_with("the control-plane node cp-1 has no IPv4 InternalIP"), "{said}");
    }

    #[test]
    fn a_cluster_with_two_masters_is_refused() {
        let mut seen = cluster();
        seen.nodes[1].control_plane = true;
        let said = fill(&mut Answers::default(), &seen).unwrap_err().to_string();
        assert_eq!(
            said,
            "the cluster at https://127.0.30.10:6443 already has 2 control-plane nodes (cp-1, w-1): plan converts a cluster with exactly one"
        );
    }

    #[test]
    fn an_endpoint_on_the_master_or_an_ip_vip_and_a_node_without_address() {
        let mut seen = cluster();
        seen.kubeadm.as_mut().expect("read").control_plane_endpoint = Some("127.0.30.10:6443".to_string());
        seen.nodes[2].internal_ip = None;
        let mut a = Answers::default();
        fill(&mut a, &seen).expect("one master");
        assert_eq!((a.vip, a.fqdn.as_deref()), (None, None), "the master's own address is no VIP");
        assert_eq!(a.observed.skipped_nodes, ["w-2 (no IPv4 InternalIP)"]);
        seen.kubeadm.as_mut().expect("read").control_plane_endpoint = Some("127.0.30.9:6443".to_string());
        let mut a = Answers::default();
        fill(&mut a, &seen).expect("one master");
        assert_eq!(a.vip, Some(Ipv4Addr::new(127, 0, 30, 9)));
        // No kubeadm-config: the kubelet's version.
        seen.kubeadm = None;
        let mut a = Answers::default();
        fill(&mut a, &seen).expect("one master");
        assert_eq!(a.kubernetes_version.as_deref(), Some("1.33"));
    }
}
