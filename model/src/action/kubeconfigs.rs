//! The kubeconfigs that name the API: the consumers' in the infra repo, kube-proxy's, and each
//! node's kubelet.conf.

use super::refuse::{needs_api, needs_up, Words};
use super::{Action, Refusal};
use crate::cluster::Cluster;
use crate::topology::Topology;

/// The kubeconfig actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn kubeconfig_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::PointKubeProxyAtVip => {
            needs_api(w, c, t, "kubectl -n kube-system apply configmap/kube-proxy")?;
            n.kube_proxy_vip = true;
        }
        Action::FlipConsumersOf(mask) => n.consumers_vip = c.consumers_vip | mask,
        Action::RevertConsumers => n.consumers_vip = 0,
        Action::FlipKubelet(x) => {
            needs_up(w, c, t, x, "sed kubelet.conf")?;
            n.kubelet_vip = c.kubelet_vip.with(x);
            n.kubelet_local = c.kubelet_local.without(x);
        }
        Action::RevertKubelet(x) => {
            needs_up(w, c, t, x, "sed kubelet.conf")?;
            n.kubelet_vip = c.kubelet_vip.without(x);
            // The first master's direct address is its own.
            n.kubelet_local.set(x, x == t.existing_master() || c.kubelet_local.contains(x));
        }
        _ => unreachable!("{action:?} is not a kubeconfig action"),
    }
    Ok(())
}
