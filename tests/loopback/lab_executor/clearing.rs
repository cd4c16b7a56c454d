//! Faults that clear by themselves, through the executor on the lab: a master rebooting
//! (before a step, inside one, inside its join, right after a step's commands or the failover
//! test's own reboot), a partition, a hypervisor down for a while, the operator away past the
//! certificate key's TTL, the LB's bootstrap script re-run. The executor waits for what does not
//! answer, before a step and at a halt, and the twin waits for the fault the same way.

use super::*;

/// hv-east down for a while as 3.6 begins (the outage `plan check` places): the lab crashes the
/// hypervisor's host and cp-gamma's, and boots them again once the executor waits for cp-gamma;
/// the executor waits, nothing differs, and 3.6 runs: the run completes, as the twin's
/// wait-and-retry does.
#[test]
fn a_hypervisor_down_for_a_while_is_waited_for_and_the_run_completes() {
    let three = scenario("three-hypervisors.yaml");
    let fault = ["--fault", "hypervisor-failure", "--fail", "hv-east", "--for", "10m", "--at", "3.6@0"];
    let Some((code, report)) = rehearse_scenario_via_execute(&["--scenario", &three], None, None, &fault) else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(text(&report["executor_outcome"]), "completed", "{report:#}");
    let path = text(&row(&report, "recovery path")["lab"]).to_string();
    assert_eq!(path, "wait for the fault to clear, re-run the step");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"hv-east: booted after the fault"), "{actions:#?}");
}

/// k8s-master-2 reboots as phase 3's join begins: with two voters, real etcd loses quorum while it
/// is down; the executor finds the host unreachable before 3.5 and waits for it, as `plan execute
/// --wait-for-host` does (scaled as the lab's reboot is). The host boots (sshd, then etcd started
/// again on its data inside the host), it answers, nothing differs, and 3.5 runs: the run
/// completes, as the twin's wait-and-retry does, with no halt and nothing done by hand. (In a slice
/// of phase 3 from its upload-certs on, from where the whole plan stands there: the fault's own
/// handling is what takes the time; the whole plan's run is in docs/lab.md.)
#[test]
fn a_master_rebooting_as_the_next_join_begins_is_waited_for_by_the_executor_and_the_run_completes() {
    let Some((code, report)) = rehearse_scenario_via_execute(
        &[],
        None,
        Some("3.3,3.4,3.5,3.6,3.7,3.8"),
        &["--fail", "master-2", "--at", "3.5@0", "--fault", "reboot"],
    ) else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    // Real etcd lost quorum while the host was down, as the twin says (two voters, one down).
    assert!(text(&row(&report, "quorum right after the fault (a write commits)")["lab"]).starts_with("no ("), "{report:#}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master, k8s-master-2, k8s-master-3");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"k8s-master-2: booted after the fault, etcd started on its data"), "{actions:?}");
    assert_waited_before_without_a_halt(&actions, "3.5", "k8s-master-2");
}

/// k8s-master-2 reboots inside 2.6, after its first command (the rbac stack's apply, from the
/// infra repo) and before the next, which runs on it: that command cannot reach it and the
/// executor halts. At the halt it waits for what does not answer; the host boots and answers, so
/// the fault was temporary and the executor proposes to wait and run the step again, as the twin
/// waits. The lab carries the proposal out (`plan recover`: nothing runs, the step stays as it was
/// cut) and resumes: 2.6 is finished and the run completes. (In a slice, 2.3 to 2.8.)
#[test]
fn a_master_rebooting_inside_a_step_is_waited_for_at_the_halt_and_the_step_is_finished() {
    let Some((code, report)) = rehearse_scenario_via_execute(
        &[],
        None,
        Some("2.3,2.4,2.5,2.6,2.7,2.8"),
        &["--fail", "master-2", "--at", "2.6@1", "--fault", "reboot"],
    ) else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    assert!(text(&row(&report, "quorum right after the fault (a write commits)")["lab"]).starts_with("no ("), "{report:#}");
    let actions = lab_actions(&report);
    let wait = "wait for the fault to clear, re-run the step";
    assert!(actions.contains(&format!("the executor proposes at the halt: {wait} (nothing to do)").as_str()), "{actions:?}");
    assert!(actions.iter().any(|a| a.starts_with(&format!("recovery chosen by the executor: {wait}"))), "{actions:?}");
}

/// k8s-master-2 reboots right after the failover test's `sudo reboot` of k8s-master (6.1@1: the
/// model's shutdown ends with that command, not with the drain before it). Two voters of three
/// are down: the watch through the VIP fails and the executor halts, waits, and runs the step
/// again, as the twin does. That holds only if the lab's planned reboot lasts through the watch
/// as a real one does (it ends once `kubectl wait` asks for the node): when it lasted 1.5 s, and
/// the fault struck after the drain, real etcd had quorum again before the watch began and the
/// executor needed no recovery (2 rows disagreed). (In a slice, 6.1 and 6.2.)
#[test]
fn a_master_lost_for_a_while_during_the_failover_reboot_costs_quorum_and_the_step_is_run_again() {
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, Some("6.1,6.2"), &["--fail", "master-2", "--at", "6.1@1", "--fault", "reboot"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    assert!(text(&row(&report, "quorum right after the fault (a write commits)")["lab"]).starts_with("no ("), "{report:#}");
    let actions = lab_actions(&report);
    let down = actions.iter().position(|a| a.starts_with("k8s-master: down for a reboot")).expect("the planned reboot");
    let struck = actions.iter().position(|a| a.starts_with("k8s-master-2: the fault at 6.1: host crashed")).expect("the fault");
    assert!(down < struck, "the fault strikes once `sudo reboot` took k8s-master down: {actions:?}");
}

/// k8s-master-2 reboots right after 2.8's LB deploy (2.8@2): the twin's next check, every pool
/// backend UP, fails, and it waits and runs the step again. The executor's look after the step
/// waits 20 s for what does not answer (12 s on the lab), far less than a real reboot: the lab's reboot does not
/// clear on that look (the twin's run has it over only after its halt), the executor halts, waits
/// for the host at the halt, finds it back and proposes waiting and running the step again.
/// Before, the lab's reboot cleared within that look (no recovery: the path disagreed), and with
/// that fixed the executor took the host as dead at the halt and proposed `--force-new-cluster`.
/// (In a slice, 2.8 and 3.1.)
#[test]
fn a_master_rebooting_after_a_steps_commands_is_waited_for_at_the_halt_not_taken_as_dead() {
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, Some("2.8,3.1"), &["--fail", "master-2", "--at", "2.8@2", "--fault", "reboot"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    let actions = lab_actions(&report);
    let wait = "the executor proposes at the halt: wait for the fault to clear, re-run the step";
    assert!(actions.iter().any(|a| a.starts_with(wait)), "{actions:?}");
}

/// k8s-master-2 reboots inside its own `kubeadm join`, right after the learner add (2.5@1): the
/// join's session dies with the host. Quorum holds (a learner does not vote). At the halt the
/// executor waits, the host answers, and it believes the join cut where the hosts show it (the
/// learner added, nothing after it), so running the step again applies and comes first; the lab
/// carries it out and resumes: the halt's sweep took the join secrets off the host, so they are
/// made and copied again, the cut join is cleaned up (member removed, `kubeadm reset`) and the
/// join runs again; the run completes, as the twin's. (In a slice, 2.3 to 2.6.)
#[test]
fn a_master_rebooting_inside_its_join_is_waited_for_cleaned_up_and_joined_again() {
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, Some("2.3,2.4,2.5,2.6"), &["--fail", "master-2", "--at", "2.5@1", "--fault", "reboot"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    assert!(text(&row(&report, "quorum right after the fault (a write commits)")["lab"]).starts_with("yes"), "{report:#}");
    let actions = lab_actions(&report);
    assert!(actions.iter().any(|a| a.starts_with("k8s-master-2: the fault (struck inside kubeadm join): host crashed")), "{actions:?}");
    let wait = "wait for the fault to clear, re-run the step";
    assert!(actions.contains(&format!("the executor proposes at the halt: {wait} (nothing to do)").as_str()), "{actions:?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master, k8s-master-2");
}

/// k8s-master-3 is cut off as 4.2 begins: its etcd frozen for real (SIGSTOP, in its host). Quorum
/// holds (two of three); the executor's etcd observer finds the member not answering before 4.2
/// and waits for it, as for a host that does not answer; the partition heals (SIGCONT, after the
/// lab's reboot time, once the executor said it waits), nothing differs, 4.2 runs and the run
/// completes, as the twin waits. (In the slice 4.1–4.3. Under load this once healed inside the
/// executor's first look, and HAProxy's check lagging the healed member halted the run: the
/// partition now lasts until the executor has seen it, and a lagging check before a step is
/// given time to settle, as after one.)
#[test]
fn a_partitioned_master_through_the_executor_is_waited_for_until_it_heals_then_the_run_completes() {
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, Some("4.1,4.2,4.3"), &["--fail", "master-3", "--at", "4.2@0", "--fault", "partition"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "wait for the fault to clear, re-run the step");
    // Two of three voters answer: quorum holds, as the twin says.
    assert!(text(&row(&report, "quorum right after the fault (a write commits)")["lab"]).starts_with("yes"), "{report:#}");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"k8s-master-3: the fault at 4.2: SIGSTOP to its etcd"), "{actions:?}");
    assert!(actions.contains(&"k8s-master-3: the partition heals: SIGCONT to its etcd"), "{actions:?}");
    assert_waited_before_without_a_halt(&actions, "4.2", "");
}

/// The operator is away for 3 h as 2.5 begins: the lab's clock jumps 3 h (the system clock is
/// untouched), so the certificate key uploaded at 2.3 is past its 2 h TTL when the real join (the
/// shim, as kubeadm) asks for it, and the executor halts at 2.5. It reads kubeadm's words for the
/// expiry and proposes the twin's recovery, the renewal by the plan's own commands of 2.3 and 2.4
/// (new key, new token); the lab, as operator, carries it out (`plan recover`) and resumes, and
/// 2.5 runs again whole: the run completes, as in the twin. (In a slice, 2.3 to 2.6.)
#[test]
fn an_operator_away_for_three_hours_expires_the_certificate_key_and_a_renewal_completes_the_run() {
    let Some((code, report)) =
        rehearse_scenario_via_execute(&[], None, Some("2.3,2.4,2.5,2.6"), &["--fault", "operator-away", "--for", "3h", "--at", "2.5@0"])
    else {
        return;
    };
    assert_recovered_and_completed(code, &report, "re-upload certs and create a new token, re-run the step");
    let actions = lab_actions(&report);
    assert!(actions.contains(&"the fault at 2.5: the lab's clock jumps 3 h (the operator away)"), "{actions:?}");
    // kubeadm's own words for an expired kubeadm-certs Secret (copycerts.go, getSecret).
    assert!(
        actions.iter().any(|a| a.starts_with("kubeadm join on k8s-master-2: failed: error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired.")),
        "{actions:?}"
    );
    let renewal =
        "re-upload certs and create a new token, re-run the step (upload control-plane certs (kubeadm-certs Secret); create a join token)";
    assert!(actions.contains(&format!("the executor proposes at the halt: {renewal}").as_str()), "{actions:?}");
    assert!(actions.contains(&format!("recovery chosen by the executor: {renewal}").as_str()), "{actions:?}");
    assert_eq!(text(&row(&report, "etcd voters (etcdctl member list)")["lab"]), "k8s-master, k8s-master-2");
}

/// `lb-reload` through the executor (loopback scenario, other names): right after 3.8 declares
/// lab-cp-3 in the bootstrap script, someone re-runs the script on the LB. Real HAProxy then
/// serves the declared pool before the step deploys it, as the twin's fault leaves it (a row read
/// from HAProxy's stats socket); the step's own deploy changes nothing more, and the run completes.
/// (In the slice 3.8–4.1: the lab starts as the twin's state before 3.8.)
#[test]
fn an_lb_reload_through_the_executor_serves_the_declared_pool_at_once_and_the_run_completes() {
    let loopback = scenario("loopback.yaml");
    let Some((code, report)) =
        rehearse_scenario_via_execute(&["--scenario", &loopback], None, Some("3.8,4.1"), &["--fault", "lb-reload", "--at", "3.8"])
    else {
        return;
    };
    assert_all_agree(&report);
    assert_eq!(code, 0, "{report:#}");
    let pool = row(&report, "the LB's pool right after the reset (HAProxy show stat)");
    assert_eq!((text(&pool["twin"]), text(&pool["lab"])), ("lab-cp-1, lab-cp-2, lab-cp-3", "lab-cp-1, lab-cp-2, lab-cp-3"), "{pool}");
    assert_eq!(pool["evidence"], "real");
    assert!(lab_actions(&report).iter().any(|a| a.starts_with("the fault at 3.8: the bootstrap script re-run on lab-lb")), "{report:#}");
    assert_eq!((text(&report["twin_outcome"]), text(&report["executor_outcome"])), ("completed", "completed"));
}
