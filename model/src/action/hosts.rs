//! The machines: their VMs and template, their power, and each node's control plane and Node
//! object (a join's last phase, `kubeadm reset`, a machine written off).

use super::refuse::{api_for_operator, needs_api, needs_up, Words};
use super::{Action, Refusal, RefusalKind};
use crate::cluster::Cluster;
use crate::observe;
use crate::topology::{NodeIx, NodeSet, Topology};

/// The VM, template and power actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn host_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::TakeVmSnapshot => {
            let h = t.node(t.existing_master()).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 {
                return w.refuse(|| "qm snapshot: hypervisor unreachable");
            }
            n.vm_snapshot = true;
        }
        Action::DeclareTemplate => n.template_declared = true,
        Action::BumpTemplate => {
            n.template_version_ok = c.template_version_ok || c.template_declared;
            n.template_master_safe = c.template_master_safe || c.template_declared;
        }
        Action::DeclareVm(x) => n.vm_declared = c.vm_declared.with(x),
        Action::CreateVm(x) => create_vm(c, n, t, x, w)?,
        Action::DestroyVm(x) => {
            let h = t.node(x).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 {
                // Nothing to destroy there until it returns: a recovery passes over it, as over
                // any action on a machine that is down (a quorum recovery after a hypervisor lost
                // for good forces the new cluster all the same).
                return w.refuse_as(RefusalKind::HostDown, || "tg destroy: hypervisor unreachable");
            }
            destroy(c, n, x);
        }
        Action::Shutdown(x) => {
            needs_up(w, c, t, x, "reboot")?;
            n.up = c.up.without(x);
        }
        Action::Boot(x) => {
            let h = t.node(x).hypervisor;
            if c.hypervisors_down & (1 << h) != 0 || !c.vm_exists.contains(x) {
                return w.refuse(|| format!("qm start {}: no such VM or hypervisor down", t.name(x)));
            }
            if c.broken.contains(x) {
                return w.refuse_as(RefusalKind::HostDown, || {
                    format!("qm start {}: the machine does not come back (it failed for good)", t.name(x))
                });
            }
            *n = boot(n, x);
        }
        _ => unreachable!("{action:?} is not a host action"),
    }
    Ok(())
}

/// The VM stack's apply of the declared VM of `x`: the VM created, booted, and (from a
/// template that still joins workers) joined as a worker.
#[inline]
fn create_vm(c: &Cluster, n: &mut Cluster, t: &Topology, x: NodeIx, w: Words) -> Result<(), Refusal> {
    if !c.vm_declared.contains(x) {
        return w.refuse(|| format!("tg apply -target=module.{}: no such module in the infra repo (the VM is not declared)", t.name(x)));
    }
    let h = t.node(x).hypervisor;
    if c.hypervisors_down & (1 << h) != 0 {
        return w.refuse(|| "tg apply: hypervisor unreachable");
    }
    if c.vm_exists.contains(x) {
        return w.refuse(|| format!("the VM of {} already exists", t.name(x)));
    }
    n.vm_exists = c.vm_exists.with(x);
    n.up = c.up.with(x);
    n.old_kubeadm.set(x, !c.template_version_ok);
    if !c.template_master_safe && api_for_operator(c, t).is_ok() {
        // cloud-init's runcmd runs the worker join command on first boot.
        n.joined_as_worker = c.joined_as_worker.with(x);
        n.joined = c.joined.with(x);
    }
    Ok(())
}

/// The VM of `x` destroyed: nothing of the machine is left but the Node object of a node that
/// had joined.
#[inline]
fn destroy(c: &Cluster, n: &mut Cluster, x: NodeIx) {
    let gone = NodeSet::of(x);
    n.vm_exists = c.vm_exists.minus(gone);
    n.up = c.up.minus(gone);
    // A VM made again in its place is a new machine.
    n.broken = c.broken.minus(gone);
    n.old_kubeadm = c.old_kubeadm.minus(gone);
    n.join_secrets_on = c.join_secrets_on.minus(gone);
    node_wiped(c, n, x);
}

/// What a node's kubeadm made on it gone (by `kubeadm reset`, or with its VM): its control
/// plane, certificates, kubelet and etcd data, join files; its Node object stays, NotReady.
#[inline]
fn node_wiped(c: &Cluster, n: &mut Cluster, x: NodeIx) {
    let gone = NodeSet::of(x);
    n.control_plane = c.control_plane.minus(gone);
    n.apiserver_running = c.apiserver_running.minus(gone);
    n.apiserver_flags = c.apiserver_flags.minus(gone);
    n.cert_present = c.cert_present.minus(gone);
    n.cert_vip = c.cert_vip.minus(gone);
    n.served_vip = c.served_vip.minus(gone);
    n.joined = c.joined.minus(gone);
    n.joined_as_worker = c.joined_as_worker.minus(gone);
    n.kubelet_vip = c.kubelet_vip.minus(gone);
    n.kubelet_local = c.kubelet_local.minus(gone);
    n.etcd_started = c.etcd_started.minus(gone);
    n.join_files = c.join_files.minus(gone);
    // reset.go never deletes the Node object: it stays, NotReady (and a destroyed VM's too).
    if c.joined.contains(x) {
        n.stale_nodes = c.stale_nodes.with(x);
    }
}

/// A node coming up: its static pods start again from what is on disk.
pub fn boot(c: &Cluster, x: NodeIx) -> Cluster {
    let mut n = *c;
    n.up = c.up.with(x);
    if c.control_plane.contains(x) {
        n.apiserver_running.set(x, c.cert_present.contains(x));
        n.served_vip.set(x, c.cert_vip.contains(x));
    }
    n
}

/// The actions on a node's control plane and Node object: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn control_plane_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::ControlPlaneUp(x) => {
            needs_up(w, c, t, x, "kubeadm join --control-plane")?;
            if !observe::live_members(c).contains(x) {
                return w.refuse(|| format!("kubeadm join: etcd on {} is not running", t.name(x)));
            }
            control_plane_up(c, n, t, x);
        }
        Action::KubeadmReset(x) => {
            needs_up(w, c, t, x, "kubeadm reset")?;
            reset(c, n, x);
        }
        Action::DeleteNode(x) => {
            needs_api(w, c, t, "kubectl delete node")?;
            n.stale_nodes = c.stale_nodes.without(x);
        }
        Action::WriteOff(x) => {
            if c.up.contains(x) {
                return w.refuse(|| format!("write off {}: it is up; only a machine down for good is written off", t.name(x)));
            }
            if c.joined.contains(x) || c.stale_nodes.contains(x) {
                needs_api(w, c, t, "kubectl delete node")?;
            }
            n.joined = c.joined.without(x);
            n.stale_nodes = c.stale_nodes.without(x);
            n.written_off = c.written_off.with(x);
        }
        _ => unreachable!("{action:?} is not a control-plane node action"),
    }
    Ok(())
}

/// The join's last phase on `x`: the remaining static pods, the apiserver cert, kubelet.conf and
/// the node's registration.
#[inline]
fn control_plane_up(c: &Cluster, n: &mut Cluster, t: &Topology, x: NodeIx) {
    n.control_plane = c.control_plane.with(x);
    n.cert_present = c.cert_present.with(x);
    n.cert_vip.set(x, c.kubeadm_endpoint);
    n.served_vip.set(x, c.kubeadm_endpoint);
    n.apiserver_running = c.apiserver_running.with(x);
    // Without a config stack the flags live in kubeadm-config, which the join renders.
    if t.scenario.config_stack.is_none() {
        n.apiserver_flags = c.apiserver_flags.with(x);
    }
    n.joined = c.joined.with(x);
    n.stale_nodes = c.stale_nodes.without(x);
    // Local mode: kubelet.conf names the node's own apiserver; without it, the server of
    // the discovered cluster-info, which still names the first master.
    n.kubelet_vip = c.kubelet_vip.without(x);
    n.kubelet_local.set(x, t.kubelet_local_mode);
}

/// `kubeadm reset` on `x`: its member removed where etcd takes it, its control plane and
/// kubelet gone, its Node object left behind.
#[inline]
fn reset(c: &Cluster, n: &mut Cluster, x: NodeIx) {
    // kubeadm reset removes the node's own etcd member first when the cluster can take
    // the change (it needs quorum); otherwise it warns and leaves the member behind.
    if c.members().contains(x) && observe::quorum(c).holds() && !c.voters.minus(NodeSet::of(x)).is_empty() {
        n.voters = c.voters.without(x);
        n.learners = c.learners.without(x);
    }
    node_wiped(c, n, x);
}
