//! Phases 2, 3, 3b, ...: each new master created, joined, given the flags and pooled.

use super::load_balancer::pool_step;
use super::{first_flag, master_phase, strings, verify, verify_on, Builder, Names, StepSpec};
use super::{WHY_ENDPOINT, WHY_JOINED, WHY_ONE_JOIN, WHY_PREFLIGHT, WHY_SEQUENCE, WHY_STACK, WHY_TEMPLATE};
use crate::action::Check;
use crate::operation::{IacStack, Operation};
use crate::plan::RunsOn;
use crate::topology::{NodeIx, Topology};

/// Phase 2, 3, 3b, ...: the `k`-th new master, created, joined, given the flags and pooled.
pub(super) fn add_master(b: &mut Builder<'_>, k: usize, new_masters: &[NodeIx]) {
    let t = b.t;
    let s = &t.scenario;
    let m = new_masters[k];
    let p = master_phase(k);
    let name = t.name(m).to_string();
    let bump = t.template_version != t.version || s.vm_template.as_ref().is_some_and(|v| v.join_command_for_masters);
    b.phase(
        &p,
        if k == 0 && bump {
            format!("Cloud-init template bump + {name}")
        } else if k == 0 {
            name.clone()
        } else {
            format!("{name}, same pattern as phase 2")
        },
    );
    // The template needs its bump only where it installs another version or joins masters as workers.
    if k == 0 && bump {
        b.add(
            StepSpec::new("2.0", "Bump the cloud-init template (one-time)", RunsOn::InfraRepo)
                .ops(vec![Operation::EditTemplate, Operation::IacApply(IacStack::Template)])
                .checks(strings(["the template is registered under the same name"]))
                .after("0.1", WHY_PREFLIGHT),
        );
    }
    machine_steps(b, &p, m, bump);
    join_steps(b, k, &p, m);
    let hosts: Vec<NodeIx> = std::iter::once(t.existing_master()).chain(new_masters[..=k].iter().copied()).collect();
    joined_steps(b, &p, m, &hosts);
}

/// `P.1` and `P.2`: the master's machine, made from the template or provided, ready to join.
fn machine_steps(b: &mut Builder<'_>, p: &str, m: NodeIx, bump: bool) {
    let t = b.t;
    let s = &t.scenario;
    let name = t.name(m).to_string();
    let user = &s.ssh_user;
    let k8s = format!("{}.{}", t.version.0, t.version.1);
    let login = s.host_name(&name, t.node(m).address);
    let (vm_title, vm_rollback) = match crate::operation::iac_command(t, "destroy", &IacStack::Vm { node: name.clone() }) {
        Some(destroy) => (format!("Add {name} VM to Terraform"), format!("cd {} && {destroy}", s.infra_repo)),
        None => (format!("Provide {name}'s machine"), format!("remove {name}'s machine")),
    };
    let mut vm = StepSpec::new(format!("{p}.1"), vm_title, RunsOn::InfraRepo)
        .ops(vec![Operation::DeclareVm { node: name.clone() }, Operation::IacApply(IacStack::Vm { node: name.clone() })])
        .checks(vec![format!("ssh {user}@{login} uname -a")])
        .rollback(vec![vm_rollback]);
    vm = if bump { vm.after("2.0", WHY_TEMPLATE) } else { vm.after("0.1", WHY_PREFLIGHT) };
    b.add(vm);
    b.add(
        StepSpec::new(format!("{p}.2"), format!("Prep {name} for kubeadm join"), b.node(m))
            .ops(vec![verify(
                t,
                [Check::ReadyToJoin(m)],
                ["kubeadm version; containerd --version".to_string(), format!("getent hosts {login}")],
            )])
            .checks(vec![format!("kubeadm v{k8s}.x, not yet a node")])
            .after(format!("{p}.1"), WHY_SEQUENCE),
    );
}

/// `P.3` to `P.5`: the certs uploaded and a join command made on the first master, then the
/// `k`-th new master joined, one join after another.
fn join_steps(b: &mut Builder<'_>, k: usize, p: &str, m: NodeIx) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    let (m0, port) = (n.m0, n.port);
    let name = t.name(m).to_string();
    let prev = (k > 0).then(|| master_phase(k - 1));
    let title = if k == 0 { "Upload control-plane certs" } else { "Re-upload certs (kubeadm-certs expires 2 h after upload)" };
    let mut upload = StepSpec::new(format!("{p}.3"), title, b.node(m0))
        .ops(vec![Operation::UploadCerts])
        .checks(vec![format!("TTL {} min: the join must follow within it or re-upload", s.kubeadm.certs_ttl_min)])
        .after(format!("{p}.2"), WHY_SEQUENCE)
        .after("0.2", "uploads the certs of the patched ClusterConfiguration");
    if k > 0 {
        upload = upload.note("the upload is unconditional, so kubeadm-certs' TTL restarts at every join");
    }
    b.add(upload);
    b.add(
        StepSpec::new(format!("{p}.4"), "Generate the join command", b.node(m0))
            .ops(vec![Operation::CreateToken])
            .note(format!("the join command names the first master, not {}:{port}: --print-join-command prints the server of admin.conf on {}, its own address; discovery goes there, the rest of the join through controlPlaneEndpoint", n.vip, n.m0_name))
            .after(format!("{p}.3"), WHY_SEQUENCE),
    );
    let mut join = StepSpec::new(format!("{p}.5"), format!("Join {name} as a control-plane node"), b.node(m))
        .ops(vec![Operation::Join { node: name.clone() }])
        .checks(strings(["This node has joined the cluster"]))
        .rollback(vec![format!("on {name}: sudo kubeadm reset --force; from a surviving master: etcdctl member remove <id>")])
        .after(format!("{p}.4"), WHY_SEQUENCE)
        .after("0.2", WHY_ENDPOINT)
        .after("1.3", "the join talks to controlPlaneEndpoint, the VIP")
        .disruption(if t.learner_mode {
            "none: the member joins as a learner".to_string()
        } else {
            "etcd without quorum from member add until the new member starts".to_string()
        });
    if let Some(prev) = &prev {
        join = join.after(format!("{prev}.5"), WHY_ONE_JOIN);
    }
    b.add(join);
}

/// `P.6` to `P.8`, once the master joined: the config stack's flags on it, a smoke test, and
/// the master in the load balancer's pool (`hosts`: the masters so far).
fn joined_steps(b: &mut Builder<'_>, p: &str, m: NodeIx, hosts: &[NodeIx]) {
    let t = b.t;
    let s = &t.scenario;
    let n = Names::new(t);
    let name = t.name(m).to_string();
    if let Some(stack) = &s.config_stack {
        b.add(
            StepSpec::new(format!("{p}.6"), format!("Update the {} stack to include {name}", stack.name), RunsOn::InfraRepo)
                .ops(vec![
                    Operation::ConfigStackHosts { hosts: n.names(hosts) },
                    Operation::IacApply(IacStack::ConfigStack),
                    verify_on(
                        t,
                        &name,
                        [Check::FlagsOn(m)],
                        [format!("sudo grep -c {} /etc/kubernetes/manifests/kube-apiserver.yaml", first_flag(t))],
                    ),
                ])
                .checks(strings(["expect 1"]))
                .after(format!("{p}.5"), WHY_JOINED)
                .after("1.5.2", WHY_STACK)
                .disruption(format!("kube-apiserver on {name} restarts with the new flags")),
        );
    }
    b.add(smoke_step(t, p, m, &n, hosts.len()));
    b.add(pool_step(t, p, &name, &n.names(hosts)));
}

/// `P.7`: the new master Ready, its static pods running, etcd's members all voting, its
/// apiserver answering directly (`members`: etcd's members by then).
fn smoke_step(t: &Topology, p: &str, m: NodeIx, n: &Names<'_>, members: usize) -> StepSpec<'static> {
    let name = t.name(m);
    let etcdctl = format!("{} member list", crate::operation::ETCDCTL_LOCAL);
    StepSpec::new(format!("{p}.7"), "Smoke", RunsOn::Workstation)
        .ops(vec![
            verify(
                t,
                [Check::NodeReady(m), Check::EtcdMembersVoting, Check::ApiserverReady(m)],
                [
                    "kubectl get nodes".to_string(),
                    format!("kubectl -n kube-system get pods -o wide | grep {name}"),
                    format!("kubectl --server=https://{}:{} get nodes", t.node(m).address, t.apiserver_port()),
                ],
            ),
            verify_on(t, &n.m0_name, [], [etcdctl]),
        ])
        .checks(vec![format!("{name} Ready control-plane, 4 static pods Running, {members} etcd members, direct probe works")])
        .after(format!("{p}.5"), WHY_JOINED)
}
