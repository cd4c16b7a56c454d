//! Hypervisor RAM: what is committed in a state, against physical RAM and the headroom policy.

use crate::cluster::Cluster;
use crate::topology::{NodeKind, Topology};
use serde::Serialize;

/// RAM on one hypervisor in one state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RamLoad {
    /// Allocated before the migration (the inventory's figure).
    pub before_gb: f64,
    /// New master VMs that exist in this state.
    pub added_gb: f64,
    pub committed_gb: f64,
    pub physical_gb: f64,
    /// Physical less the headroom policy.
    pub limit_gb: f64,
}

/// The RAM committed on hypervisor `h` in state `c`.
pub fn ram_load(c: &Cluster, t: &Topology, h: usize) -> RamLoad {
    let spec = &t.scenario.hypervisors[h];
    let added_gb: f64 = t
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| n.kind == NodeKind::NewMaster && n.hypervisor == h && c.vm_exists.0 & (1 << i) != 0)
        .map(|(_, n)| n.ram_gb.unwrap_or(0.0))
        .sum();
    let limit_gb = spec.ram_physical_gb * (1.0 - t.scenario.capacity.ram_headroom_percent / 100.0);
    RamLoad {
        before_gb: spec.ram_allocated_gb,
        added_gb,
        committed_gb: spec.ram_allocated_gb + added_gb,
        physical_gb: spec.ram_physical_gb,
        limit_gb,
    }
}

/// A GB figure as people write it: no trailing `.0`, at most one decimal.
pub fn gb(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}
