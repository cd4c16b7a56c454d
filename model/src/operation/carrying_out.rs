//! The plan's own operations that carry out a recovery's actions, so that what the executor runs
//! for a recovery is rendered where the plan's steps are rendered, and is what the twin applies.
//!
//! A recovery is chosen as model actions ([`crate::action::Action`]); where an operation of the
//! plan does the same work (declaring the load balancer's pool, deploying it, listing the config
//! stack's hosts), the action is carried out by that operation with the list the action leaves,
//! and rendered by [`Operation::render`] like any step's.

use super::Operation;
use crate::action::Action;
use crate::cluster::Cluster;
use crate::scenario::LbKind;
use crate::topology::{NodeSet, Topology};

impl Operation {
    /// The operation that carries out the recovery's `action` in the state `before` it, where one
    /// does; `None`: the action has no operation of its own (a member removal, a Node object
    /// deleted) and is rendered, or left to the operator, as a recovery's.
    ///
    /// Its effects leave what the action leaves, with one difference: taking a host out of the
    /// config stack declares the shorter list ([`Operation::ConfigStackHosts`]); the model's
    /// action also drops the host from the applied list, which needs no command (the stack's next
    /// apply destroys that host's resource without running anything on it). A scenario without
    /// a config stack has nothing to edit: the executor renders no command for that action.
    pub fn carrying_out(t: &Topology, before: &Cluster, action: Action) -> Option<Operation> {
        let names = |set: NodeSet| set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>();
        let vip = &t.scenario.control_plane_endpoint;
        match action {
            Action::RemoveLbBackend(x) => Some(Operation::DeclareLbPool { pool: names(before.lb_declared.pool.without(x)) }),
            // keepalived's HAProxy runs on the masters: the plan deploys it on each (the ones up).
            Action::DeployLb if t.scenario.load_balancer.kind == LbKind::Keepalived => {
                let on = before.lb_declared.pool.and(before.up);
                (!on.is_empty()).then(|| Operation::DeployLbOn { nodes: names(on) })
            }
            Action::DeployLb => Some(Operation::DeployLb),
            // Only a stack that lists its hosts, and keeps one: a single-host stack's edit is the
            // operator's (which master it points at next).
            Action::ConfigStackRemoveHost(x) => {
                let left = before.stack_hosts_declared.without(x);
                let listed = t.scenario.config_stack.is_some() && before.stack_list_declared && !left.is_empty();
                listed.then(|| Operation::ConfigStackHosts { hosts: names(left) })
            }
            // A go-forward that writes the first master off moves what still names it to the
            // VIP, as the cut-over's own operations do.
            Action::FlipConsumersOf(mask) => {
                let consumers = t.consumers.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| c.name.clone());
                Some(Operation::KubeconfigConsumers { consumers: consumers.collect(), server: vip.vip_url() })
            }
            Action::FlipKubelet(x) => {
                Some(Operation::KubeletServer { nodes: vec![t.name(x).to_string()], server: vip.vip_url(), wait_ready: false })
            }
            Action::PointKubeProxyAtVip => Some(Operation::KubeProxyServer { server: vip.vip_url() }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::apply;
    use crate::validate::parse_scenario;

    /// On the homelab after its cut-over, and on five masters with other names: each action with
    /// an operation of its own leaves, through the operation's effects, the declared pool, the
    /// running pool and the declared stack hosts the action leaves.
    #[test]
    fn a_recoverys_pool_deploy_and_stack_edits_are_the_plans_operations_with_the_same_effects() {
        for text in [include_str!("../../../scenarios/homelab.yaml"), include_str!("../../../scenarios/five-masters.yaml")] {
            let t = Topology::new(&parse_scenario(text).expect("scenario"));
            let plan = crate::planner::generate(&t);
            let mut c = Cluster::initial(&t);
            for a in plan.steps.iter().take_while(|s| !s.id.starts_with("5.")).flat_map(|s| s.actions.iter()) {
                c = apply(&c, &t, *a).unwrap_or(c);
            }
            let gone = t.existing_master();
            assert!(c.lb_declared.pool.contains(gone) && c.lb_declared.pool.len() > 1, "{}: a pool to take it out of", t.scenario.name);
            for action in [Action::RemoveLbBackend(gone), Action::ConfigStackRemoveHost(gone)] {
                let op = Operation::carrying_out(&t, &c, action).expect("an operation");
                let by_action = apply(&c, &t, action).expect("the action applies");
                let mut by_op = c;
                for effect in op.effect(&t).expect("the operation names this cluster's masters") {
                    by_op = apply(&by_op, &t, effect).expect("its effects apply");
                }
                assert_eq!(by_op.lb_declared, by_action.lb_declared, "{action:?}");
                assert_eq!(by_op.stack_hosts_declared, by_action.stack_hosts_declared, "{action:?}");
                let still_listed = match action {
                    Action::RemoveLbBackend(_) => by_op.lb_declared.pool.contains(gone),
                    _ => by_op.stack_hosts_declared.contains(gone),
                };
                assert!(!still_listed, "{action:?} takes the master out");
                assert!(!op.render(&t).is_empty(), "{action:?} renders commands on {}", t.scenario.name);
            }
            let removed = apply(&c, &t, Action::RemoveLbBackend(gone)).expect("removed");
            let deploy = Operation::carrying_out(&t, &removed, Action::DeployLb).expect("the deploy");
            assert_eq!(deploy.effect(&t).expect("effects"), vec![Action::DeployLb]);
            assert_eq!(Operation::carrying_out(&t, &c, Action::EtcdMemberRemove(gone)), None);
            assert_eq!(Operation::carrying_out(&t, &c, Action::WriteOff(gone)), None);
        }
    }

    /// The moves to the VIP a go-forward makes when it writes off the first master are the
    /// cut-over's own operations, with the effects of the actions they carry out: on three
    /// hypervisors (1.31) after phase 3, where every kubelet and consumer still names it.
    #[test]
    fn the_moves_to_the_vip_are_the_cut_overs_operations_with_the_same_effects() {
        let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/three-hypervisors.yaml")).expect("scenario"));
        let plan = crate::planner::generate(&t);
        let mut c = Cluster::initial(&t);
        for a in plan.steps.iter().take_while(|s| !s.id.starts_with("4.")).flat_map(|s| s.actions.iter()) {
            c = apply(&c, &t, *a).unwrap_or(c);
        }
        let beta = t.resolve("cp-beta").expect("cp-beta");
        let moves = [Action::FlipConsumersOf(0b101), Action::FlipKubelet(beta), Action::PointKubeProxyAtVip];
        for action in moves {
            let op = Operation::carrying_out(&t, &c, action).expect("an operation");
            assert_eq!(op.effect(&t).expect("its effects"), vec![action], "{op:?}");
            assert!(!op.render(&t).is_empty(), "{action:?} renders commands");
        }
    }

    /// Each profile's deploy is the plan's own: keepalived's HAProxy on the masters in the pool
    /// that are up; a scenario without a config stack gets no stack edit, nor a stack that does
    /// not list its hosts yet.
    #[test]
    fn the_deploy_follows_the_profile_and_no_stack_edit_is_made_without_a_listed_stack() {
        let topology = |text: &str| Topology::new(&parse_scenario(text).expect("scenario"));
        let keepalived = topology(include_str!("../../../scenarios/keepalived-five.yaml"));
        let mut c = Cluster::initial(&keepalived);
        let masters = keepalived.target_masters();
        c.lb_declared.pool = masters;
        c.up = c.up.or(masters);
        let down = masters.iter().nth(1).expect("a second master");
        c.up = c.up.without(down);
        let Some(Operation::DeployLbOn { nodes }) = Operation::carrying_out(&keepalived, &c, Action::DeployLb) else {
            panic!("keepalived deploys on the masters")
        };
        let expected: Vec<String> = masters.without(down).iter().map(|n| keepalived.name(n).to_string()).collect();
        assert_eq!(nodes, expected, "the masters in the pool that are up");
        let linux = topology(include_str!("../../../scenarios/haproxy-libvirt.yaml"));
        assert!(linux.scenario.config_stack.is_none(), "the Linux profile's scenario has no config stack");
        let c = Cluster::initial(&linux);
        assert_eq!(Operation::carrying_out(&linux, &c, Action::ConfigStackRemoveHost(linux.existing_master())), None);
        assert_eq!(Operation::carrying_out(&linux, &c, Action::DeployLb), Some(Operation::DeployLb));
        let homelab = topology(include_str!("../../../scenarios/homelab.yaml"));
        let single = Cluster::initial(&homelab);
        assert!(!single.stack_list_declared, "the homelab's stack takes one host before 1.5.1");
        assert_eq!(Operation::carrying_out(&homelab, &single, Action::ConfigStackRemoveHost(homelab.existing_master())), None);
    }
}
