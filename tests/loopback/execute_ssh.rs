//! `plan execute` before and beneath its steps: the SSH transport against sshd servers this test
//! starts on 127.0.20.x (the fixture hosts of tests/common/fixture.rs), batches on every host at
//! once, a deadline that stops the remote command, the loopback guard's questions to a host; and
//! every refusal before a step runs: a plan the check rejects, an address or a workstation off
//! loopback, a socket directory others may write, hosts that fail the preflight, no terminal to
//! confirm on. Whole runs are in tests/loopback/execute.rs.

use crate::common;

use common::fixture::{plan, run, sshd_available, text, write, Lab, DIRECT, HOSTS, LOOPBACK, OVERRIDE, WAIT_S};
use plan_lab::host::{FixtureHost, FixtureHosts, TmpDir};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The loopback scenario with new masters too big for its hypervisor: `plan check` rejects it
/// (hypervisor-ram), and every address is still loopback. The embedded homelab is never executed
/// but with --dry-run.
fn rejected_loopback_scenario(dir: &Path) -> PathBuf {
    let scenario = std::fs::read_to_string(LOOPBACK).expect("the loopback scenario");
    let over = scenario
        .lines()
        .map(|line| {
            if line.contains("name: lab-cp-2") || line.contains("name: lab-cp-3") {
                line.replace("ram_gb: 4", "ram_gb: 32")
            } else {
                line.replace("ram_physical_gb: 128", "ram_physical_gb: 32")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(over, scenario, "the loopback scenario still has the figures this test raises");
    let path = dir.join("over-committed.yaml");
    write(&path, &over);
    path
}

#[test]
fn a_plan_the_check_rejects_is_refused_before_anything_connects() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = rejected_loopback_scenario(dir.path());
    let ssh_config = dir.path().join("ssh_config");
    write(&ssh_config, "");
    let state = dir.path().join("state");
    let args = ["--scenario", scenario.to_str().unwrap(), "execute", "--yes", "--state-dir", state.to_str().unwrap()];
    let out = plan(&[&args[..], &["--ssh-config", ssh_config.to_str().unwrap()]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("plan check rejects this plan") && text(&out).contains("hypervisor-ram"), "{}", text(&out));
    assert!(!state.join("journal.jsonl").exists(), "nothing was started");
}

#[test]
fn the_loopback_guard_refuses_an_address_off_loopback() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    let scenario = std::fs::read_to_string(LOOPBACK).unwrap().replace("address: 127.0.20.22", "address: 192.0.2.22");
    let path = dir.path().join("off-loopback.yaml");
    write(&path, &scenario);
    let state = dir.path().join("state");
    // An explicit empty ssh config: the developer's own is never read.
    let ssh_config = dir.path().join("ssh_config");
    write(&ssh_config, "");
    let (scenario, state, ssh_config) = (path.to_str().unwrap(), state.to_str().unwrap(), ssh_config.to_str().unwrap());
    let out = plan(
        &["--scenario", scenario, "execute", "--yes", OVERRIDE[0], OVERRIDE[1], "--state-dir", state, "--ssh-config", ssh_config],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refused lab-wk-2 (192.0.2.22): PLAN_LOOPBACK_ONLY=1"), "{}", text(&out));
    // Refused before the first connection: lab-cp-1 (first in the plan) was not tried, nothing journalled.
    assert!(!Path::new(state).join("journal.jsonl").exists(), "refused before the run started: {}", text(&out));
    assert!(!text(&out).contains("ssh lab-cp-1"), "{}", text(&out));
}

#[test]
fn a_shared_socket_directory_another_user_may_write_is_refused() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    // A state directory whose path is too long for a socket sends the control sockets to
    // $TMPDIR/plan-ssh-<uid>; here someone else made that first, open to all.
    let tmp = dir.path().join("tmp");
    // SAFETY: getuid reads this process's real uid; it cannot fail and touches no memory.
    let shared = tmp.join(format!("plan-ssh-{}", unsafe { libc::getuid() }));
    std::fs::create_dir_all(&shared).unwrap();
    run("chmod", &["777", shared.to_str().unwrap()]);
    let state = dir.path().join("a-state-directory-whose-path-is-too-long-for-a-unix-socket-path-of-108-bytes");
    let ssh_config = dir.path().join("ssh_config");
    write(&ssh_config, "");
    let args = ["--scenario", LOOPBACK, "execute", "--yes", OVERRIDE[0], OVERRIDE[1], "--state-dir", state.to_str().unwrap()];
    let out = plan(&[&args[..], &["--ssh-config", ssh_config.to_str().unwrap()]].concat(), &[("TMPDIR", tmp.to_str().unwrap())]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains(&format!("{}: the control socket directory is writable by other users", shared.display())), "{shown}");
    assert!(!std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default().contains("command-started"), "nothing ran");
}

#[test]
fn the_ssh_transport_runs_a_batch_on_every_host_at_once_and_answers_in_order() {
    use plan_exec::guard::Guard;
    use plan_exec::ssh::{OpensshTransport, SshOptions};
    use plan_exec::target::{HostTarget, Place};
    use plan_exec::transport::{FileRead, Request, Transport};
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let options = SshOptions { config: Some(lab.path("ssh_config")), control_dir: lab.path("ssh") };
    let mut transport = OpensshTransport::new(options, Guard::LOOPBACK_ONLY).expect("the transport");
    let hosts: Vec<HostTarget> =
        HOSTS.iter().map(|(name, address)| HostTarget { name: name.to_string(), address: *address, user: "root".to_string() }).collect();
    // Each command says it started, then waits until all have: one by one, the first would wait
    // for the others until its deadline and the batch would fail.
    let barrier = lab.path("barrier");
    std::fs::create_dir(&barrier).unwrap();
    let shells: Vec<String> = hosts
        .iter()
        .map(|h| {
            format!(
                "touch {dir}/{name}; for i in $(seq 100); do [ $(ls {dir} | wc -l) -ge {n} ] && echo {name} && exit 0; /bin/sleep 0.05; done; exit 9",
                dir = barrier.display(),
                name = h.name,
                n = hosts.len()
            )
        })
        .collect();
    let work: Vec<(Place, Request<'_>)> = hosts
        .iter()
        .zip(&shells)
        .map(|(h, shell)| {
            (Place::Host(h.clone()), Request { step: "batch", shell, stdin: None, secret: false, timeout: Duration::from_secs(WAIT_S) })
        })
        .collect();
    let done = transport.run_each(&work);
    let said: Vec<String> = done.into_iter().map(|d| d.expect("ran").stdout.trim().to_string()).collect();
    assert_eq!(said, HOSTS.iter().map(|(name, _)| name.to_string()).collect::<Vec<_>>(), "all met at the barrier, answers in order");

    // A batch of reads: each host's kubelet.conf, and files hosts lack, a host's reads interleaved
    // with another's (one command per host reads them; each answer comes back in its place).
    let reads: Vec<(HostTarget, &str)> = vec![
        (hosts[1].clone(), "/etc/kubernetes/kubelet.conf"),
        (hosts[0].clone(), "/etc/kubernetes/no-such-file"),
        (hosts[2].clone(), "/etc/kubernetes/kubelet.conf"),
        (hosts[1].clone(), "/etc/kubernetes/no-such-file"),
        (hosts[0].clone(), "/etc/kubernetes/kubelet.conf"),
        (hosts[1].clone(), "/etc/kubernetes"),
    ];
    let read = transport.read_and_run(&reads, &[]).read;
    assert_eq!(read.len(), reads.len());
    assert!(matches!(&read[0], Ok(FileRead::Present(text)) if text.contains(DIRECT)), "{read:?}");
    assert!(matches!(&read[1], Ok(FileRead::Missing)), "{read:?}");
    assert!(matches!(&read[2], Ok(FileRead::Present(_))), "{read:?}");
    assert!(matches!(&read[3], Ok(FileRead::Missing)), "{read:?}");
    assert!(matches!(&read[4], Ok(FileRead::Present(text)) if text.contains("server:")), "{read:?}");
    let directory = read[5].as_ref().unwrap_err().to_string();
    assert!(
        directory.contains("/etc/kubernetes") && directory.contains("Is a directory") && !directory.contains("No such file"),
        "{directory}"
    );
}

/// The loopback guard asks a host what its text cannot say, over the same connection, before the
/// command runs: the server the host's `kubectl` would reach (the lab's kubectl shim answers
/// `config view --minify` from root's `~/.kube/config`, as kubectl does) and whether `getent`
/// resolves from files only. A kubeconfig naming 10.0.20.99 refuses the command and nothing else
/// runs; one naming a loopback address runs it; the server is asked again at every command.
#[test]
fn the_guard_asks_the_host_where_kubectl_goes_and_how_names_resolve() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    use plan_exec::guard::Guard;
    use plan_exec::ssh::{OpensshTransport, SshOptions};
    use plan_exec::target::{HostTarget, Place};
    use plan_exec::transport::{Request, Transport};
    use plan_lab::executor_lab;
    use plan_lab::host::RootHome;
    if !sshd_available() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let fixture = vec![
        FixtureHost { name: "lab-cp-1".to_string(), address: HOSTS[0].1 },
        FixtureHost { name: "lab-wk-1".to_string(), address: HOSTS[1].1 },
    ];
    let mut hosts = FixtureHosts::prepare(r, fixture, TmpDir::Shared)
        .expect("fixture hosts prepared")
        .with_root_home(RootHome::PerHost)
        .with_resolver("127.0.0.1 localhost\n127.0.20.10 lab-cp-1 lab-cp-1.lab.test\n".to_string());
    let t = plan_model::topology::Topology::new(
        &plan_model::validate::parse_scenario(include_str!("../../scenarios/loopback.yaml")).expect("the loopback scenario parses"),
    );
    executor_lab::write_host_shims(&hosts.shims(), r, &t).expect("the lab's shims");
    let kubeconfig =
        |host: &str, server: &str| write(&r.join(format!("hosts/{host}/root/.kube/config")), &executor_lab::kubeconfig_file(server, b"CA"));
    kubeconfig("lab-cp-1", "https://10.0.20.99:6443");
    kubeconfig("lab-wk-1", "https://127.0.20.10:6443");
    hosts.start().expect("fixture hosts start");
    let options = SshOptions { config: Some(hosts.ssh_config()), control_dir: r.join("ssh") };
    let mut transport = OpensshTransport::new(options, Guard::LOOPBACK_ONLY).expect("the transport");
    let host = |i: usize| Place::Host(HostTarget { name: HOSTS[i].0.to_string(), address: HOSTS[i].1, user: "root".to_string() });
    let request = |shell| Request { step: "t", shell, stdin: None, secret: false, timeout: Duration::from_secs(WAIT_S) };
    let kubectl_log = || std::fs::read_to_string(r.join("kubectl.log")).unwrap_or_default();
    let ask = "config view --minify -o jsonpath={.clusters[0].cluster.server}";

    for (shell, who) in [("kubectl get nodes", "kubectl"), ("sudo kubectl get nodes", "sudo kubectl")] {
        let refused = transport.run(&host(0), &request(shell)).expect_err(shell);
        assert!(matches!(refused, plan_exec::ExecError::NotLoopback { .. }), "{refused}");
        assert!(refused.to_string().contains(&format!("lab-cp-1: {who} reaches https://10.0.20.99:6443")), "{refused}");
    }
    assert_eq!(kubectl_log(), format!("{ask}\n{ask}\n"), "the host was asked twice and nothing else ran");

    // lab-wk-1's kubeconfig names a loopback address: the command runs (no apiserver answers there).
    let ran = transport.run(&host(1), &request("kubectl get nodes")).expect("it ran");
    assert!(ran.stderr.contains("Unable to connect to the server"), "{ran:?}");
    assert!(kubectl_log().ends_with(&format!("{ask}\nget nodes\n")), "{}", kubectl_log());
    // Asked again at the next command: a kubeconfig moved off loopback is refused.
    kubeconfig("lab-wk-1", "https://10.0.20.99:6443");
    assert!(transport.run(&host(1), &request("kubectl get nodes")).is_err());
    std::fs::remove_file(r.join("hosts/lab-wk-1/root/.kube/config")).expect("remove the kubeconfig");
    let none = transport.run(&host(1), &request("kubectl get nodes")).expect_err("no kubeconfig");
    assert!(none.to_string().contains("lab-wk-1: kubectl reaches no server"), "{none}");

    // The hosts resolve from /etc/hosts only (`hosts: files`): getent runs.
    let resolved = transport.run(&host(0), &request("getent hosts lab-cp-1.lab.test")).expect("getent ran");
    assert_eq!(resolved.stdout.split_whitespace().next(), Some("127.0.20.10"), "{resolved:?}");
    drop(transport);
    hosts.stop();
}

#[test]
fn a_remote_command_past_its_deadline_is_stopped_on_the_host() {
    use plan_exec::guard::Guard;
    use plan_exec::ssh::{OpensshTransport, SshOptions};
    use plan_exec::target::{HostTarget, Place};
    use plan_exec::transport::{Request, Transport};
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let options = SshOptions { config: Some(lab.path("ssh_config")), control_dir: lab.path("state/ssh") };
    let mut transport = OpensshTransport::new(options, Guard::LOOPBACK_ONLY).expect("the transport starts");
    let host = Place::Host(HostTarget { name: HOSTS[1].0.to_string(), address: HOSTS[1].1, user: "root".to_string() });
    let marker = lab.path("survived");
    // The remote command outlives its deadline by far; the channel closing alone would not stop it.
    let shell = format!("/bin/sleep 3; echo survived > {}", marker.display());
    let request = Request { step: "t", shell: &shell, stdin: None, secret: false, timeout: Duration::from_secs(1) };
    let started = Instant::now();
    let result = transport.run(&host, &request);
    assert!(matches!(result, Err(plan_exec::ExecError::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "reported at the deadline, not when the command ended");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!marker.exists(), "the remote command was stopped at its deadline");
}

/// Hosts that do not answer: `plan execute` stops at its preflight with a list of what failed and
/// what to fix — no step runs, no journal is begun, no recovery is proposed (nothing changed) —
/// and `plan preflight` reports every machine the same way.
#[test]
fn hosts_that_do_not_answer_fail_the_preflight_and_nothing_runs() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    // The loopback scenario on a range of its own, where no test's sshd listens: every connection
    // is refused.
    let silent = Silent::write(dir.path(), &std::fs::read_to_string(LOOPBACK).unwrap().replace("127.0.20.", "127.0.77."));
    let (scenario, state, ssh_config) = (silent.scenario.as_str(), silent.state.as_str(), silent.ssh_config.as_str());
    let shown = silent.execute_refused_at_the_preflight("lab-cp-1");
    assert!(shown.contains("fix: make root@127.0.77.10 reachable over SSH"), "{shown}");

    let out = plan(&["--scenario", scenario, "preflight", "--state-dir", state, "--ssh-config", ssh_config], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for machine in ["lab-cp-1", "lab-wk-1", "lab-wk-2", "lab-lb", "lab-hv"] {
        assert!(shown.contains(&format!("FAIL ssh and sudo on {machine}")), "{machine}: {shown}");
    }
    // The new masters do not exist yet: not asked; their addresses must be free, and are.
    assert!(!shown.contains("ssh and sudo on lab-cp-2"), "{shown}");
    assert!(shown.contains("ok   the VIP 127.0.77.99 is free"), "{shown}");
    assert!(shown.contains("checks failed"), "{shown}");
}

/// The same with five masters and other names, moved onto a loopback range where nothing
/// listens: every machine that exists before the migration is named (the first master, three
/// workers, the load balancer box, two hypervisors), the four new masters are not asked, and
/// nothing runs.
#[test]
fn hosts_of_five_masters_that_do_not_answer_fail_the_preflight_and_nothing_runs() {
    // Range zero (127.0.0.0/16) is held: no lab listens there while this runs.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    let five = std::fs::read_to_string(common::scenario("five-masters.yaml")).unwrap();
    let moved = five.replace("198.51.100.", "127.0.79.").replace("192.0.2.", "127.0.78.");
    assert!(!moved.contains("198.51.100.") && !moved.contains("192.0.2."), "every address moved onto loopback");
    let silent = Silent::write(dir.path(), &moved);
    let (scenario, state, ssh_config) = (silent.scenario.as_str(), silent.state.as_str(), silent.ssh_config.as_str());
    let out = plan(&["--scenario", scenario, "preflight", "--state-dir", state, "--ssh-config", ssh_config], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for machine in ["ctl-a", "wrk-1", "wrk-2", "wrk-3", "haproxy-box", "pve-a", "pve-b"] {
        assert!(shown.contains(&format!("FAIL ssh and sudo on {machine}")), "{machine}: {shown}");
    }
    for new_master in ["ctl-b", "ctl-c", "ctl-d", "ctl-e"] {
        assert!(!shown.contains(&format!("ssh and sudo on {new_master}")), "{new_master}: {shown}");
    }
    assert!(shown.contains("ok   the VIP 127.0.79.5 is free"), "{shown}");
    silent.execute_refused_at_the_preflight("ctl-a");
}

/// A scenario whose hosts do not answer, written beside an ssh config that gives up soon, and a
/// state directory for the run.
struct Silent {
    scenario: String,
    state: String,
    ssh_config: String,
}

impl Silent {
    fn write(dir: &Path, scenario: &str) -> Silent {
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let silent = Silent { scenario: path("silent.yaml"), state: path("state"), ssh_config: path("ssh_config") };
        write(Path::new(&silent.scenario), scenario);
        write(Path::new(&silent.ssh_config), "ConnectTimeout 2\n");
        silent
    }

    /// `plan execute` refused at its preflight, which names `first_master`: exit 1, nothing run,
    /// no halt, no recovery, no journal begun. What it printed.
    fn execute_refused_at_the_preflight(&self, first_master: &str) -> String {
        let out =
            plan(&["--scenario", &self.scenario, "execute", "--yes", "--state-dir", &self.state, "--ssh-config", &self.ssh_config], &[]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(shown.contains(&format!("FAIL ssh and sudo on {first_master}")), "{shown}");
        assert!(shown.contains("nothing was run, so there is nothing to undo"), "{shown}");
        assert!(!shown.contains("recovery") && !shown.contains("HALTED"), "no halt, no recovery: {shown}");
        assert!(!Path::new(&self.state).join("journal.jsonl").exists(), "no journal begun: {shown}");
        shown
    }
}

/// Off a terminal, without `--yes`, nobody can answer the phase prompts: refused before anything
/// runs (exit 2), never "declined" as if a person had said no.
#[test]
fn without_a_terminal_or_yes_the_run_is_refused_up_front() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for args in
        [&["--scenario", LOOPBACK, "execute", "--state-dir", state][..], &["--scenario", LOOPBACK, "rollback", "--state-dir", state][..]]
    {
        let out = plan(args, &[]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{shown}");
        assert!(shown.contains("no terminal to confirm each phase and recovery on: pass --yes"), "{shown}");
        assert!(!shown.contains("declined"), "{shown}");
        assert!(!Path::new(state).join("journal.jsonl").exists(), "nothing started: {shown}");
    }
}

/// `--workstation` names a host the ssh config sends off loopback: refused with the other hosts,
/// before the lock, the journal or any connection.
#[test]
fn a_workstation_the_ssh_config_sends_off_loopback_is_refused_before_anything_runs() {
    // At the loopback scenario's own addresses: no lab beside it there.
    let _range = common::fixture::hold_range_zero();
    let dir = tempfile::tempdir().unwrap();
    let ssh_config = dir.path().join("ssh_config");
    write(&ssh_config, "Host bastion\n  HostName 192.0.2.5\n");
    let state = dir.path().join("state");
    let (state, ssh_config) = (state.to_str().unwrap(), ssh_config.to_str().unwrap());
    let args = ["--scenario", LOOPBACK, "execute", "--yes", OVERRIDE[0], OVERRIDE[1], "--state-dir", state, "--ssh-config", ssh_config];
    for command in [&args[..], &["--scenario", LOOPBACK, "preflight", "--state-dir", state, "--ssh-config", ssh_config][..]] {
        let out = plan(&[command, &["--workstation", "ops@bastion"]].concat(), &[]);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(shown.contains("refused workstation ops@bastion: PLAN_LOOPBACK_ONLY=1") && shown.contains("192.0.2.5"), "{shown}");
        assert!(!Path::new(state).join("journal.jsonl").exists() && !Path::new(state).join("lock").exists(), "{shown}");
    }
    let out = plan(&[&args[..], &["--workstation", "-oProxyCommand=sh"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
