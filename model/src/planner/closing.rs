//! The phases after the cut-over that follow the scenario's own parts: the reboot gate learns
//! quorum (5), the version-upgrade chain learns every master (7), each only where the scenario
//! declares it, and the close-out (8).

use super::{verify, Builder, Names, StepSpec, WHY_ALL_MASTERS, WHY_SEQUENCE};
use crate::action::Check;
use crate::operation::{IacStack, Operation};
use crate::plan::RunsOn;

/// Phase 5: the reboot gate learns quorum (only for a scenario that declares one).
pub(super) fn reboot_gate(b: &mut Builder<'_>, gate: &crate::scenario::RebootGateSpec, last: &str) {
    let t = b.t;
    let n = Names::new(t);
    let (quorum, masters_target) = (n.quorum, t.target_masters().len());
    b.phase("5", format!("{} quorum check", gate.name));
    b.add(
        StepSpec::new("5.1", "Add the control-plane quorum check to the reboot gate", RunsOn::InfraRepo)
            .ops(vec![Operation::RebootGateRule { block_at_or_below: quorum }])
            .after(format!("{last}.7"), WHY_ALL_MASTERS)
            .note(format!(
                "a master's reboot must leave etcd quorum ({quorum} of {masters_target}) Ready, so the gate blocks at {quorum} Ready or fewer; a gate that blocks only below 2 Ready lets a second master reboot while one is down"
            )),
    );
    b.add(
        StepSpec::new("5.2", format!("Apply {}", gate.name), RunsOn::InfraRepo)
            .ops(vec![Operation::IacApply(IacStack::RebootGate)])
            .after("5.1", WHY_SEQUENCE),
    );
    let cordoned = t.new_masters().next().map(|m| t.name(m).to_string()).unwrap_or_else(|| n.m0_name.clone());
    b.add(
        StepSpec::new("5.3", "Verify the gate", RunsOn::Workstation)
            .ops(vec![verify(
                t,
                [Check::GateQuorumAware],
                [
                    format!("kubectl -n {} logs ds/{} | tail -50", gate.namespace, gate.name),
                    format!("kubectl cordon {cordoned} && sleep 300 && kubectl uncordon {cordoned}"),
                ],
            )])
            .checks(vec![format!("'Control-plane quorum safe ({masters_target} Ready)'; blocked while {cordoned} is cordoned")])
            .after("5.2", WHY_SEQUENCE),
    );
}

pub(super) fn upgrade_chain_and_close(b: &mut Builder<'_>, last: &str) {
    let t = b.t;
    let masters_target = t.target_masters().len();
    if t.scenario.upgrade_chain.is_some() {
        upgrade_chain(b, last);
    }
    b.phase("8", "Close out".to_string());
    let mut criteria = vec![format!("{masters_target} masters online, etcd quorum healthy, LB working")];
    if t.scenario.upgrade_chain.is_some() {
        criteria.push("upgrade chain across all masters".to_string());
    }
    if t.scenario.reboot_gate.is_some() {
        criteria.push("reboot gate respects quorum".to_string());
    }
    criteria.push("etcd backup from any master".to_string());
    let mut close_out = StepSpec::new("8.1", "Close out once every acceptance criterion is met", RunsOn::InfraRepo)
        .ops(
            t.scenario
                .tracking_issue
                .is_some()
                .then_some(Operation::CloseIssue)
                .into_iter()
                .chain([verify(t, [Check::Acceptance], [])])
                .collect(),
        )
        .checks(vec![criteria.join("; ")]);
    for id in ["4.5.3", "5.3", "6.1", "6.2", "7.4"] {
        if b.steps.iter().any(|s| s.id == id) {
            close_out = close_out.after(id, "an acceptance criterion");
        }
    }
    b.add(close_out);
}

/// Phase 7: the version-upgrade chain learns every master (only for a scenario that declares one).
fn upgrade_chain(b: &mut Builder<'_>, last: &str) {
    let t = b.t;
    let n = Names::new(t);
    let masters_target = t.target_masters().len();
    b.phase("7", "Extend the upgrade chain to multi-master".to_string());
    b.add(
        StepSpec::new("7.1", "Discover masters and loop with a quorum check", RunsOn::InfraRepo)
            .ops(vec![Operation::UpgradeChainLoop { require_ready_above: n.quorum }])
            .after(format!("{last}.7"), WHY_ALL_MASTERS),
    );
    b.add(
        StepSpec::new("7.2", "Un-pin preflight and the master phase", RunsOn::InfraRepo)
            .ops(vec![Operation::UpgradeChainAnyMaster])
            .after("7.1", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.3", "Apply the upgrade chain", RunsOn::InfraRepo)
            .ops(vec![Operation::IacApply(IacStack::UpgradeChain)])
            .after("7.2", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.4", "Dry-run the chain", RunsOn::Workstation)
            .ops(vec![verify(
                t,
                [Check::ChainCoversMasters],
                ["kubectl -n k8s-upgrade create job --from=cronjob/k8s-version-check ha-validation-$(date +%s)".to_string()],
            )])
            .checks(vec![format!("logs show {masters_target} masters discovered in order")])
            .after("7.3", WHY_SEQUENCE),
    );
    b.add(
        StepSpec::new("7.5", "Real test on the next patch release", RunsOn::Workstation)
            .checks(vec![format!("drain -> upgrade -> uncordon across all {masters_target} masters without manual intervention")])
            .after("7.4", WHY_SEQUENCE)
            .note("not run by plan: it waits for the next patch release"),
    );
}
