//! The files the lab writes as kubeadm would have: kubeconfigs, the kubeadm configuration, the
//! apiserver's manifest, and the `kubeadm` shim on every host.

use crate::error::LabError;
use crate::executor_lab::{self, CLOCK_OFFSET};
use crate::host;
use plan_model::topology::{NodeIx, Topology};
use std::net::Ipv4Addr;
use std::path::Path;

pub(super) fn apiserver_manifest(t: &Topology, node: NodeIx, flags: bool) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver-{}\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n",
        t.name(node)
    );
    if flags {
        for line in executor_lab::flag_lines(t) {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

pub(super) fn kubeconfig(server: Ipv4Addr, port: u16) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLUNB\n    server: https://{server}:{port}\n  name: kubernetes\nkind: Config\n"
    )
}

pub(super) fn cluster_configuration(t: &Topology, on_vip: bool) -> String {
    let endpoint = &t.scenario.control_plane_endpoint;
    let mut text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: kubernetes\n".to_string();
    if on_vip {
        text.push_str(&format!(
            "controlPlaneEndpoint: {vip}:{port}\napiServer:\n  certSANs:\n  - {vip}\n  - {fqdn}\n",
            vip = endpoint.vip,
            port = endpoint.port,
            fqdn = endpoint.fqdn
        ));
    }
    text
}

/// The `kubeadm` shim: the equivalent real action of each subcommand the plan runs, `@ROOT@` the
/// lab's root and `@CLOCK_OFFSET@` the file of its clock's offset under it.
const KUBEADM_SHIM: &str = include_str!("kubeadm-shim.sh");

/// `kubeadm` on every lab host.
pub(super) fn write_kubeadm_shim(shims: &Path, root: &Path) -> Result<(), LabError> {
    let root = root.display();
    host::write_executable(
        &shims.join("kubeadm"),
        &KUBEADM_SHIM
            .replace("@ROOT@", &root.to_string())
            .replace("@CLOCK_OFFSET@", CLOCK_OFFSET)
            .replace("@MEMBER_DIR@", crate::executor_etcd::MEMBER_DIR),
    )
}
