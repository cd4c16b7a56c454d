//! Sizing advice: the smallest master that holds the measured use, and what each size needs freed or leaves spare.
//!
//! Each size is tried for every master at once (the existing ones resized to it too, which is
//! what a right-sizing pass does) and, for comparison, with the existing masters left as they
//! are. The hypervisor figures start from the plan's RAM peak, so they follow the placement.

use super::{hundredths, HypervisorCapacity};
use crate::topology::{NodeKind, Topology};
use serde::Serialize;

/// The smallest size on the ladder: kubeadm's minimum for a control-plane node.
pub const SIZE_LADDER_MIN_GB: f64 = 2.0;
/// The largest size on the ladder.
pub const SIZE_LADDER_MAX_GB: f64 = 1024.0;

/// VM sizes as hypervisor templates offer them: powers of two.
fn ladder() -> impl Iterator<Item = f64> {
    std::iter::successors(Some(SIZE_LADDER_MIN_GB), |s| Some(s * 2.0)).take_while(|s| *s <= SIZE_LADDER_MAX_GB)
}

/// A master whose memory use was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasuredMaster {
    pub name: String,
    pub ram_gb: Option<f64>,
    pub used_gb: f64,
}

/// One hypervisor with every master at one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeOnHypervisor {
    pub hypervisor: String,
    /// The plan's peak with every master (existing ones resized) at this size.
    pub peak_gb: f64,
    pub limit_gb: f64,
    pub to_free_gb: f64,
    pub spare_gb: f64,
    /// The peak when only the new masters take this size and the existing ones keep theirs.
    pub peak_keeping_existing_gb: f64,
    pub to_free_keeping_existing_gb: f64,
}

/// What one master size means for the hypervisors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeOption {
    pub size_gb: f64,
    /// Whether this size keeps the master headroom above the measured use; `None` unmeasured.
    pub holds_measured_use: Option<bool>,
    /// Every hypervisor holding masters stays within its limit (existing masters resized).
    pub fits: bool,
    /// RAM to free across the hypervisors for this size to fit (existing masters resized).
    pub to_free_gb: f64,
    /// RAM left under the limits across the hypervisors holding masters (existing masters resized).
    pub spare_gb: f64,
    pub fits_keeping_existing: bool,
    pub to_free_keeping_existing_gb: f64,
    pub hypervisors: Vec<SizeOnHypervisor>,
}

/// Sizing advice from measured master memory use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizingAdvice {
    pub master_ram_headroom_percent: f64,
    pub measured: Vec<MeasuredMaster>,
    /// The largest measured use grown by the master headroom: what a master must hold.
    pub needed_gb: Option<f64>,
    /// The smallest ladder size at or above `needed_gb`.
    pub smallest_size_gb: Option<f64>,
    /// The largest size still called right-sized: one ladder step above the smallest.
    pub right_size_max_gb: Option<f64>,
    /// The size the plan gives its masters (the largest of them).
    pub planned_size_gb: f64,
    pub sizes: Vec<SizeOption>,
}

impl SizingAdvice {
    pub fn size(&self, size_gb: f64) -> Option<&SizeOption> {
        self.sizes.iter().find(|s| s.size_gb == size_gb)
    }
}

/// The sizes worth showing: the smallest that holds the measured use up to the planned size;
/// just the planned size when nothing was measured.
fn sizes_to_try(smallest: Option<f64>, planned: f64) -> Vec<f64> {
    let Some(smallest) = smallest else {
        return vec![planned];
    };
    let mut sizes: Vec<f64> = ladder().filter(|s| *s >= smallest && *s <= planned.max(smallest)).collect();
    if planned > smallest && !sizes.contains(&planned) {
        sizes.push(planned);
    }
    sizes
}

/// Sizing advice for the masters of `t`, from the RAM peaks of `hypervisors`.
pub fn sizing(t: &Topology, hypervisors: &[HypervisorCapacity]) -> SizingAdvice {
    let headroom = t.scenario.capacity.master_ram_headroom_percent;
    let existing: Vec<_> = t.nodes.iter().filter(|n| n.kind == NodeKind::ExistingMaster).collect();
    let measured: Vec<MeasuredMaster> = existing
        .iter()
        .filter_map(|n| n.ram_used_gb.map(|used_gb| MeasuredMaster { name: n.name.clone(), ram_gb: n.ram_gb, used_gb }))
        .collect();
    let needed_exact = measured.iter().map(|m| m.used_gb).reduce(f64::max).map(|used| used / (1.0 - headroom / 100.0));
    let smallest_size_gb = needed_exact.and_then(|needed| ladder().find(|s| *s >= needed));
    let needed_gb = needed_exact.map(hundredths);
    let right_size_max_gb = smallest_size_gb.and_then(|smallest| ladder().find(|s| *s > smallest));
    let planned_size_gb =
        t.nodes.iter().filter(|n| n.kind != NodeKind::Worker).filter_map(|n| n.ram_gb).fold(0.0, f64::max).max(SIZE_LADDER_MIN_GB);

    let sizes = sizes_to_try(smallest_size_gb, planned_size_gb)
        .into_iter()
        .map(|size_gb| {
            let on: Vec<SizeOnHypervisor> = hypervisors
                .iter()
                .enumerate()
                .filter_map(|(h, load)| {
                    let existing_here: Vec<f64> = existing.iter().filter(|n| n.hypervisor == h).filter_map(|n| n.ram_gb).collect();
                    if existing_here.is_empty() && load.new_masters.is_empty() {
                        return None;
                    }
                    let new_delta: f64 = load.new_masters.iter().map(|m| size_gb - m.ram_gb).sum();
                    let existing_delta: f64 = existing_here.iter().map(|r| size_gb - r).sum();
                    let peak_keeping_existing_gb = load.ram.peak_gb + new_delta;
                    let peak_gb = peak_keeping_existing_gb + existing_delta;
                    let limit_gb = load.ram.limit_gb;
                    Some(SizeOnHypervisor {
                        hypervisor: load.name.clone(),
                        peak_gb: hundredths(peak_gb),
                        limit_gb,
                        to_free_gb: hundredths((peak_gb - limit_gb).max(0.0)),
                        spare_gb: hundredths((limit_gb - peak_gb).max(0.0)),
                        peak_keeping_existing_gb: hundredths(peak_keeping_existing_gb),
                        to_free_keeping_existing_gb: hundredths((peak_keeping_existing_gb - limit_gb).max(0.0)),
                    })
                })
                .collect();
            let to_free_gb = hundredths(on.iter().map(|h| h.to_free_gb).sum());
            let to_free_keeping_existing_gb = hundredths(on.iter().map(|h| h.to_free_keeping_existing_gb).sum());
            SizeOption {
                size_gb,
                holds_measured_use: needed_exact.map(|needed| size_gb >= needed),
                fits: to_free_gb == 0.0,
                to_free_gb,
                spare_gb: hundredths(on.iter().map(|h| h.spare_gb).sum()),
                fits_keeping_existing: to_free_keeping_existing_gb == 0.0,
                to_free_keeping_existing_gb,
                hypervisors: on,
            }
        })
        .collect();
    SizingAdvice { master_ram_headroom_percent: headroom, measured, needed_gb, smallest_size_gb, right_size_max_gb, planned_size_gb, sizes }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{homelab, homelab_with, report, topology};

    #[test]
    fn homelab_smallest_master_is_8_gb() {
        let r = report(&homelab());
        let s = &r.sizing;
        assert_eq!(s.measured.len(), 1);
        assert_eq!(s.measured[0].used_gb, 4.6);
        let needed = s.needed_gb.expect("measured");
        assert_eq!(needed, 7.67, "4.6 GB with 40% headroom");
        assert_eq!(s.smallest_size_gb, Some(8.0));
        assert_eq!(s.right_size_max_gb, Some(16.0));
        let sizes: Vec<f64> = s.sizes.iter().map(|o| o.size_gb).collect();
        assert_eq!(sizes, [8.0, 16.0, 32.0]);
    }

    #[test]
    fn homelab_16_gb_masters_need_ram_freed_and_8_gb_leave_little() {
        let r = report(&homelab());
        // Every master at 16 GB: 262 - 16 (k8s-master resized) + 2 x 16 = 278 GB.
        let sixteen = r.sizing.size(16.0).expect("16 GB listed");
        assert_eq!(sixteen.hypervisors[0].peak_gb, 278.0);
        assert!(!sixteen.fits);
        assert_eq!(sixteen.to_free_gb, 24.35);
        // Keeping k8s-master at 32 GB: 262 + 2 x 16 = 294 GB.
        assert_eq!(sixteen.hypervisors[0].peak_keeping_existing_gb, 294.0);
        assert_eq!(sixteen.to_free_keeping_existing_gb, 40.35);
        // Every master at 8 GB: 262 - 24 + 16 = 254 GB: under physical, a hair over the 5% headroom.
        let eight = r.sizing.size(8.0).expect("8 GB listed");
        assert_eq!(eight.hypervisors[0].peak_gb, 254.0);
        assert_eq!(eight.holds_measured_use, Some(true));
        assert_eq!(eight.to_free_gb, 0.35);
        // The planned 32 GB: the 326 GB of the source plan.
        assert_eq!(r.sizing.size(32.0).expect("32 GB listed").hypervisors[0].peak_gb, 326.0);
    }

    #[test]
    fn without_headroom_8_gb_masters_fit_and_leave_spare() {
        let t = homelab_with(&[("ram_headroom_percent: 5", "ram_headroom_percent: 0")]);
        let eight = report(&t).sizing.size(8.0).cloned().expect("8 GB listed");
        assert!(eight.fits);
        assert_eq!(eight.spare_gb, 13.0, "267 - 254");
    }

    #[test]
    fn more_master_headroom_asks_for_a_bigger_size() {
        let t = homelab_with(&[("ram_headroom_percent: 5", "ram_headroom_percent: 5\n  master_ram_headroom_percent: 50")]);
        assert_eq!(report(&t).sizing.smallest_size_gb, Some(16.0), "4.6 GB at most half full: 9.2 GB -> 16 GB");
    }

    #[test]
    fn unmeasured_masters_get_only_the_planned_size() {
        let t = homelab_with(&[("    ram_used_gb: 4.6         # 5-6x oversized\n", "")]);
        let s = report(&t).sizing;
        assert_eq!(s.needed_gb, None);
        assert_eq!(s.smallest_size_gb, None);
        assert_eq!(s.sizes.len(), 1);
        assert_eq!(s.sizes[0].size_gb, 32.0);
        assert_eq!(s.sizes[0].holds_measured_use, None);
    }

    #[test]
    fn sizes_follow_the_placement_over_hypervisors() {
        let r = report(&topology(include_str!("../../../scenarios/five-masters.yaml")));
        let s = &r.sizing;
        // ctl-a uses 5.2 GB: 8.67 GB needed with 40% headroom -> 16 GB, as planned.
        assert_eq!(s.smallest_size_gb, Some(16.0));
        let sixteen = s.size(16.0).expect("16 GB listed");
        let names: Vec<&str> = sixteen.hypervisors.iter().map(|h| h.hypervisor.as_str()).collect();
        assert_eq!(names, ["pve-a", "pve-b"]);
        assert_eq!(sixteen.hypervisors[0].peak_gb, 96.0 + 32.0);
        assert_eq!(sixteen.hypervisors[1].peak_gb, 64.0 + 32.0);
        assert!(sixteen.fits);
    }
}
