//! Phase 1 and each new master's pool step: the VIP served by the scenario's load balancer
//! profile (a machine of its own, or a daemon on the masters).

use super::{consumers_on_stale_records, strings, verify, verify_on, Builder, Names, StepSpec};
use super::{WHY_PREFLIGHT, WHY_SEQUENCE, WHY_SMOKE_BEFORE_POOL, WHY_VIP_TLS};
use crate::action::Check;
use crate::operation::{IacStack, Operation};
use crate::plan::RunsOn;
use crate::scenario::{DnsVia, LbKind};
use crate::topology::Topology;

/// Phase 1: the VIP reserved (and named in DNS), served by the load balancer profile, and
/// smoke-tested.
pub(super) fn load_balancer(b: &mut Builder<'_>) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    let lb = &s.load_balancer;
    // Where the VIP is served: the load balancer machine, or the first master.
    let serves = if lb.kind.on_masters() { b.node(n.m0) } else { RunsOn::LoadBalancer(lb.name.clone()) };
    b.phase(
        "1",
        match lb.kind {
            LbKind::PfsenseBootstrap | LbKind::Haproxy => format!("{} HAProxy + DNS", lb.name),
            LbKind::Keepalived => "keepalived + HAProxy on the masters + DNS".to_string(),
            LbKind::KubeVip => "kube-vip on the masters + DNS".to_string(),
        }
        .replace(" + DNS", if s.dns.via == DnsVia::None { "" } else { " + DNS" }),
    );
    b.add(reserve_vip_step(t, serves.clone()));
    if lb.kind.has_pool() {
        b.add(
            StepSpec::new(
                "1.2",
                match t.health_check {
                    crate::scenario::HealthCheck::HttpsReadyz => "Declare the apiserver pool with an HTTPS /readyz health check",
                    crate::scenario::HealthCheck::Tcp => "Declare the apiserver pool with a TCP health check",
                },
                RunsOn::InfraRepo,
            )
            .ops(vec![Operation::DeclareLbFrontend { pool: vec![n.m0_name.clone()] }])
            .after("1.1", "the frontend binds the reserved VIP"),
        );
    }
    b.add(deploy_step(t, &n, serves));
    b.add(vip_smoke_step(t, &n));
}

/// 1.1: the VIP reserved, and where the scenario has DNS, its record declared and applied.
fn reserve_vip_step(t: &Topology, serves: RunsOn) -> StepSpec<'static> {
    let s = &t.scenario;
    let (vip, fqdn) = (s.control_plane_endpoint.vip, &s.control_plane_endpoint.fqdn);
    let mut reserve = vec![Operation::ReserveVip];
    match s.dns.via {
        DnsVia::None => {}
        _ => {
            reserve.push(Operation::DeclareDnsRecords { vip: true, delete_stale: !consumers_on_stale_records(t) });
            reserve.push(Operation::IacApply(IacStack::Dns));
        }
    }
    let checks = if s.dns.via == DnsVia::None { vec![] } else { vec![format!("getent hosts {fqdn} -> {vip}")] };
    StepSpec::new("1.1", if s.dns.via == DnsVia::None { format!("Reserve VIP {vip}") } else { format!("Reserve VIP {vip} + DNS") }, serves)
        .ops(reserve)
        .checks(checks)
        .rollback(vec![if s.dns.via == DnsVia::None {
            "release the VIP".to_string()
        } else {
            "release the VIP; revert the DNS records".to_string()
        }])
        .after("0.1", WHY_PREFLIGHT)
}

/// 1.3: the load balancer deployed, or the VIP's daemons started on the first master, and the
/// VIP (and the backends, where there is a pool) seen serving.
fn deploy_step(t: &Topology, n: &Names<'_>, serves: RunsOn) -> StepSpec<'static> {
    let lb = &t.scenario.load_balancer;
    let mut deploy = Vec::new();
    match lb.kind {
        LbKind::PfsenseBootstrap | LbKind::Haproxy => deploy.push(Operation::DeployLb),
        LbKind::Keepalived => {
            deploy.push(Operation::StartVipDaemon { node: n.m0_name.clone() });
            deploy.push(Operation::DeployLbOn { nodes: vec![n.m0_name.clone()] });
        }
        LbKind::KubeVip => deploy.push(Operation::StartVipDaemon { node: n.m0_name.clone() }),
    }
    let (listen_at, listen) = crate::operation::vip_listening(t);
    deploy.push(verify_on(t, &listen_at, [Check::VipListening], [listen]));
    let mut checks = strings(["the VIP answers"]);
    if let Some((at, state)) = crate::operation::backends_state(t) {
        deploy.push(verify_on(t, &at, [Check::BackendsUp], [state]));
        checks.push("backend UP (op_state=2)".to_string());
    }
    let what = match lb.kind {
        LbKind::PfsenseBootstrap | LbKind::Haproxy => "Deploy + validate the LB",
        LbKind::Keepalived => "Start keepalived + HAProxy on the first master",
        LbKind::KubeVip => "Start kube-vip on the first master",
    };
    let mut step = StepSpec::new("1.3", what, serves)
        .ops(deploy)
        .checks(checks)
        .rollback(vec![super::rollbacks::lb_rollback(t)])
        .after(if lb.kind.has_pool() { "1.2" } else { "1.1" }, WHY_SEQUENCE)
        .disruption(lb_disruption(t));
    if lb.kind.on_masters() {
        step = step.note(format!(
            "{} moves the VIP to another master within ~{} s when its holder dies: the separate load balancer's single point of failure is gone",
            lb.kind.as_str(),
            lb.failover_s()
        ));
    }
    step
}

/// 1.4: the API answers through the VIP, TLS verified.
fn vip_smoke_step(t: &Topology, n: &Names<'_>) -> StepSpec<'static> {
    let (vip, port) = (n.vip, n.port);
    StepSpec::new("1.4", "Smoke through the VIP", RunsOn::Workstation)
        .ops(vec![verify(
            t,
            [Check::ViaVip],
            [
                format!("curl --cacert /etc/kubernetes/pki/ca.crt https://{vip}:{port}/readyz"),
                format!("kubectl --server=https://{vip}:{port} get nodes"),
            ],
        )])
        .checks(strings([
            "readyz answers ok; if TLS fails: STOP, phase 0 did not put the VIP in the cert: roll back phase 1, redo phase 0",
        ]))
        .after("1.3", WHY_SEQUENCE)
        .after("0.4", WHY_VIP_TLS)
}

fn lb_disruption(t: &Topology) -> String {
    let lb = &t.scenario.load_balancer;
    if lb.deploy_bounces() {
        format!("every {} frontend bounces (reset to declared state, ~{} s)", lb.name, lb.reset_window_s)
    } else {
        "none".to_string()
    }
}

/// Step `P.8`: the new master behind the VIP, in the load balancer profile's way.
pub(super) fn pool_step(t: &Topology, p: &str, name: &str, hosts: &[String]) -> StepSpec<'static> {
    let lb = &t.scenario.load_balancer;
    let (title, at, ops, rollback) = match lb.kind {
        LbKind::PfsenseBootstrap => (
            format!("Add {name} to the LB pool"),
            RunsOn::LoadBalancer(lb.name.clone()),
            vec![Operation::DeclareLbPool { pool: hosts.to_vec() }, Operation::DeployLb],
            format!("remove {name} from the pool and re-run the bootstrap script"),
        ),
        LbKind::Haproxy => (
            format!("Add {name} to the LB pool"),
            RunsOn::LoadBalancer(lb.name.clone()),
            vec![Operation::DeclareLbPool { pool: hosts.to_vec() }, Operation::DeployLb],
            format!("remove {name}'s server line from {} and install it again", lb.config_file()),
        ),
        LbKind::Keepalived => (
            format!("Start keepalived + HAProxy on {name}, add it to every master's pool"),
            RunsOn::Node(name.to_string()),
            vec![
                Operation::StartVipDaemon { node: name.to_string() },
                Operation::DeclareLbPool { pool: hosts.to_vec() },
                Operation::DeployLbOn { nodes: hosts.to_vec() },
            ],
            format!("on {name}: sudo systemctl disable --now keepalived haproxy; remove its server line and install the config again"),
        ),
        LbKind::KubeVip => (
            format!("Start kube-vip on {name} (after its join)"),
            RunsOn::Node(name.to_string()),
            vec![Operation::StartVipDaemon { node: name.to_string() }],
            format!("on {name}: sudo rm /etc/kubernetes/manifests/kube-vip.yaml"),
        ),
    };
    let mut ops = ops;
    let checks = if lb.kind.has_pool() {
        ops.push(verify(t, [Check::BackendsUp], []));
        vec![format!("all {} backends UP", hosts.len())]
    } else {
        vec![format!("{name} takes part in kube-vip's leader election")]
    };
    let mut step = StepSpec::new(format!("{p}.8"), title, at)
        .ops(ops)
        .checks(checks)
        .rollback(vec![rollback])
        .after(format!("{p}.7"), WHY_SMOKE_BEFORE_POOL)
        .after("1.3", "the VIP is served")
        .disruption(lb_disruption(t));
    if lb.kind == LbKind::KubeVip {
        step = step.note("the manifest goes in after the join: kubeadm join's preflight refuses a non-empty /etc/kubernetes/manifests (DirAvailable), and kube-vip talks to the node's own apiserver");
    }
    step
}
