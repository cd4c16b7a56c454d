//! What changed between two states, and which observations flipped, in words an operator reads.

use crate::cluster::Cluster;
use crate::observe;
use crate::topology::{NodeSet, Topology};

fn names(t: &Topology, set: NodeSet) -> String {
    set.iter().map(|n| t.name(n)).collect::<Vec<_>>().join(", ")
}

fn set_change(out: &mut Vec<String>, t: &Topology, what: &str, before: NodeSet, after: NodeSet) {
    let added = after.minus(before);
    let removed = before.minus(after);
    if !added.is_empty() {
        out.push(format!("{what} += {}", names(t, added)));
    }
    if !removed.is_empty() {
        out.push(format!("{what} -= {}", names(t, removed)));
    }
}

fn flag_change(out: &mut Vec<String>, what: &str, before: bool, after: bool) {
    if before != after {
        out.push(format!("{what}: {before} -> {after}"));
    }
}

/// The fields that differ between `a` and `b` (the clock aside).
pub fn state_diff(a: &Cluster, b: &Cluster, t: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    set_change(&mut out, t, "VMs", a.vm_exists, b.vm_exists);
    set_change(&mut out, t, "VMs declared", a.vm_declared, b.vm_declared);
    set_change(&mut out, t, "up", a.up, b.up);
    set_change(&mut out, t, "failed for good", a.broken, b.broken);
    set_change(&mut out, t, "etcd voters", a.voters, b.voters);
    set_change(&mut out, t, "etcd learners", a.learners, b.learners);
    set_change(&mut out, t, "etcd started", a.etcd_started, b.etcd_started);
    set_change(&mut out, t, "partitioned", a.partitioned, b.partitioned);
    set_change(&mut out, t, "apiserver cert on disk", a.cert_present, b.cert_present);
    set_change(&mut out, t, "cert with VIP SAN on disk", a.cert_vip, b.cert_vip);
    set_change(&mut out, t, "serving VIP SAN", a.served_vip, b.served_vip);
    set_change(&mut out, t, "control plane", a.control_plane, b.control_plane);
    set_change(&mut out, t, "apiserver running", a.apiserver_running, b.apiserver_running);
    set_change(&mut out, t, "apiserver flags", a.apiserver_flags, b.apiserver_flags);
    set_change(&mut out, t, "registered nodes", a.joined, b.joined);
    set_change(&mut out, t, "joined as worker", a.joined_as_worker, b.joined_as_worker);
    set_change(&mut out, t, "kubelet.conf on VIP", a.kubelet_vip, b.kubelet_vip);
    set_change(&mut out, t, "LB pool (declared)", a.lb_declared.pool, b.lb_declared.pool);
    set_change(&mut out, t, "LB pool (running)", a.lb_running.pool, b.lb_running.pool);
    set_change(&mut out, t, "config stack hosts", a.stack_hosts, b.stack_hosts);
    flag_change(&mut out, "VM snapshot", a.vm_snapshot, b.vm_snapshot);
    flag_change(&mut out, "kubeadm-config controlPlaneEndpoint", a.kubeadm_endpoint, b.kubeadm_endpoint);
    flag_change(&mut out, "cert backup", a.cert_backup, b.cert_backup);
    flag_change(&mut out, "LB up", a.lb_up, b.lb_up);
    flag_change(&mut out, "VIP alias", a.vip_alias, b.vip_alias);
    flag_change(&mut out, "LB frontend (declared)", a.lb_declared.frontend, b.lb_declared.frontend);
    flag_change(&mut out, "LB frontend (running)", a.lb_running.frontend, b.lb_running.frontend);
    flag_change(&mut out, "DNS FQDN -> VIP", a.dns_vip, b.dns_vip);
    flag_change(&mut out, "DNS VIP record declared", a.dns_vip_declared, b.dns_vip_declared);
    flag_change(&mut out, "stale DNS record's deletion declared", a.dns_stale_deletion_declared, b.dns_stale_deletion_declared);
    flag_change(&mut out, "template bump declared", a.template_declared, b.template_declared);
    flag_change(&mut out, "stale DNS record", a.dns_stale, b.dns_stale);
    flag_change(&mut out, "template ok", a.template_version_ok && a.template_master_safe, b.template_version_ok && b.template_master_safe);
    flag_change(&mut out, "config stack loops over masters", a.stack_list, b.stack_list);
    flag_change(&mut out, "etcd CronJobs on any master", a.cronjobs_any_master, b.cronjobs_any_master);
    flag_change(&mut out, "reboot gate checks quorum", a.gate_quorum, b.gate_quorum);
    flag_change(&mut out, "upgrade chain covers masters", a.chain_all_masters, b.chain_all_masters);
    flag_change(&mut out, "repo: config stack loops over masters", a.stack_list_declared, b.stack_list_declared);
    flag_change(&mut out, "repo: etcd CronJobs on any master", a.cronjobs_declared_any_master, b.cronjobs_declared_any_master);
    flag_change(&mut out, "repo: reboot gate checks quorum", a.gate_declared_quorum, b.gate_declared_quorum);
    flag_change(&mut out, "repo: upgrade chain loops over masters", a.chain_loop_declared, b.chain_loop_declared);
    flag_change(&mut out, "repo: upgrade chain takes any master", a.chain_any_master_declared, b.chain_any_master_declared);
    if a.consumers_vip != b.consumers_vip {
        out.push(format!("consumers on VIP: {} -> {}", a.consumers_vip.count_ones(), b.consumers_vip.count_ones()));
    }
    if a.certs_uploaded_s != b.certs_uploaded_s {
        out.push("control-plane certs uploaded".to_string());
    }
    match (a.token_s, b.token_s) {
        (_, None) if a.token_s.is_some() => out.push("join token deleted".to_string()),
        (before, Some(_)) if before != b.token_s => out.push("join token created".to_string()),
        _ => {}
    }
    if a.hypervisors_down != b.hypervisors_down {
        out.push(format!("hypervisors down: {} -> {}", a.hypervisors_down.count_ones(), b.hypervisors_down.count_ones()));
    }
    if a.etcd_data != b.etcd_data {
        out.push(format!("etcd data: {:?} -> {:?}", a.etcd_data, b.etcd_data));
    }
    out
}

/// Every derived observation of a state, keyed by a stable name.
pub fn observations(c: &Cluster, t: &Topology) -> Vec<(String, String)> {
    let mut out = vec![("etcd quorum".to_string(), observe::quorum(c).to_string())];
    for n in c.control_plane.iter() {
        let ready = match observe::apiserver_ready(c, n) {
            Ok(()) => "ready".to_string(),
            Err(why) => format!("not ready: {why}"),
        };
        out.push((format!("apiserver {}", t.name(n)), ready));
    }
    let healthy = observe::healthy_backends(c, t);
    if !c.lb_running.pool.is_empty() {
        out.push(("VIP backends".to_string(), format!("{}/{} healthy", healthy.len(), c.lb_running.pool.len())));
    }
    for (i, consumer) in t.consumers.iter().enumerate() {
        out.push((format!("consumer {}", consumer.name), observe::consumer_reach(c, t, i).to_string()));
    }
    for n in c.joined.iter() {
        out.push((format!("node {}", t.name(n)), observe::node_ready(c, t, n).to_string()));
    }
    out.push((
        "backup job".to_string(),
        match observe::backup_runs(c, t) {
            Ok(n) => format!("runs on {}", t.name(n)),
            Err(why) => why,
        },
    ));
    out
}

/// Observations whose value differs, as `name: before -> after`. Consumers and nodes that flip
/// the same way are folded into one line.
pub fn flipped(a: &Cluster, b: &Cluster, t: &Topology) -> Vec<String> {
    let before = observations(a, t);
    let after = observations(b, t);
    let mut lines: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut push = |name: &str, change: String| {
        let (group, member) = match name.split_once(' ') {
            Some((g @ ("consumer" | "node"), m)) => (g.to_string(), m.to_string()),
            _ => (name.to_string(), String::new()),
        };
        match lines.iter_mut().find(|(g, members, c)| *g == group && *c == change && !members.is_empty() && !member.is_empty()) {
            Some((_, members, _)) => members.push(member),
            None => lines.push((group, if member.is_empty() { vec![] } else { vec![member] }, change)),
        }
    };
    for (name, value) in &after {
        match before.iter().find(|(n, _)| n == name) {
            Some((_, old)) if old == value => {}
            Some((_, old)) => push(name, format!("{old} -> {value}")),
            None => push(name, value.clone()),
        }
    }
    for (name, old) in &before {
        if !after.iter().any(|(n, _)| n == name) {
            push(name, format!("{old} -> gone"));
        }
    }
    lines
        .into_iter()
        .map(|(group, members, change)| match members.len() {
            0 => format!("{group}: {change}"),
            1 => format!("{group} {}: {change}", members[0]),
            n => format!("{group}s {} ({n}): {change}", members.join(", ")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{apply, Action};
    use crate::validate::parse_scenario;

    /// The token's change is worded by what happened to it: `kubeadm token delete` (4.6) is not
    /// reported as a token created.
    #[test]
    fn the_join_token_is_said_created_then_deleted() {
        let t = Topology::new(&parse_scenario(include_str!("../../scenarios/five-masters.yaml")).expect("a valid scenario"));
        let start = Cluster::initial(&t);
        let created = apply(&start, &t, Action::CreateToken).expect("a token is made");
        let deleted = apply(&created, &t, Action::RevokeJoinTokens).expect("the tokens are deleted");
        let said = |a, b| state_diff(a, b, &t).into_iter().filter(|l| l.contains("join token")).collect::<Vec<_>>();
        assert_eq!(said(&start, &created), ["join token created"]);
        assert_eq!(said(&created, &deleted), ["join token deleted"]);
    }
}
