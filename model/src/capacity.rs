//! Capacity of a migration: hypervisor RAM and vCPU before, at the peak and after, against the headroom policy.
//!
//! Every figure comes from running the plan's steps over [`Cluster`] state without faults (the
//! [`PlanWalk`]): the RAM a hypervisor commits in a state is what its VMs in that state hold, so an
//! edited plan, another inventory or another placement changes the figures with it. The exposure
//! (single points of failure per phase), the sizing advice and the revisit triggers of the source
//! plan build on the same walk.

mod exposure;
mod sizing;
mod triggers;

pub use exposure::{
    exposure, exposure_at, ExposureReport, ExposureWindow, HostFailure, Impact, MachineKind, PhaseExposure, Resilience, SinglePoint,
    SinglePointTime, StateExposure, Survival,
};
pub use sizing::{sizing, MeasuredMaster, SizeOnHypervisor, SizeOption, SizingAdvice, SIZE_LADDER_MAX_GB, SIZE_LADDER_MIN_GB};
pub use triggers::{triggers, Trigger, TriggerState, TriggerStatus};

use crate::action;
use crate::cluster::Cluster;
use crate::plan::Plan;
use crate::scenario::CapacityPolicy;
use crate::topology::{NodeIx, NodeKind, NodeSet, Topology};
use serde::Serialize;

/// Version of the `plan capacity --format json` document; bumped when a field changes meaning or goes away.
pub const CAPACITY_FORMAT: u32 = 1;

/// Why a capacity analysis cannot be made: a policy value outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("capacity.master_ram_headroom_percent must be a percentage from 0 to 100 (below 100), not {0}")]
    MasterHeadroom(f64),
    #[error("capacity.vcpu_per_core_max must be a number of vCPUs per core above 0, not {0}")]
    VcpuPerCore(f64),
}

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

/// The new master VMs on hypervisor `h` that exist in state `c`.
pub fn new_masters_on(c: &Cluster, t: &Topology, h: usize) -> NodeSet {
    t.new_masters_by_hypervisor[h].and(c.vm_exists)
}

/// Physical RAM less the headroom policy: what a hypervisor may commit.
pub fn ram_limit_gb(physical_gb: f64, headroom_percent: f64) -> f64 {
    physical_gb * (1.0 - headroom_percent / 100.0)
}

/// The RAM committed on hypervisor `h` in state `c`. Inlined: the invariant asks it after every
/// transition of the exploration and reads two of its figures.
#[inline]
pub fn ram_load(c: &Cluster, t: &Topology, h: usize) -> RamLoad {
    ram_load_with(t, h, new_masters_on(c, t, h))
}

/// Whether the new masters on hypervisor `h` can over-commit its RAM (the RAM check's verdict,
/// `committed > limit` with some RAM added): whether all of them existing would. The load only
/// grows with each new master (sizes are not negative, and a rounded sum of such figures grows
/// with each term), so where all of them fit, any of them do. Sizes that are not plain figures
/// (negative, NaN) are taken to be able to.
pub fn may_over_commit(t: &Topology, h: usize) -> bool {
    let masters = t.new_masters_by_hypervisor[h];
    let load = ram_load_with(t, h, masters);
    let plain = masters.iter().all(|n| plain_size(t, n));
    !plain || (load.committed_gb > load.limit_gb && load.added_gb > 0.0)
}

/// Whether every hypervisor's load only grows with each new master's VM created: every new
/// master's size is a plain figure (not negative, not NaN), so each adds to the rounded sum.
pub fn loads_only_grow(t: &Topology) -> bool {
    t.new_masters().all(|n| plain_size(t, n))
}

/// A new master's RAM a plain figure (none given counts as 0 GB).
fn plain_size(t: &Topology, n: crate::topology::NodeIx) -> bool {
    t.node(n).ram_gb.unwrap_or(0.0) >= 0.0
}

/// The RAM committed on hypervisor `h` with the new masters `masters` on it existing.
#[inline]
fn ram_load_with(t: &Topology, h: usize, masters: NodeSet) -> RamLoad {
    let spec = &t.scenario.hypervisors[h];
    let added_gb: f64 = masters.iter().map(|n| t.node(n).ram_gb.unwrap_or(0.0)).sum();
    RamLoad {
        before_gb: spec.ram_allocated_gb,
        added_gb,
        committed_gb: spec.ram_allocated_gb + added_gb,
        physical_gb: spec.ram_physical_gb,
        limit_gb: ram_limit_gb(spec.ram_physical_gb, t.scenario.capacity.ram_headroom_percent),
    }
}

/// vCPUs on one hypervisor in one state. The host's own figures are optional in an inventory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VcpuLoad {
    /// Allocated before the migration, when the inventory says.
    pub before: Option<u32>,
    /// vCPUs of the new master VMs that exist in this state.
    pub added: u32,
    pub committed: Option<u32>,
}

/// The vCPUs committed on hypervisor `h` in state `c`.
pub fn vcpu_load(c: &Cluster, t: &Topology, h: usize) -> VcpuLoad {
    let before = t.scenario.hypervisors[h].vcpu_allocated;
    let added: u32 = new_masters_on(c, t, h).iter().map(|n| t.node(n).vcpu.unwrap_or(0)).sum();
    VcpuLoad { before, added, committed: before.map(|b| b + added) }
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

/// A computed GB figure for the JSON report: to the nearest 10 MB, so `267 x 0.95` reads `253.65`
/// and not `253.64999999999998`. Verdicts are decided on the unrounded figures.
pub fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The sum the operator writes by hand: `262 + 2 x 32 = 326` (equal sizes grouped, in order of
/// first appearance); just `262` when nothing is added.
pub fn ram_sum(before_gb: f64, added_gb: &[f64]) -> String {
    let mut groups: Vec<(f64, u32)> = Vec::new();
    for &size in added_gb {
        match groups.iter_mut().find(|(s, _)| *s == size) {
            Some((_, count)) => *count += 1,
            None => groups.push((size, 1)),
        }
    }
    if groups.is_empty() {
        return gb(before_gb);
    }
    let terms: Vec<String> =
        groups.iter().map(|(size, count)| if *count == 1 { gb(*size) } else { format!("{count} x {}", gb(*size)) }).collect();
    let total: f64 = before_gb + added_gb.iter().sum::<f64>();
    format!("{} + {} = {}", gb(before_gb), terms.join(" + "), gb(total))
}

/// The RAM of every new master the scenario places on hypervisor `h`, in join order: what the
/// plan commits there once it has created them all.
pub fn planned_new_masters_gb(t: &Topology, h: usize) -> Vec<f64> {
    t.new_masters().filter(|n| t.node(*n).hypervisor == h).map(|n| t.node(n).ram_gb.unwrap_or(0.0)).collect()
}

/// Where the plan stopped when a step was refused in the fault-free walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    pub step: String,
    pub reason: String,
}

/// One step of the walk: the state it starts from and the state after each of its actions.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkedStep {
    /// Index into the plan's steps.
    pub step: usize,
    pub start: Cluster,
    pub after_actions: Vec<Cluster>,
}

impl WalkedStep {
    /// Every state the step passes through, its start included.
    pub fn states(&self) -> impl Iterator<Item = &Cluster> {
        std::iter::once(&self.start).chain(self.after_actions.iter())
    }

    pub fn end(&self) -> &Cluster {
        self.after_actions.last().unwrap_or(&self.start)
    }
}

/// The plan run without faults from the scenario's initial state.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanWalk {
    pub initial: Cluster,
    pub steps: Vec<WalkedStep>,
    /// Set when a step was refused: the walk ends there, and the figures cover what it reached.
    pub halted: Option<Halt>,
}

impl PlanWalk {
    /// The last state the walk reached.
    pub fn end(&self) -> &Cluster {
        self.steps.last().map(WalkedStep::end).unwrap_or(&self.initial)
    }
}

/// Runs `plan`'s actions in order over [`Cluster::initial`], stopping at the first refusal.
pub fn walk(t: &Topology, plan: &Plan) -> PlanWalk {
    let initial = Cluster::initial(t);
    let mut c = initial;
    let mut steps = Vec::with_capacity(plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        let start = c;
        let mut after_actions = Vec::with_capacity(step.actions.len());
        for &a in &step.actions {
            match action::apply(&c, t, a) {
                Ok(next) => {
                    c = next;
                    after_actions.push(c);
                }
                Err(refusal) => {
                    steps.push(WalkedStep { step: i, start, after_actions });
                    return PlanWalk { initial, steps, halted: Some(Halt { step: step.id.clone(), reason: refusal.reason }) };
                }
            }
        }
        steps.push(WalkedStep { step: i, start, after_actions });
    }
    PlanWalk { initial, steps, halted: None }
}

/// How a hypervisor's RAM stands at the plan's peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RamVerdict {
    Fits,
    /// Above the headroom limit, within physical RAM: the host runs into swap.
    OverHeadroom,
    /// Above physical RAM: the OOM killer.
    OverPhysical,
}

/// How a hypervisor's vCPUs stand at the plan's peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcpuVerdict {
    Fits,
    OverLimit,
    /// The inventory lacks the host's cores or allocation, or the policy sets no limit.
    NotJudged,
}

/// The verdict of the whole analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityVerdict {
    Fits,
    OverCommitted,
}

/// A new master VM the plan creates on a hypervisor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedMaster {
    pub name: String,
    pub ram_gb: f64,
    pub vcpu: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RamFigures {
    pub physical_gb: f64,
    pub headroom_percent: f64,
    pub limit_gb: f64,
    pub swap_used_gb: f64,
    pub before_gb: f64,
    pub peak_gb: f64,
    /// The first step whose state reaches the peak; `None` when the peak is the state before the plan.
    pub peak_step: Option<String>,
    pub after_gb: f64,
    /// How far the peak is over the limit (0 when it fits).
    pub over_limit_gb: f64,
    /// How far the peak is over physical RAM (0 when it is not).
    pub over_physical_gb: f64,
    /// How far the peak stays under the limit (0 when it is over).
    pub spare_gb: f64,
    pub verdict: RamVerdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VcpuFigures {
    pub cores: Option<u32>,
    pub before: Option<u32>,
    /// vCPUs of the new masters at the vCPU peak.
    pub added_at_peak: u32,
    pub peak: Option<u32>,
    pub after: Option<u32>,
    pub per_core_max: Option<f64>,
    /// `cores x per_core_max`, when both are known.
    pub limit: Option<f64>,
    pub verdict: VcpuVerdict,
}

/// One hypervisor's capacity through the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HypervisorCapacity {
    pub name: String,
    /// The new masters on it at its RAM peak.
    pub new_masters: Vec<PlacedMaster>,
    /// The migration adds VMs here; only such hypervisors decide the verdict (a host already over
    /// its limit before the migration is reported, not blamed on it).
    pub migration_adds: bool,
    pub ram: RamFigures,
    pub vcpu: VcpuFigures,
    /// The hypervisor stays within the policy for RAM and, where judged, vCPU.
    pub fits: bool,
}

impl HypervisorCapacity {
    /// `262 + 2 x 32 = 326`: the peak as the sum of what was there and what the plan adds.
    pub fn peak_sum(&self) -> String {
        let added: Vec<f64> = self.new_masters.iter().map(|m| m.ram_gb).collect();
        ram_sum(self.ram.before_gb, &added)
    }
}

/// The policy the analysis applied, every field present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyApplied {
    pub ram_headroom_percent: f64,
    pub master_ram_headroom_percent: f64,
    pub vcpu_per_core_max: Option<f64>,
}

/// The whole answer of `plan capacity`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    pub capacity_format: u32,
    pub scenario: String,
    pub verdict: CapacityVerdict,
    pub policy: PolicyApplied,
    pub masters_before: u32,
    pub masters_after: u32,
    pub plan_duration_s: u32,
    /// Set when the fault-free walk was refused at a step (an edited plan): figures stop there.
    pub plan_halted: Option<Halt>,
    pub hypervisors: Vec<HypervisorCapacity>,
    pub sizing: SizingAdvice,
    pub exposure: ExposureReport,
    pub triggers: Vec<TriggerStatus>,
}

impl CapacityReport {
    /// The hypervisors that decide an over-commit verdict.
    pub fn over_committed(&self) -> impl Iterator<Item = &HypervisorCapacity> {
        self.hypervisors.iter().filter(|h| h.migration_adds && !h.fits)
    }
}

fn check_policy(policy: &CapacityPolicy) -> Result<(), CapacityError> {
    let headroom = policy.master_ram_headroom_percent;
    if !(0.0..100.0).contains(&headroom) {
        return Err(CapacityError::MasterHeadroom(headroom));
    }
    if let Some(ratio) = policy.vcpu_per_core_max {
        if !(ratio.is_finite() && ratio > 0.0) {
            return Err(CapacityError::VcpuPerCore(ratio));
        }
    }
    Ok(())
}

fn hypervisor_capacity(t: &Topology, plan: &Plan, walked: &PlanWalk, h: usize) -> HypervisorCapacity {
    let spec = &t.scenario.hypervisors[h];
    let policy = &t.scenario.capacity;
    let step_id = |ix: usize| plan.steps[ix].id.clone();

    // The first state with the most RAM, and the first with the most vCPU.
    let mut ram_peak = (ram_load(&walked.initial, t, h), None::<usize>, walked.initial);
    let mut vcpu_peak = (vcpu_load(&walked.initial, t, h), None::<usize>);
    for walked_step in &walked.steps {
        for c in walked_step.after_actions.iter() {
            let ram = ram_load(c, t, h);
            if ram.committed_gb > ram_peak.0.committed_gb {
                ram_peak = (ram, Some(walked_step.step), *c);
            }
            let vcpu = vcpu_load(c, t, h);
            if vcpu.added > vcpu_peak.0.added {
                vcpu_peak = (vcpu, Some(walked_step.step));
            }
        }
    }
    let before = ram_load(&walked.initial, t, h);
    let after = ram_load(walked.end(), t, h);
    let (peak, peak_at, peak_state) = ram_peak;

    let verdict = if peak.committed_gb > peak.physical_gb {
        RamVerdict::OverPhysical
    } else if peak.committed_gb > peak.limit_gb {
        RamVerdict::OverHeadroom
    } else {
        RamVerdict::Fits
    };
    let ram = RamFigures {
        physical_gb: spec.ram_physical_gb,
        headroom_percent: policy.ram_headroom_percent,
        limit_gb: hundredths(peak.limit_gb),
        swap_used_gb: spec.swap_used_gb,
        before_gb: before.committed_gb,
        peak_gb: peak.committed_gb,
        peak_step: peak_at.map(step_id),
        after_gb: after.committed_gb,
        over_limit_gb: hundredths((peak.committed_gb - peak.limit_gb).max(0.0)),
        over_physical_gb: hundredths((peak.committed_gb - peak.physical_gb).max(0.0)),
        spare_gb: hundredths((peak.limit_gb - peak.committed_gb).max(0.0)),
        verdict,
    };

    let vcpu_before = vcpu_load(&walked.initial, t, h);
    let vcpu_after = vcpu_load(walked.end(), t, h);
    let limit = match (spec.cpus_physical, policy.vcpu_per_core_max) {
        (Some(cores), Some(ratio)) => Some(cores as f64 * ratio),
        _ => None,
    };
    let vcpu_verdict = match (vcpu_peak.0.committed, limit) {
        (Some(committed), Some(limit)) if committed as f64 > limit => VcpuVerdict::OverLimit,
        (Some(_), Some(_)) => VcpuVerdict::Fits,
        _ => VcpuVerdict::NotJudged,
    };
    let vcpu = VcpuFigures {
        cores: spec.cpus_physical,
        before: vcpu_before.committed,
        added_at_peak: vcpu_peak.0.added,
        peak: vcpu_peak.0.committed,
        after: vcpu_after.committed,
        per_core_max: policy.vcpu_per_core_max,
        limit,
        verdict: vcpu_verdict,
    };

    let new_masters = new_masters_on(&peak_state, t, h)
        .iter()
        .map(|n| {
            let node = t.node(n);
            PlacedMaster { name: node.name.clone(), ram_gb: node.ram_gb.unwrap_or(0.0), vcpu: node.vcpu.unwrap_or(0) }
        })
        .collect();
    let migration_adds = peak.added_gb > 0.0 || vcpu_peak.0.added > 0;
    HypervisorCapacity {
        name: spec.name.clone(),
        new_masters,
        migration_adds,
        fits: verdict == RamVerdict::Fits && vcpu_verdict != VcpuVerdict::OverLimit,
        ram,
        vcpu,
    }
}

fn masters_in(t: &Topology, c: &Cluster) -> u32 {
    c.control_plane.iter().filter(|n: &NodeIx| t.node(*n).kind != NodeKind::Worker).count() as u32
}

/// The capacity, sizing and exposure of running `plan` on `t`.
///
/// # Errors
/// A policy value outside its range ([`CapacityError`]); everything else is a finding, not an error.
pub fn analyse(t: &Topology, plan: &Plan) -> Result<CapacityReport, CapacityError> {
    let policy = &t.scenario.capacity;
    check_policy(policy)?;
    let walked = walk(t, plan);
    let hypervisors: Vec<HypervisorCapacity> =
        (0..t.scenario.hypervisors.len()).map(|h| hypervisor_capacity(t, plan, &walked, h)).collect();
    let sizing = sizing(t, &hypervisors);
    let exposure = exposure(t, plan, &walked);
    let triggers = if t.scenario.capacity.revisit_triggers { triggers(t, &hypervisors, &sizing, &exposure) } else { Vec::new() };
    let verdict =
        if hypervisors.iter().any(|h| h.migration_adds && !h.fits) { CapacityVerdict::OverCommitted } else { CapacityVerdict::Fits };
    Ok(CapacityReport {
        capacity_format: CAPACITY_FORMAT,
        scenario: t.scenario.name.clone(),
        verdict,
        policy: PolicyApplied {
            ram_headroom_percent: policy.ram_headroom_percent,
            master_ram_headroom_percent: policy.master_ram_headroom_percent,
            vcpu_per_core_max: policy.vcpu_per_core_max,
        },
        masters_before: masters_in(t, &walked.initial),
        masters_after: masters_in(t, walked.end()),
        plan_duration_s: walked.steps.iter().map(|s| plan.steps[s.step].duration_s).sum(),
        plan_halted: walked.halted.clone(),
        hypervisors,
        sizing,
        exposure,
        triggers,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::planner;
    use crate::validate::parse_scenario;

    pub(crate) fn topology(yaml: &str) -> Topology {
        Topology::new(&parse_scenario(yaml).expect("test scenario is valid"))
    }

    pub(crate) fn homelab() -> Topology {
        topology(include_str!("../../scenarios/homelab.yaml"))
    }

    pub(crate) fn report(t: &Topology) -> CapacityReport {
        analyse(t, &planner::generate(t)).expect("policy is valid")
    }

    /// The homelab with `from` replaced by `to` (each must occur once).
    pub(crate) fn homelab_with(edits: &[(&str, &str)]) -> Topology {
        let mut yaml = include_str!("../../scenarios/homelab.yaml").to_string();
        for (from, to) in edits {
            assert_eq!(yaml.matches(from).count(), 1, "{from:?} occurs once in homelab.yaml");
            yaml = yaml.replace(from, to);
        }
        topology(&yaml)
    }

    #[test]
    fn homelab_peak_is_the_source_plans_326_gb() {
        let r = report(&homelab());
        assert_eq!(r.verdict, CapacityVerdict::OverCommitted);
        let pve = &r.hypervisors[0];
        assert_eq!(pve.ram.before_gb, 262.0);
        assert_eq!(pve.ram.peak_gb, 326.0);
        assert_eq!(pve.ram.after_gb, 326.0);
        assert_eq!(pve.peak_sum(), "262 + 2 x 32 = 326");
        assert_eq!(pve.ram.peak_step.as_deref(), Some("3.1"), "the second new VM is created in 3.1");
        assert_eq!(pve.ram.verdict, RamVerdict::OverPhysical);
        assert_eq!(pve.ram.limit_gb, 253.65);
        assert_eq!(pve.ram.over_limit_gb, 72.35);
        assert_eq!(pve.ram.over_physical_gb, 59.0);
        assert_eq!(pve.vcpu.added_at_peak, 16);
        assert_eq!(pve.vcpu.verdict, VcpuVerdict::NotJudged, "the homelab inventory has no vCPU figures for the host");
        assert_eq!((r.masters_before, r.masters_after), (1, 3));
    }

    #[test]
    fn within_physical_but_over_headroom_is_still_over_committed() {
        // 262 + 2 x 32 = 326 against 330 GB: fits physically, not with 5% headroom (313.5 GB).
        let t = homelab_with(&[("ram_physical_gb: 267", "ram_physical_gb: 330")]);
        let r = report(&t);
        assert_eq!(r.hypervisors[0].ram.verdict, RamVerdict::OverHeadroom);
        assert_eq!(r.verdict, CapacityVerdict::OverCommitted);
        // And with no headroom at all it fits.
        let t = homelab_with(&[("ram_physical_gb: 267", "ram_physical_gb: 330"), ("ram_headroom_percent: 5", "ram_headroom_percent: 0")]);
        assert_eq!(report(&t).verdict, CapacityVerdict::Fits);
    }

    #[test]
    fn rightsized_homelab_fits_with_a_lower_peak() {
        let r = report(&topology(include_str!("../../scenarios/homelab-rightsized.yaml")));
        assert_eq!(r.verdict, CapacityVerdict::Fits);
        let pve = &r.hypervisors[0];
        assert_eq!(pve.peak_sum(), "214 + 2 x 16 = 246");
        assert_eq!(pve.ram.verdict, RamVerdict::Fits);
        assert!(pve.ram.spare_gb > 7.0);
    }

    #[test]
    fn vcpu_is_judged_only_with_host_figures_and_a_policy() {
        let host = "swap_used_gb: 1.5\n    cpus_physical: 16\n    vcpu_allocated: 100";
        let t = homelab_with(&[("swap_used_gb: 1.5", host), ("ram_physical_gb: 267", "ram_physical_gb: 512")]);
        let r = report(&t);
        assert_eq!(r.hypervisors[0].vcpu.peak, Some(116));
        assert_eq!(r.hypervisors[0].vcpu.verdict, VcpuVerdict::NotJudged, "no vcpu_per_core_max: reported, not judged");
        assert_eq!(r.verdict, CapacityVerdict::Fits);
        let t = homelab_with(&[
            ("swap_used_gb: 1.5", host),
            ("ram_physical_gb: 267", "ram_physical_gb: 512"),
            ("ram_headroom_percent: 5", "ram_headroom_percent: 5\n  vcpu_per_core_max: 7"),
        ]);
        let r = report(&t);
        assert_eq!(r.hypervisors[0].vcpu.limit, Some(112.0));
        assert_eq!(r.hypervisors[0].vcpu.verdict, VcpuVerdict::OverLimit);
        assert_eq!(r.verdict, CapacityVerdict::OverCommitted);
    }

    #[test]
    fn a_host_already_over_that_the_migration_does_not_touch_does_not_decide() {
        let yaml = include_str!("../../scenarios/homelab.yaml")
            .replace(
                "    swap_used_gb: 1.5\n",
                "    swap_used_gb: 1.5\n  - { name: nas, address: 192.168.1.128, ram_physical_gb: 64, ram_allocated_gb: 70 }\n",
            )
            .replace("ram_physical_gb: 267", "ram_physical_gb: 400");
        let r = report(&topology(&yaml));
        let nas = r.hypervisors.iter().find(|h| h.name == "nas").expect("nas listed");
        assert!(!nas.fits && !nas.migration_adds);
        assert_eq!(r.verdict, CapacityVerdict::Fits);
    }

    #[test]
    fn bad_policy_is_a_typed_error() {
        let t = homelab_with(&[("ram_headroom_percent: 5", "ram_headroom_percent: 5\n  master_ram_headroom_percent: 100")]);
        assert_eq!(analyse(&t, &planner::generate(&t)), Err(CapacityError::MasterHeadroom(100.0)));
        let t = homelab_with(&[("ram_headroom_percent: 5", "ram_headroom_percent: 5\n  vcpu_per_core_max: 0")]);
        assert_eq!(analyse(&t, &planner::generate(&t)), Err(CapacityError::VcpuPerCore(0.0)));
    }

    #[test]
    fn an_edited_plan_without_the_vm_steps_peaks_lower() {
        let t = homelab();
        let mut plan = planner::generate(&t);
        let cut = plan.steps.iter().position(|s| s.id == "3.1").expect("step 3.1");
        plan.steps.truncate(cut);
        let r = analyse(&t, &plan).expect("valid");
        assert_eq!(r.hypervisors[0].peak_sum(), "262 + 32 = 294");
    }

    #[test]
    fn sums_read_like_the_source_plan() {
        assert_eq!(ram_sum(262.0, &[32.0, 32.0]), "262 + 2 x 32 = 326");
        assert_eq!(ram_sum(262.0, &[]), "262");
        assert_eq!(ram_sum(100.0, &[16.0, 8.0, 16.0]), "100 + 2 x 16 + 8 = 140");
        assert_eq!(gb(ram_limit_gb(267.0, 5.0)), "253.7");
        assert_eq!(gb(4.6), "4.6");
    }
}
