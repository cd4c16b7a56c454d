//! Rehearsals of the five-master scenario: its plan applies stacks with `cd STACK && terragrunt
//! apply -auto-approve`, answered by the lab's IaC shim on the hosts' PATH.

use super::{lab_actions, rehearse_scenario_via_execute};
use crate::common::rehearsal::{assert_all_agree, row, text};
use crate::common::scenario;

/// ctl-a lost for good inside ctl-c's join (3.5@2), after the learner's etcd started and before
/// its promotion: two voters, one down, no quorum. The join hangs on the promotion and the
/// executor halts. ctl-a's host does not answer, and ctl-b's and ctl-c's etcd refuse the member
/// list, as etcd 3.5 does without quorum (the lab's etcd 3.4 answers it from its own copy; its
/// etcdctl shim asks a linearizable read first): nothing shows how far the join went. Before,
/// the executor took the step's end (ctl-c promoted: quorum with two of three), proposed writing
/// ctl-a off, and real etcd refused the write-off's `member remove` (5 rows disagreed). It now
/// asks the other masters when the first does not answer and believes the state that explains
/// their refusals: no quorum, and the twin's best, the quorum recovery, is carried out for real.
/// (Phase 3 only: the lab starts where the whole plan stands at 3.1; the whole plan agrees too,
/// in 40 s more.)
#[test]
fn the_first_master_lost_inside_a_join_before_its_promotion_is_recovered_from_a_survivor() {
    let five = scenario("five-masters.yaml");
    let phase_3 = Some("3.1,3.2,3.3,3.4,3.5,3.6,3.7,3.8");
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &five], None, phase_3, &["--fail", "ctl-a", "--at", "3.5@2"])
    else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert!(text(&row(&report, "recovery path")["lab"]).starts_with("quorum recovery"), "{report:#}");
    assert_eq!(text(&report["executor_outcome"]), "quorum recovered (RQ), the other new masters undone", "{report:#}");
    let actions = lab_actions(&report);
    assert!(actions.iter().any(|a| a.starts_with("the executor proposes at the halt: quorum recovery")), "{actions:#?}");
    assert!(!actions.iter().any(|a| a.starts_with("recovery: etcdctl member remove ctl-a")), "{actions:#?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "ctl-b");
}

/// ctl-a lost for good inside ctl-e's join (3c.5@2): four voters, three up, quorum holds, and the
/// join finishes. The executor halts on its look after the step (ctl-a silent) and, as the twin,
/// writes ctl-a off and goes on. Every command of 3c.5 had run: the plan goes on without ctl-a
/// from 3c.6, and the resume only looks at 3c.5. Before, the write-off pruned the plan from 3c.5
/// itself, so the resume ran the finished join again (the twin refused it: kubelet.conf exists),
/// and, that fixed, copied the join secrets the halt had swept again, which needs the dead
/// master to make them (27 rows disagreed).
#[test]
#[ignore = "long: scripts/long.sh runs it (docs/development.md#tests)"]
fn the_first_master_lost_after_a_join_ran_whole_is_written_off_and_the_join_is_not_run_again() {
    let five = scenario("five-masters.yaml");
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &five], None, None, &["--fail", "ctl-a", "--at", "3c.5@2"])
    else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert!(text(&report["executor_outcome"]).starts_with("went on without ctl-a (written off), halted at 8.1"), "{report:#}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "ctl-b, ctl-c, ctl-d, ctl-e");
    let actions = lab_actions(&report);
    assert!(actions.iter().any(|a| a.starts_with("recovery: write off ctl-a")), "{actions:#?}");
    assert!(!actions.iter().any(|a| a.contains("again") && a.contains("failed on ctl-a")), "{actions:#?}");
}
