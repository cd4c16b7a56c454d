//! The documented rollback procedures (the source plan's rollback section), templated.

use super::master_phase;
use crate::operation::IacStack;
use crate::plan::Command;
use crate::plan::{Recovers, RollbackProcedure};
use crate::scenario::LbKind;

fn cmd(run: impl Into<String>) -> Command {
    Command::shell(run)
}

fn by_hand(run: impl Into<String>) -> Command {
    Command::by_hand(run)
}
use crate::topology::Topology;

/// The documented rollback procedures, in the order of the phases they undo, then the
/// recoveries plan adds.
pub(super) fn rollbacks(t: &Topology) -> Vec<RollbackProcedure> {
    let mut procedures = vec![panic_rollback(t), lb_phase_rollback(t)];
    procedures.extend(config_stack_rollback(t));
    procedures.extend(t.new_masters().enumerate().map(|(k, m)| master_rollback(t, k, t.name(m))));
    procedures.push(cutover_rollback(t));
    procedures.push(go_forward(t));
    procedures.push(quorum_recovery(t));
    procedures.push(snapshot_restore(t));
    procedures
}

/// Machines the operator provides have no VM to destroy or rebuild from a snapshot.
fn machines_provided(t: &Topology) -> bool {
    t.scenario.hypervisors.get(t.node(t.existing_master()).hypervisor).is_some_and(|h| h.kind == crate::scenario::HypervisorKind::None)
}

/// 0.5: phase 0 undone, the first master's old certificate and kubeadm-config back.
fn panic_rollback(t: &Topology) -> RollbackProcedure {
    let m0 = t.name(t.existing_master());
    RollbackProcedure {
        id: "0.5".to_string(),
        title: "Phase 0 panic-mode rollback".to_string(),
        when: "0.4 fails, or any fault before phase 1".to_string(),
        recovers: Some(Recovers::PhaseRollback),
        commands: vec![
            cmd(format!("on {m0}: sudo cp /tmp/apiserver-backup/apiserver.crt /tmp/apiserver-backup/apiserver.key /etc/kubernetes/pki/")),
            cmd(format!("on {m0}: sudo systemctl restart kubelet")),
            cmd(format!("on {m0}: sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-config.backup.yaml")),
        ],
    }
}

/// R1: phase 1 undone, the load balancer and the DNS records.
fn lb_phase_rollback(t: &Topology) -> RollbackProcedure {
    let s = &t.scenario;
    RollbackProcedure {
        id: "R1".to_string(),
        title: "Phase 1 rollback".to_string(),
        when: "a fault in phase 1".to_string(),
        recovers: Some(Recovers::PhaseRollback),
        commands: std::iter::once(by_hand(lb_rollback(t)))
            .chain(match s.dns_via() {
                crate::scenario::DnsVia::Iac => Some(by_hand(format!("revert the DNS records in {}", s.dns.source))),
                crate::scenario::DnsVia::ByHand => {
                    Some(by_hand(format!("remove {} from the DNS server of {}", s.control_plane_endpoint.fqdn, s.dns.zone)))
                }
                crate::scenario::DnsVia::None => None,
            })
            .collect(),
    }
}

/// R1.5: the config stack's refactor undone, where there is a config stack.
fn config_stack_rollback(t: &Topology) -> Option<RollbackProcedure> {
    let s = &t.scenario;
    let repo = &s.infra_repo;
    let stack = s.config_stack.as_ref()?;
    Some(RollbackProcedure {
        id: "R1.5".to_string(),
        title: "Phase 1.5 rollback".to_string(),
        when: "a fault in phase 1.5".to_string(),
        recovers: Some(Recovers::PhaseRollback),
        commands: vec![by_hand(match crate::operation::iac_command(t, "apply", &IacStack::ConfigStack) {
            Some(apply) => format!("revert {} to the single {} variable; cd {repo} && {apply}", stack.path, stack.host_variable),
            None => format!("revert {} to the single {} variable and apply it", stack.path, stack.host_variable),
        })],
    })
}

/// R2, R3, ...: the `k`-th new master (`name`) taken out again.
fn master_rollback(t: &Topology, k: usize, name: &str) -> RollbackProcedure {
    let repo = &t.scenario.infra_repo;
    RollbackProcedure {
        id: format!("R{}", master_phase(k)),
        title: format!("Phase {} rollback ({name})", master_phase(k)),
        when: format!("a fault while {name} is added"),
        recovers: Some(Recovers::PhaseRollback),
        commands: vec![
            cmd(format!("on {name}: sudo kubeadm reset --force")),
            by_hand(format!("on a surviving master: etcdctl member remove <id of {name}> (needs quorum)")),
            by_hand(match (t.scenario.load_balancer.kind.has_pool(), t.scenario.config_stack.is_some()) {
                (true, true) => format!("remove {name} from the LB pool and the config stack"),
                (true, false) => format!("remove {name} from the LB pool"),
                (false, true) => format!("remove {name}'s kube-vip manifest and drop it from the config stack"),
                (false, false) => format!("remove {name}'s kube-vip manifest"),
            }),
            match crate::operation::iac_command(t, "destroy", &IacStack::Vm { node: name.to_string() }) {
                Some(destroy) => cmd(format!("cd {repo} && {destroy}")),
                None => by_hand(format!("remove {name}'s machine")),
            },
        ],
    }
}

/// R4: the cut-over undone, clients and kubelets back on the first master.
fn cutover_rollback(t: &Topology) -> RollbackProcedure {
    let s = &t.scenario;
    let m0 = t.name(t.existing_master());
    let m0_addr = t.node(t.existing_master()).address;
    let (vip, port) = (s.control_plane_endpoint.vip, s.control_plane_endpoint.port);
    RollbackProcedure {
        id: "R4".to_string(),
        title: "After phase 4 (clients flipped)".to_string(),
        when: format!(
            "a fault after the cut-over, but for RF's case ({m0} down for good while the VIP serves from the new masters); without RF, that one too"
        ),
        recovers: Some(Recovers::PhaseRollback),
        commands: vec![
            by_hand(if t.consumers.iter().any(|c| c.stale_record.is_some()) {
                "revert the phase 4.1 and 4.1.1 commits (the stale DNS records come back for the consumers that name the master by them)"
            } else {
                "revert the phase 4.1 commit (single revert commit)"
            }),
            by_hand(format!("on every node: sudo sed -i 's|server: https://{vip}:{port}|server: https://{m0_addr}:{}|' /etc/kubernetes/kubelet.conf && sudo systemctl restart kubelet", t.apiserver_port())),
            by_hand("controlPlaneEndpoint can stay: harmless on a full rollback"),
        ],
    }
}

/// RF: the first master lost for good while the VIP serves: the plan goes on without it.
fn go_forward(t: &Topology) -> RollbackProcedure {
    let m0 = t.name(t.existing_master());
    RollbackProcedure {
        id: "RF".to_string(),
        title: format!("Go on without {m0} lost for good (added by plan)"),
        when: format!(
            "{m0} is down for good while the VIP serves from the new masters: undoing the phase would point every client back at it (once it is written off, from the cut-over on, hold)"
        ),
        recovers: Some(Recovers::GoForward),
        commands: vec![
            by_hand(format!("etcdctl member remove {m0}; take it out of the load balancer's pool and the config stack")),
            by_hand(format!(
                "point what still names {m0} at the VIP: the consumers' kubeconfigs, the kubelets (before 1.33 the joined masters' too), kube-proxy"
            )),
            by_hand(format!("kubectl delete node {m0}; wipe its disk before it ever boots again")),
            by_hand("plan recover --choose go-forward, then plan execute --resume: the rest of the plan runs without it"),
        ],
    }
}

/// RQ: etcd's quorum recovered from a surviving voter.
fn quorum_recovery(t: &Topology) -> RollbackProcedure {
    let provided = machines_provided(t);
    RollbackProcedure {
        id: "RQ".to_string(),
        title: "Quorum recovery from a surviving voter (added by plan)".to_string(),
        when: "etcd lost quorum and the lost member is not coming back: member remove cannot run".to_string(),
        recovers: Some(Recovers::QuorumRecovery),
        commands: vec![
            by_hand("on the surviving voter: stop etcd, add --force-new-cluster to the etcd manifest, start, then remove the flag"),
            by_hand(if provided {
                "kubeadm reset the lost masters and wipe their machines"
            } else {
                "kubeadm reset the lost masters and destroy their VMs"
            }),
        ],
    }
}

/// RW: the worst case, etcd restored from the newest snapshot.
fn snapshot_restore(t: &Topology) -> RollbackProcedure {
    let s = &t.scenario;
    let m0 = t.name(t.existing_master());
    let provided = machines_provided(t);
    RollbackProcedure {
        id: "RW".to_string(),
        title: "Worst case (etcd corruption / split brain)".to_string(),
        when: "nothing else restores quorum".to_string(),
        recovers: Some(Recovers::SnapshotRestore),
        commands: vec![
            by_hand(format!("etcdctl snapshot restore of the newest snapshot from {} on {m0}", s.etcd_backup.path)),
            by_hand(if provided {
                format!("restore {m0} from its disk image pre-ha-retrofit if needed")
            } else {
                format!("rebuild {m0} from the VM snapshot pre-ha-retrofit if needed")
            }),
            by_hand("back to a single master"),
        ],
    }
}

/// Undoing phase 1's load balancer, in the profile's words.
pub(super) fn lb_rollback(t: &Topology) -> String {
    let s = &t.scenario;
    let (lb, port) = (&s.load_balancer, s.control_plane_endpoint.port);
    match lb.kind {
        LbKind::PfsenseBootstrap => format!("remove apiserver_proxy_{port} + apiserver_nodes from {} and re-run it", lb.bootstrap_script()),
        LbKind::Haproxy => {
            format!("remove the apiserver frontend and backend from {}, install it on {} and reload haproxy", lb.config_file(), lb.name)
        }
        LbKind::Keepalived => format!("on {}: sudo systemctl disable --now keepalived haproxy", t.name(t.existing_master())),
        LbKind::KubeVip => format!("on {}: sudo rm /etc/kubernetes/manifests/kube-vip.yaml", t.name(t.existing_master())),
    }
}
