//! The short disruptions inside an action: an apiserver or kubelet restart, a load balancer
//! reset, the VIP moving off a master that shuts down.

use super::{Action, APISERVER_RESTART_S, KUBELET_RESTART_S};
use crate::cluster::Cluster;
use crate::topology::Topology;

/// A short disruption inside an action: the state while it lasts, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transient {
    pub during: Cluster,
    pub seconds: u32,
    pub what: &'static str,
}

/// The short disruption an action causes while it runs, if any.
pub fn transient(c: &Cluster, t: &Topology, action: Action) -> Option<Transient> {
    // A planned shutdown of the VIP's holder moves the VIP as a crash does.
    if let Action::Shutdown(x) = action {
        return crate::fault::Fault::NodeDown { node: x, lasts_s: None }.transient(c, t);
    }
    let mut during = *c;
    let (seconds, what) = match action {
        Action::RestartApiserver(x) if c.control_plane.contains(x) && c.up.contains(x) => {
            during.apiserver_running.set(x, false);
            (APISERVER_RESTART_S, "kube-apiserver restarts")
        }
        Action::ApplyConfigStack if !c.stack_hosts_declared.minus(c.stack_hosts).and(c.control_plane).and(c.up).is_empty() => {
            during.apiserver_running = c.apiserver_running.minus(c.stack_hosts_declared.minus(c.stack_hosts));
            (APISERVER_RESTART_S, "kube-apiserver restarts with the config stack's flags")
        }
        Action::DeployLb if t.scenario.load_balancer.deploy_bounces() && c.lb_running.frontend => {
            during.lb_running.frontend = false;
            (t.scenario.load_balancer.reset_window_s, "LB frontends torn down and rebuilt")
        }
        Action::FlipKubelet(x) | Action::RevertKubelet(x) if c.joined.contains(x) => {
            during.joined.set(x, false);
            (KUBELET_RESTART_S, "kubelet restarts")
        }
        _ => return None,
    };
    Some(Transient { during, seconds, what })
}
