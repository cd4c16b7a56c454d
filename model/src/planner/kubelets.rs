//! Phase 4's kubelet steps: what the masters' kubelets name after their joins depends on the
//! Kubernetes version (docs/facts.md K1, K2).

use super::{master_phase, strings, verify, verify_on, StepSpec, WHY_ALL_MASTERS, WHY_SEQUENCE};
use crate::action::Check;
use crate::operation::Operation;
use crate::plan::RunsOn;
use crate::topology::{NodeIx, Topology};

/// 4.3: the first master's kubelet. With kubeadm's local mode it already names its own
/// apiserver, the address it has always used, and `kubeadm upgrade` keeps it so; without it the
/// source's flip to the VIP.
pub(super) fn master_kubelet_step(t: &Topology, m0: NodeIx) -> StepSpec<'static> {
    let s = &t.scenario;
    let (m0_name, m0_addr) = (t.name(m0), t.node(m0).address);
    let (vip, port, api_port) = (s.control_plane_endpoint.vip, s.control_plane_endpoint.port, t.apiserver_port());
    if t.kubelet_local_mode {
        let grep = "sudo grep server: /etc/kubernetes/kubelet.conf".to_string();
        return StepSpec::new("4.3", format!("Verify {m0_name} kubelet.conf names its own apiserver"), RunsOn::Node(m0_name.to_string()))
            .ops(vec![verify_on(t, m0_name, [Check::KubeletLocal(m0), Check::NodeReady(m0)], [grep])])
            .checks(vec![format!("server: https://{m0_addr}:{api_port}, its own apiserver")])
            .after("4.2", WHY_SEQUENCE)
            .note(format!(
                "not the VIP: from Kubernetes 1.33 kubeadm keeps a control-plane kubelet on its local apiserver (ControlPlaneKubeletLocalMode) and its next upgrade would rewrite the VIP back to https://{m0_addr}:{api_port}"
            ));
    }
    StepSpec::new("4.3", format!("Flip {m0_name} kubelet.conf"), RunsOn::Node(m0_name.to_string()))
        .ops(vec![
            Operation::KubeletServer { nodes: vec![m0_name.to_string()], server: format!("https://{vip}:{port}"), wait_ready: false },
            verify(t, [Check::NodeReady(m0)], []),
        ])
        .after("4.2", WHY_SEQUENCE)
        .disruption(format!("5-10 s NotReady on {m0_name}"))
}

/// 4.4: the new masters' kubelets. With local mode `kubeadm join` pointed each at its own
/// apiserver; without it at the server of cluster-info, which names the first master, so they
/// are flipped to the VIP here.
pub(super) fn new_masters_kubelet_step(t: &Topology, new_masters: &[NodeIx]) -> StepSpec<'static> {
    let s = &t.scenario;
    let m0_addr = t.node(t.existing_master()).address;
    let (vip, port, api_port) = (s.control_plane_endpoint.vip, s.control_plane_endpoint.port, t.apiserver_port());
    let mut step = if t.kubelet_local_mode {
        let ops = new_masters
            .iter()
            .map(|&m| {
                let grep = "sudo grep server: /etc/kubernetes/kubelet.conf".to_string();
                verify_on(t, t.name(m), [Check::KubeletLocal(m), Check::NodeReady(m)], [grep])
            })
            .collect();
        StepSpec::new("4.4", "Verify the new masters' kubelet.conf name their own apiserver", RunsOn::Workstation)
            .ops(ops)
            .checks(strings(["each names its own address (kubeadm join, ControlPlaneKubeletLocalMode)"]))
            .note("not the VIP: from Kubernetes 1.33 kubeadm join points a control-plane kubelet at its own apiserver")
    } else {
        let mut ops = Vec::new();
        for &m in new_masters {
            ops.push(Operation::KubeletServer {
                nodes: vec![t.name(m).to_string()],
                server: format!("https://{vip}:{port}"),
                wait_ready: false,
            });
            ops.push(verify(t, [Check::NodeReady(m)], []));
        }
        StepSpec::new("4.4", "Flip the new masters' kubelet.conf to the VIP", RunsOn::Workstation)
            .ops(ops)
            .checks(vec![format!("each names https://{vip}:{port}")])
            .disruption("5-10 s NotReady per new master")
            .note(format!("not on the VIP yet: before Kubernetes 1.33 kubeadm join writes the server of cluster-info, which still names {m0_addr}:{api_port}"))
    };
    step = step.after("4.3", WHY_SEQUENCE);
    for k in 0..new_masters.len() {
        step = step.after(format!("{}.5", master_phase(k)), WHY_ALL_MASTERS);
    }
    step
}
