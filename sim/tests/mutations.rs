//! Mutants of the generated plans: every step that changes state, deleted in turn, must make
//! `plan check` fail — unless what the step does is explained from its operations alone (it
//! leaves the cluster as it found it, it only renews credentials an earlier step made, or it is
//! a precaution for a failure the twin does not model). Steps of verifications only are what
//! `check` itself relies on, so deleting them is not a harm the twin must see.

use plan_model::action::{self, Action};
use plan_model::cluster::Cluster;
use plan_model::plan::Plan;
use plan_model::planner;
use plan_model::topology::Topology;
use plan_model::validate::parse_scenario;
use plan_sim::explore::{check, CheckOptions, Verdict};

fn topology(text: &str) -> Topology {
    Topology::new(&parse_scenario(text).expect("the scenario is valid"))
}

/// Why deleting step `i` may pass `check`, derived from its operations; `None`: it must not.
fn harmless(t: &Topology, plan: &Plan, i: usize) -> Option<&'static str> {
    let step = &plan.steps[i];
    let changing: Vec<Action> = step.actions.iter().copied().filter(|a| !matches!(a, Action::Verify(_))).collect();
    let earlier = |a: &Action| plan.steps[..i].iter().any(|s| s.actions.contains(a));
    if changing.iter().all(|a| matches!(a, Action::UploadCerts | Action::CreateToken) && earlier(a)) {
        return Some("renews credentials an earlier step made (the TTLs hold without it; expired ones are renewed)");
    }
    // A later step does the same again, or declares a superset: the effect arrives there.
    let superseded = |a: &Action| {
        plan.steps[i + 1..].iter().flat_map(|s| s.actions.iter()).any(|b| match (a, b) {
            (Action::DeclareLbPool(p), Action::DeclareLbPool(q)) | (Action::DeclareStackHosts(p), Action::DeclareStackHosts(q)) => {
                p.minus(*q).is_empty()
            }
            (
                Action::ApplyConfigStack | Action::ApplyCronJobs | Action::ApplyRebootGate | Action::ApplyUpgradeChain | Action::DeployLb,
                b,
            ) => a == b,
            _ => false,
        })
    };
    if changing.iter().all(superseded) {
        return Some("a later step declares or applies the same again (a superset of it): the effect arrives there");
    }
    if changing == [Action::TakeVmSnapshot] {
        return Some("a VM snapshot: a precaution against a corrupted master disk, which the twin does not model");
    }
    let mut before = Cluster::initial(t);
    for s in &plan.steps[..i] {
        for a in &s.actions {
            before = action::apply(&before, t, *a).unwrap_or(before);
        }
    }
    let on_own_apiserver = |a: &Action| matches!(a, Action::FlipKubelet(x) if before.control_plane.contains(*x) && before.up.contains(*x));
    if changing.iter().all(on_own_apiserver) {
        return Some("moves a master's kubelet from its own apiserver to the VIP: either way it survives the loss of another master");
    }
    // The cluster after the step's actions is the one before (time aside).
    let mut after = before;
    for a in &step.actions {
        after = action::apply(&after, t, *a).unwrap_or(after);
    }
    (timeless(&after) == timeless(&before)).then_some("leaves the cluster as it found it (a failover test)")
}

/// The state without the clock and the timestamps that move with it.
fn timeless(c: &Cluster) -> Cluster {
    Cluster { clock_s: 0, certs_uploaded_s: c.certs_uploaded_s.map(|_| 0), token_s: c.token_s.map(|_| 0), ..*c }
}

fn every_state_changing_deletion_is_caught(t: &Topology) {
    let plan = planner::generate(t);
    assert_eq!(check(t, &plan, CheckOptions { depth: 1 }).verdict, Verdict::Pass, "{} passes unmutated", t.scenario.name);
    let mut caught = 0;
    for i in 0..plan.steps.len() {
        if !plan.steps[i].changes_state() {
            continue;
        }
        let mut mutant = plan.clone();
        let removed = mutant.steps.remove(i);
        let refused = mutant.check_order().is_err();
        let failed = refused || check(t, &mutant, CheckOptions { depth: 1 }).verdict == Verdict::Fail;
        if failed {
            caught += 1;
            continue;
        }
        assert!(
            harmless(t, &plan, i).is_some(),
            "{}: deleting {} ({}) passes check, and nothing in its operations explains why",
            t.scenario.name,
            removed.id,
            removed.title
        );
    }
    assert!(caught > 20, "{}: {caught} deletions caught", t.scenario.name);
}

#[test]
fn deleting_any_state_changing_step_of_the_homelab_plan_fails_check() {
    every_state_changing_deletion_is_caught(&topology(include_str!("../../scenarios/homelab-rightsized.yaml")));
}

#[test]
fn deleting_any_state_changing_step_of_the_five_master_plan_fails_check() {
    every_state_changing_deletion_is_caught(&topology(include_str!("../../scenarios/five-masters.yaml")));
}

#[test]
fn deleting_any_state_changing_step_of_a_kubernetes_1_31_plan_fails_check() {
    every_state_changing_deletion_is_caught(&topology(include_str!("../../scenarios/two-hypervisors.yaml")));
}

/// The state after `actions` from `c`, or `None` where one is refused.
fn applied(t: &Topology, c: Cluster, actions: &[Action]) -> Option<Cluster> {
    actions.iter().try_fold(c, |c, a| action::apply(&c, t, *a).ok())
}

/// Every pair of adjacent steps swapped in turn: the order check refuses the swap naming both
/// steps, or the two steps commute in the model (either order leaves the same state), or
/// `plan check` fails the mutant.
fn every_adjacent_swap_is_refused_commutes_or_caught(t: &Topology) -> (usize, usize, usize) {
    let plan = planner::generate(t);
    let (mut refused, mut commute, mut caught) = (0, 0, 0);
    let mut before = Cluster::initial(t);
    for i in 0..plan.steps.len() - 1 {
        let (a, b) = (&plan.steps[i], &plan.steps[i + 1]);
        let mut mutant = plan.clone();
        mutant.steps.swap(i, i + 1);
        if let Err(e) = mutant.check_order() {
            let why = e.to_string();
            assert!(why.contains(&format!("step {}", a.id)) && why.contains(&format!("step {}", b.id)), "{why}");
            refused += 1;
        } else {
            let ab = applied(t, before, &[a.actions.as_slice(), b.actions.as_slice()].concat());
            let ba = applied(t, before, &[b.actions.as_slice(), a.actions.as_slice()].concat());
            if ab.is_some() && ab.map(|c| timeless(&c)) == ba.map(|c| timeless(&c)) {
                commute += 1;
            } else {
                assert_eq!(
                    check(t, &mutant, CheckOptions { depth: 1 }).verdict,
                    Verdict::Fail,
                    "{}: swapping {} and {} passes check, though the steps do not commute in the model",
                    t.scenario.name,
                    a.id,
                    b.id
                );
                caught += 1;
            }
        }
        before = applied(t, before, &a.actions).expect("the generated plan runs without faults");
    }
    (refused, commute, caught)
}

#[test]
fn swapping_adjacent_steps_is_refused_commutes_or_fails_check() {
    for text in [include_str!("../../scenarios/homelab-rightsized.yaml"), include_str!("../../scenarios/five-masters.yaml")] {
        let t = topology(text);
        let (refused, commute, caught) = every_adjacent_swap_is_refused_commutes_or_caught(&t);
        eprintln!("{}: {refused} swaps refused, {commute} commute, {caught} fail check", t.scenario.name);
        assert!(refused > 20 && commute > 0, "{}: {refused} refused, {commute} commute, {caught} caught", t.scenario.name);
    }
}

/// Which operations a mutant loses.
type Picks = dyn Fn(&plan_model::operation::Operation) -> bool;

/// Deletes from every step each operation `edit` names, keeping the rest (the apply after it).
fn without_edit(t: &Topology, plan: &Plan, edit: &Picks) -> (Plan, usize) {
    let mut mutant = plan.clone();
    let mut removed = 0;
    for step in &mut mutant.steps {
        let before = step.operations.len();
        step.operations.retain(|o| !edit(o));
        if step.operations.len() != before {
            removed += before - step.operations.len();
            step.derive(t).expect("the rest of the step still derives");
        }
    }
    (mutant, removed)
}

#[test]
fn deleting_the_repo_edit_before_an_apply_fails_check_the_apply_keeps_the_old_declaration() {
    use plan_model::operation::Operation;
    let edits: [(&str, &Picks); 3] = [
        ("declare-dns-records", &|o| matches!(o, Operation::DeclareDnsRecords { .. })),
        ("edit-template", &|o| matches!(o, Operation::EditTemplate)),
        ("declare-vm", &|o| matches!(o, Operation::DeclareVm { .. })),
    ];
    for text in [include_str!("../../scenarios/homelab-rightsized.yaml"), include_str!("../../scenarios/five-masters.yaml")] {
        let t = topology(text);
        let plan = planner::generate(&t);
        assert_eq!(check(&t, &plan, CheckOptions { depth: 1 }).verdict, Verdict::Pass, "{} passes unmutated", t.scenario.name);
        for (name, edit) in &edits {
            let (mutant, removed) = without_edit(&t, &plan, edit);
            assert!(removed > 0, "{}: the plan has {name}", t.scenario.name);
            let report = check(&t, &mutant, CheckOptions { depth: 1 });
            assert_eq!(report.verdict, Verdict::Fail, "{}: without {name} the applies keep the old declaration", t.scenario.name);
        }
    }
}

#[test]
fn a_plan_without_the_vm_snapshot_fails_check_the_worst_case_has_nothing_to_rebuild_from() {
    use plan_model::operation::Operation;
    for text in [include_str!("../../scenarios/homelab-rightsized.yaml"), include_str!("../../scenarios/five-masters.yaml")] {
        let t = topology(text);
        let plan = planner::generate(&t);
        let (mutant, removed) = without_edit(&t, &plan, &|o| matches!(o, Operation::VmSnapshot { .. }));
        assert_eq!(removed, 1, "{}", t.scenario.name);
        let report = check(&t, &mutant, CheckOptions { depth: 1 });
        assert_eq!(report.verdict, Verdict::Fail, "{}", t.scenario.name);
        assert!(report.violations.iter().any(|v| v.invariant == "vm-snapshot-taken"), "{}: {:?}", t.scenario.name, report.violations);
    }
}
