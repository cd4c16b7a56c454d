//! Surveys a live cluster for `plan init`, read-only: its nodes (name, InternalIP, control-plane
//! label, kubelet version) and kubeadm-config's ClusterConfiguration.
//!
//! Two GETs through [`KubeApi`] (each bounded by its request timeout), nothing written. The
//! parsers are pure and tested on their own.

use crate::kubernetes::KubeApi;
use crate::ExecError;
use k8s_openapi::api::core::v1::Node;
use plan_model::starter::from_cluster::{SeenCluster, SeenKubeadm, SeenNode, CONTROL_PLANE_LABEL, LEGACY_MASTER_LABEL};
use serde_yaml_ng::Value;

impl KubeApi {
    /// The cluster's nodes and kubeadm-config, as a starter scenario uses them.
    ///
    /// # Caveats
    /// Reads only: a list of nodes and a get of one ConfigMap. With the loopback guard on (see
    /// [`KubeApi::connect`]) only an API server on loopback is asked.
    ///
    /// # Errors
    /// [`ExecError::Kube`]: the API cannot be reached or refuses, or kubeadm-config's
    /// ClusterConfiguration is not YAML.
    ///
    /// ```no_run
    /// use plan_exec::guard::Guard;
    /// use plan_exec::kubernetes::{KubeApi, KubeconfigSource};
    /// let api = KubeApi::connect(&KubeconfigSource::Environment, Guard::LOOPBACK_ONLY)?;
    /// let seen = api.survey()?;
    /// println!("{} nodes at {}", seen.nodes.len(), seen.server);
    /// # Ok::<(), plan_exec::ExecError>(())
    /// ```
    pub fn survey(&self) -> Result<SeenCluster, ExecError> {
        let api: kube::Api<Node> = kube::Api::all(self.client.clone());
        let list = self.bounded("list nodes", api.list(&kube::api::ListParams::default()))?;
        let kubeadm = match self.config_map_key("kube-system", "kubeadm-config", "ClusterConfiguration")? {
            Some(yaml) => Some(parse_kubeadm(&yaml).map_err(|reason| ExecError::Kube { what: "kubeadm-config".to_string(), reason })?),
            None => None,
        };
        Ok(SeenCluster { server: self.server.clone(), nodes: list.items.iter().map(seen_node).collect(), kubeadm })
    }
}

/// A Node object as a starter uses it.
pub fn seen_node(node: &Node) -> SeenNode {
    let labels = node.metadata.labels.as_ref();
    let control_plane = labels.is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL) || l.contains_key(LEGACY_MASTER_LABEL));
    let status = node.status.as_ref();
    let internal_ip = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|addresses| addresses.iter().filter(|a| a.type_ == "InternalIP").find_map(|a| a.address.parse().ok()));
    let kubelet_version = status.and_then(|s| s.node_info.as_ref()).map(|i| i.kubelet_version.clone()).filter(|v| !v.is_empty());
    SeenNode { name: node.metadata.name.clone().unwrap_or_default(), internal_ip, control_plane, kubelet_version }
}

/// kubeadm-config's ClusterConfiguration (v1beta3 or v1beta4) as a starter uses it.
///
/// # Errors
/// The text is not YAML.
pub fn parse_kubeadm(yaml: &str) -> Result<SeenKubeadm, String> {
    let root: Value = serde_yaml_ng::from_str(yaml).map_err(|e| format!("ClusterConfiguration: {e}"))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let api_server = root.get("apiServer");
    let cert_sans = api_server
        .and_then(|a| a.get("certSANs"))
        .and_then(Value::as_sequence)
        .map(|sans| sans.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    // v1beta3: a map of flag to value; v1beta4: a list of { name, value }.
    let apiserver_extra_args = match api_server.and_then(|a| a.get("extraArgs")) {
        Some(Value::Mapping(args)) => args.keys().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        Some(Value::Sequence(args)) => args.iter().filter_map(|a| text(a.get("name"))).collect(),
        _ => Vec::new(),
    };
    Ok(SeenKubeadm {
        kubernetes_version: text(root.get("kubernetesVersion")),
        control_plane_endpoint: text(root.get("controlPlaneEndpoint")),
        cert_sans,
        apiserver_extra_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_gives_its_internal_ip_role_and_kubelet() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {
                "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "fd00::1"}, {"type": "InternalIP", "address": "127.0.30.10"}],
                "nodeInfo": {"kubeletVersion": "v1.34.2"}
            }
        }))
        .expect("a Node");
        let seen = seen_node(&node);
        assert_eq!(seen.name, "cp-1");
        assert_eq!(seen.internal_ip, Some("127.0.30.10".parse().expect("address")), "the first IPv4 InternalIP");
        assert!(seen.control_plane);
        assert_eq!(seen.kubelet_version.as_deref(), Some("v1.34.2"));
        let bare: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "w"}})).expect("a Node");
        assert_eq!(seen_node(&bare), SeenNode { name: "w".to_string(), ..SeenNode::default() });
        let legacy: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "m", "labels": {"node-role.kubernetes.io/master": ""}}}))
                .expect("a Node");
        assert!(seen_node(&legacy).control_plane, "clusters made before 1.24 keep the old label");
    }

    #[test]
    fn kubeadm_config_of_both_api_versions() {
        let v1beta3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.28.3\n\
                       controlPlaneEndpoint: k8s-api.lab.example:6443\napiServer:\n  certSANs: [k8s-api.lab.example, 127.0.30.9]\n\
                       \x20 extraArgs:\n    oidc-issuer-url: https://id.example\n    audit-policy-file: /etc/audit.yaml\n";
        let seen = parse_kubeadm(v1beta3).expect("parses");
        assert_eq!(seen.kubernetes_version.as_deref(), Some("v1.28.3"));
        assert_eq!(seen.control_plane_endpoint.as_deref(), Some("k8s-api.lab.example:6443"));
        assert_eq!(seen.cert_sans, ["k8s-api.lab.example", "127.0.30.9"]);
        assert_eq!(seen.apiserver_extra_args, ["oidc-issuer-url", "audit-policy-file"]);
        let v1beta4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: oidc-issuer-url\n    value: https://id.example\n";
        assert_eq!(parse_kubeadm(v1beta4).expect("parses").apiserver_extra_args, ["oidc-issuer-url"]);
        assert_eq!(parse_kubeadm("kind: ClusterConfiguration\n").expect("parses"), SeenKubeadm::default());
        assert!(parse_kubeadm("apiServer: [").is_err());
    }
}
