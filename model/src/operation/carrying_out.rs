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
use crate::topology::{NodeSet, Topology};

impl Operation {
    /// The operation that carries out the recovery's `action` in the state `before` it, where one
    /// does; `None`: the action has no operation of its own (a member removal, a Node object
    /// deleted) and is rendered, or left to the operator, as a recovery's.
    ///
    /// Its effects leave what the action leaves, with one difference: taking a host out of the
    /// config stack declares the shorter list ([`Operation::ConfigStackHosts`]); the model's
    /// action also drops the host from the applied list, which needs no command (the stack's next
    /// apply destroys that host's resource without running anything on it).
    pub fn carrying_out(t: &Topology, before: &Cluster, action: Action) -> Option<Operation> {
        let names = |set: NodeSet| set.iter().map(|n| t.name(n).to_string()).collect::<Vec<_>>();
        match action {
            Action::RemoveLbBackend(x) => Some(Operation::DeclareLbPool { pool: names(before.lb_declared.pool.without(x)) }),
            Action::DeployLb => Some(Operation::DeployLb),
            Action::ConfigStackRemoveHost(x) => Some(Operation::ConfigStackHosts { hosts: names(before.stack_hosts_declared.without(x)) }),
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
}
