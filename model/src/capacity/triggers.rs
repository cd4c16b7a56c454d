//! The source plan's revisit triggers, checked against the inventory: which are met now, and the evidence.
//!
//! The operator deferred the migration because the only hypervisor had no RAM for three 32 GB
//! masters, and wrote down what would make it worth revisiting. Each trigger is judged from the
//! same figures as the rest of the report, so editing the inventory (a second host, smaller
//! masters, freed RAM) changes the answer.

use super::exposure::ExposureReport;
use super::sizing::SizingAdvice;
use super::{gb, HypervisorCapacity, RamVerdict};
use crate::topology::Topology;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A second hypervisor holds masters: hardware HA becomes possible.
    SecondHypervisor,
    /// Masters no bigger than the measured use calls for.
    RightSizedMasters,
    /// The plan's peak fits every hypervisor it adds masters to.
    RamFreed,
    /// Time spent nursing upgrades by hand: not an inventory fact.
    UpgradeNursing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerState {
    Met,
    NotMet,
    /// The inventory does not say.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerStatus {
    pub trigger: Trigger,
    /// The trigger as the source plan words it.
    pub source: String,
    pub state: TriggerState,
    pub evidence: String,
}

fn second_hypervisor(t: &Topology, exposure: &ExposureReport) -> (TriggerState, String) {
    let masters = t.target_masters();
    let holding: Vec<(String, u32)> = t
        .scenario
        .hypervisors
        .iter()
        .enumerate()
        .map(|(h, spec)| (spec.name.clone(), masters.and(t.on_hypervisor(h)).len()))
        .filter(|(_, count)| *count > 0)
        .collect();
    let hosts = &exposure.resilience.hypervisors;
    match holding.as_slice() {
        [(only, _)] if t.scenario.hypervisors.len() == 1 => (TriggerState::NotMet, format!("one hypervisor ({only}) holds every master")),
        [(only, _)] => {
            let empty: Vec<&str> = t.scenario.hypervisors.iter().map(|h| h.name.as_str()).filter(|h| h != only).collect();
            (TriggerState::NotMet, format!("every master on {only}; {} holds none", empty.join(", ")))
        }
        _ => {
            let spread: Vec<String> = holding.iter().map(|(h, n)| format!("{h} ({n})")).collect();
            let voters: u32 = hosts.iter().map(|h| h.voters).sum();
            let may: Vec<&str> = hosts.iter().filter(|h| h.survivable).map(|h| h.hypervisor.as_str()).collect();
            let may_not: Vec<String> = hosts
                .iter()
                .filter(|h| !h.survivable)
                .map(|h| {
                    let why = if h.impact.quorum_lost { format!("{} of {voters} etcd voters on it", h.voters) } else { h.impact.summary() };
                    format!("{} may not ({why})", h.hypervisor)
                })
                .collect();
            let survival = match (may.is_empty(), may_not.is_empty()) {
                (_, true) => "any one host may fail".to_string(),
                (true, false) => format!("yet no host may fail: {}", may_not.join(", ")),
                (false, false) => format!("{} may fail, {}", may.join(", "), may_not.join(", ")),
            };
            (TriggerState::Met, format!("masters on {}: {survival}", spread.join(", ")))
        }
    }
}

fn right_sized(sizing: &SizingAdvice) -> (TriggerState, String) {
    let (Some(needed), Some(smallest), Some(bound)) = (sizing.needed_gb, sizing.smallest_size_gb, sizing.right_size_max_gb) else {
        return (TriggerState::Unknown, "no measured master memory use (ram_used_gb) in the inventory".to_string());
    };
    let used = sizing.measured.iter().map(|m| m.used_gb).fold(0.0, f64::max);
    let why = format!(
        "measured {} GB needs {} GB with {}% headroom: {} GB is the smallest size, {} GB the largest still right-sized",
        gb(used),
        gb(needed),
        gb(sizing.master_ram_headroom_percent),
        gb(smallest),
        gb(bound)
    );
    if sizing.planned_size_gb <= bound {
        (TriggerState::Met, format!("masters at {} GB; {why}", gb(sizing.planned_size_gb)))
    } else {
        (TriggerState::NotMet, format!("masters at {} GB; {why}", gb(sizing.planned_size_gb)))
    }
}

fn ram_freed(hypervisors: &[HypervisorCapacity]) -> (TriggerState, String) {
    let touched: Vec<&HypervisorCapacity> = hypervisors.iter().filter(|h| h.migration_adds).collect();
    if touched.is_empty() {
        return (TriggerState::Met, "the plan adds no VM to any hypervisor".to_string());
    }
    let evidence: Vec<String> = touched
        .iter()
        .map(|h| {
            if h.ram.verdict == RamVerdict::Fits {
                format!("{}: peak {} GB within the {} GB limit", h.name, h.peak_sum(), gb(h.ram.limit_gb))
            } else {
                format!("{}: peak {} GB, {} GB over the {} GB limit", h.name, h.peak_sum(), gb(h.ram.over_limit_gb), gb(h.ram.limit_gb))
            }
        })
        .collect();
    let state = if touched.iter().all(|h| h.ram.verdict == RamVerdict::Fits) { TriggerState::Met } else { TriggerState::NotMet };
    (state, evidence.join("; "))
}

/// Each revisit trigger with its state and evidence, in the source plan's order (RAM freed, the
/// reason for the deferral, after the first two).
pub fn triggers(t: &Topology, hypervisors: &[HypervisorCapacity], sizing: &SizingAdvice, exposure: &ExposureReport) -> Vec<TriggerStatus> {
    let status = |trigger, source: &str, (state, evidence): (TriggerState, String)| TriggerStatus {
        trigger,
        source: source.to_string(),
        state,
        evidence,
    };
    vec![
        status(Trigger::SecondHypervisor, "Second hypervisor added: hardware HA becomes possible", second_hypervisor(t, exposure)),
        status(Trigger::RightSizedMasters, "Right-sizing pass OR planning masters at 16 GB each", right_sized(sizing)),
        status(Trigger::RamFreed, "RAM freed for the new masters (the host was 98% committed)", ram_freed(hypervisors)),
        status(
            Trigger::UpgradeNursing,
            "Cumulative manual upgrade nursing > ~10h",
            (TriggerState::Unknown, "not in the inventory: the operator's own record decides".to_string()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{homelab, report, topology};
    use super::*;

    fn plan_model_scenario(text: &str) -> crate::scenario::Scenario {
        crate::validate::parse_scenario(text).expect("valid")
    }

    fn state(r: &super::super::CapacityReport, trigger: Trigger) -> &TriggerStatus {
        r.triggers.iter().find(|s| s.trigger == trigger).expect("every trigger is reported")
    }

    #[test]
    fn homelab_meets_no_trigger() {
        let r = report(&homelab());
        assert_eq!(state(&r, Trigger::SecondHypervisor).state, TriggerState::NotMet);
        assert_eq!(state(&r, Trigger::RightSizedMasters).state, TriggerState::NotMet);
        assert_eq!(state(&r, Trigger::RamFreed).state, TriggerState::NotMet);
        assert!(state(&r, Trigger::RamFreed).evidence.contains("262 + 2 x 32 = 326"), "{}", state(&r, Trigger::RamFreed).evidence);
        assert_eq!(state(&r, Trigger::UpgradeNursing).state, TriggerState::Unknown);
    }

    #[test]
    fn rightsized_homelab_meets_sizing_and_ram() {
        let r = report(&topology(include_str!("../../../scenarios/homelab-rightsized.yaml")));
        assert_eq!(state(&r, Trigger::RightSizedMasters).state, TriggerState::Met);
        assert_eq!(state(&r, Trigger::RamFreed).state, TriggerState::Met);
        assert_eq!(state(&r, Trigger::SecondHypervisor).state, TriggerState::NotMet);
    }

    #[test]
    fn masters_over_two_hosts_meet_the_second_hypervisor_trigger() {
        let mut scenario = plan_model_scenario(include_str!("../../../scenarios/five-masters.yaml"));
        assert!(report(&Topology::new(&scenario)).triggers.is_empty(), "not judged unless the scenario asks");
        scenario.capacity.revisit_triggers = true;
        let r = report(&Topology::new(&scenario));
        let second = state(&r, Trigger::SecondHypervisor);
        assert_eq!(second.state, TriggerState::Met);
        assert!(second.evidence.contains("pve-b may fail, pve-a may not (3 of 5 etcd voters on it)"), "{}", second.evidence);
    }
}
