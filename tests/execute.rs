//! `plan execute`, `plan status`, `plan rollback` end to end: a dry run of the homelab (which never
//! connects), and real runs over SSH against sshd servers this test starts on 127.0.20.x.
//!
//! Fixture hosts (`plan_lab::host`, shared with the lab's rehearsal through the executor): each
//! host of scenarios/loopback.yaml that the plan subset touches gets its own `/usr/sbin/sshd`,
//! listening on its own loopback address, started under `unshare --mount` with a per-host
//! directory bind-mounted over `/etc/kubernetes`, so every host has its own real kubelet.conf and
//! apiserver.crt at the real paths. Shims for sudo, systemctl, kubectl and sleep
//! on PATH record each call in a per-host log: the side effects the tests count.

use plan_lab::host::{FixtureHost, FixtureHosts, TmpDir};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PLAN: &str = env!("CARGO_BIN_EXE_plan");
const LOOPBACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/loopback.yaml");
/// The hosts the plan subsets touch: the existing master and the two workers.
const HOSTS: [(&str, Ipv4Addr); 3] =
    [("lab-cp-1", Ipv4Addr::new(127, 0, 20, 10)), ("lab-wk-1", Ipv4Addr::new(127, 0, 20, 21)), ("lab-wk-2", Ipv4Addr::new(127, 0, 20, 22))];
const DIRECT: &str = "server: https://127.0.20.10:6443";
/// The existing master: on Kubernetes 1.34 its kubelet stays on its own apiserver (4.3 verifies).
const MASTER: &str = "lab-cp-1";
const VIP: &str = "server: https://127.0.20.99:6443";
/// Bound on waiting for the executor to reach a point, or for its processes to end.
const WAIT_S: u64 = 20;

fn plan(args: &[&str], envs: &[(&str, &str)]) -> Output {
    // The tests run at once against the one loopback cluster: each call a cluster lock of its own
    // unless the test gives one (`PLAN_LOCK_DIR` in `envs`).
    let locks = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(PLAN);
    command.args(args).env("PLAN_LOOPBACK_ONLY", "1").env("PLAN_LOCK_DIR", locks.path()).stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("the plan binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("fixture tool runs");
    assert!(status.success(), "{program} {args:?} failed");
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("fixture paths have a parent")).expect("fixture dir");
    std::fs::write(path, content).expect("fixture file");
}

fn executable(path: &Path, content: &str) {
    write(path, content);
    run("chmod", &["755", path.to_str().expect("utf-8 path")]);
}

/// The fixture hosts (sshd servers, `plan_lab::host`) and files of one test; stops the servers
/// when dropped, failed test or not, after closing the executor's ControlMasters.
struct Lab {
    root: tempfile::TempDir,
    hosts: FixtureHosts,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A SIGKILLed executor cannot close its own ControlMasters.
        self.hosts.close_masters(&self.path("state/ssh"));
        self.hosts.stop();
    }
}

/// Whether sshd can run here; under CI it must.
fn sshd_available() -> bool {
    let usable = plan_lab::host::usable();
    if let Err(e) = &usable {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but fixture hosts cannot run: {e}: install openssh-server");
        eprintln!("skipping: {e} (not CI)");
    }
    usable.is_ok()
}

impl Lab {
    /// The fixture with its sshd servers answering: keys, shims, each host's files.
    fn start() -> Lab {
        Lab::start_with(&[])
    }

    /// [`Lab::start`], with `extra` hosts that have no files of the cluster (the workstation).
    fn start_with(extra: &[(&str, Ipv4Addr)]) -> Lab {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path().to_path_buf();
        let fixture_hosts =
            HOSTS.iter().chain(extra).map(|(name, address)| FixtureHost { name: name.to_string(), address: *address }).collect();
        let hosts = FixtureHosts::prepare(&r, fixture_hosts, TmpDir::Shared).expect("fixture hosts prepared");
        let shims = hosts.shims();
        executable(&shims.join("sudo"), "#!/bin/sh\n# sudo as root on a fixture host: its options (-n, -E, -H) change nothing here.\nwhile [ $# -gt 0 ]; do case \"$1\" in -*) shift ;; *) break ;; esac; done\nexec \"$@\"\n");
        executable(&shims.join("systemctl"), "#!/bin/sh\necho \"$*\" >> \"$PLAN_FIXTURE_HOST_DIR/systemctl.log\"\n");
        executable(&shims.join("sleep"), "#!/bin/sh\nexit 0\n");
        // kubectl on the workstation: logs each call; `wait` for node/lab-wk-2 hangs while the
        // file `slow` exists (the kill test strikes there).
        executable(
            &shims.join("kubectl"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in *node/lab-wk-2*) while [ -e {slow} ]; do /bin/sleep 0.1; done;; esac\nexit 0\n",
                log = r.join("workstation.log").display(),
                slow = r.join("slow").display()
            ),
        );
        for (name, _) in HOSTS {
            let kube = hosts.etc_kubernetes(name);
            write(
                &kube.join("kubelet.conf"),
                &format!("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: RklYVFVSRQ==\n    {DIRECT}\n  name: kubernetes\nkind: Config\n"),
            );
            if name == "lab-cp-1" {
                let pki = kube.join("pki");
                std::fs::create_dir_all(&pki).expect("pki");
                run(
                    "openssl",
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=kube-apiserver",
                        "-addext",
                        "subjectAltName=DNS:lab-cp-1,IP:10.96.0.1,IP:127.0.20.10",
                        "-keyout",
                        pki.join("apiserver.key").to_str().unwrap(),
                        "-out",
                        pki.join("apiserver.crt").to_str().unwrap(),
                    ],
                );
            }
        }
        let mut lab = Lab { root, hosts };
        if let Err(e) = lab.hosts.start() {
            panic!("fixture hosts did not start: {e}");
        }
        lab
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn sshd_log(&self, name: &str) -> String {
        self.hosts.sshd_log(name)
    }

    fn kubelet_conf(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("hosts/{name}/etc-kubernetes/kubelet.conf"))).expect("kubelet.conf")
    }

    fn restarts(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(&format!("hosts/{name}/systemctl.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "restart kubelet")
            .count()
    }

    /// A plan file of the loopback plan with only `steps`.
    fn plan_file(&self, steps: &[&str]) -> PathBuf {
        let shown = plan(&["--scenario", LOOPBACK, "show", "--format", "yaml"], &[]);
        assert!(shown.status.success(), "{}", text(&shown));
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&shown.stdout).expect("plan yaml");
        let kept: Vec<serde_yaml_ng::Value> = value["steps"]
            .as_sequence()
            .expect("steps")
            .iter()
            .filter(|s| steps.contains(&s["id"].as_str().unwrap_or_default()))
            .cloned()
            .collect();
        value["steps"] = serde_yaml_ng::Value::Sequence(kept);
        let path = self.path(&format!("plan-{}.yaml", steps.join("_")));
        write(&path, &serde_yaml_ng::to_string(&value).expect("yaml"));
        path
    }

    fn state(&self) -> String {
        self.path("state").display().to_string()
    }

    /// `plan` against the lab: the loopback scenario, its ssh config, the shims on PATH.
    fn args<'a>(&'a self, plan_file: &'a str, state: &'a str, config: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--scenario", LOOPBACK, "--plan", plan_file];
        args.extend_from_slice(rest);
        args.extend_from_slice(&["--state-dir", state]);
        if !matches!(rest.first(), Some(&"status")) {
            // The fixture hosts have no Kubernetes API behind them (tests/observe.rs reads a fake
            // one) and run no etcd (tests/lab.rs rehearses with real members): the executor watches
            // etcd at every step, so the fixture turns that observer off.
            args.extend_from_slice(&["--ssh-config", config, "--skip-observer", "kube", "--skip-observer", "etcd"]);
        }
        args
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.path("shims").display(), std::env::var("PATH").unwrap_or_default())
    }

    fn plan(&self, plan_file: &Path, rest: &[&str]) -> Output {
        let (p, s, c) = (plan_file.to_str().unwrap().to_string(), self.state(), self.path("ssh_config").display().to_string());
        let (path, locks) = (self.path_env(), self.path("locks").display().to_string());
        plan(&self.args(&p, &s, &c, rest), &[("PATH", &path), ("PLAN_LOCK_DIR", &locks)])
    }

    /// `plan execute` of `plan_file` started in the background with the file `slow` in place:
    /// returned once it journals the `kubectl wait` for lab-wk-2, which hangs until `slow` goes.
    fn executor_held_at_the_wait_for_lab_wk_2(&self, plan_file: &Path, output: fn() -> Stdio) -> std::process::Child {
        write(&self.path("slow"), "");
        let (p, s, c) = (plan_file.to_str().unwrap().to_string(), self.state(), self.path("ssh_config").display().to_string());
        let child = Command::new(PLAN)
            .args(self.args(&p, &s, &c, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]))
            .env("PLAN_LOOPBACK_ONLY", "1")
            .env("PLAN_LOCK_DIR", self.path("locks"))
            .env("PATH", self.path_env())
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(WAIT_S);
        while !self.journal().contains("kubectl wait --for=condition=Ready node/lab-wk-2") {
            assert!(Instant::now() < deadline, "the executor never reached the wait for lab-wk-2: {}", self.journal());
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// `plan execute --resume` of `plan_file` (4.2 and 4.3) completes, and every worker's
    /// kubelet.conf names the VIP with its kubelet restarted once, the first master untouched:
    /// nothing ran twice across the interruption and the resume.
    fn resume_and_find_every_flip_done_once(&self, plan_file: &Path) {
        let out = self.plan(plan_file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
        assert!(out.status.success(), "{}", text(&out));
        for (name, _) in HOSTS {
            let (server, restarts) = if name == MASTER { (DIRECT, 0) } else { (VIP, 1) };
            assert!(self.kubelet_conf(name).contains(server), "{name}");
            assert_eq!(self.restarts(name), restarts, "{name}: the flip and restart ran once across the interruption and the resume");
        }
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.path("state/journal.jsonl")).unwrap_or_default()
    }

    /// Makes the fixture host at `address` known to the fixture's ssh config by `name` only, as a
    /// lab's ssh config names its workstation: a `Host NAME` block with its HostName and the
    /// options of the address's own block.
    fn name_in_ssh_config(&self, name: &str, address: Ipv4Addr) {
        let config = std::fs::read_to_string(self.path("ssh_config")).expect("the fixture's ssh config");
        let block = config.split("Host ").find(|b| b.starts_with(&format!("{address}\n"))).expect("the address's block");
        let options: String = block.lines().skip(1).map(|l| format!("{l}\n")).collect();
        write(&self.path("ssh_config"), &format!("{config}Host {name}\n  HostName {address}\n{options}"));
    }
}

const OVERRIDE: [&str; 2] = ["--override-check", "loopback fixture: a subset of the plan"];

#[test]
fn dry_run_of_the_homelab_prints_each_hosts_commands_and_never_connects() {
    let out = plan(&["execute", "--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("!! plan check REJECTS this plan") && shown.contains("hypervisor-ram"), "banner: {shown}");
    assert!(shown.contains("Phase 4 — Cut over clients and workers to the VIP"));
    assert!(shown.contains(
        "    k8s-node3      $ { sudo test -e /etc/kubernetes/kubelet.conf.bak || sudo cp -p /etc/kubernetes/kubelet.conf /etc/kubernetes/kubelet.conf.bak; } && sudo sed -i 's|server: .*|server: https://10.0.20.99:6443|' /etc/kubernetes/kubelet.conf && sudo systemctl restart kubelet"
    ), "the kubelet flip keeps the first backup: {shown}");
    assert!(shown.contains("    pve            $ qm snapshot 200 pre-ha-retrofit"), "the ssh wrapper comes off: {shown}");
    assert!(shown.contains("    k8s-master-2   copy /root/.plan-join-command from k8s-master (secret: content never shown)  [secret]"));
    assert!(shown.contains("none run."));
    // Order: node1's flip, its wait, then node2's flip.
    let a = shown.find("node/k8s-node1 --timeout").unwrap();
    let b = shown.find("k8s-node2      $ { sudo test -e").unwrap();
    assert!(a < b);
    let only = text(&plan(&["execute", "--dry-run", "--host", "node2"], &[]));
    assert!(only.contains("k8s-node2      $ { sudo test -e") && !only.contains("k8s-node1      $"), "{only}");
    let bad = plan(&["execute", "--dry-run", "--host", "node9"], &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

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
fn kubelet_flip_is_verified_then_rolled_back_on_real_files() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    // 4.4 reads the new masters' kubelet.conf: they have no sshd, so the run halts there, after
    // 4.2 flipped the workers to the VIP and 4.3 found lab-cp-1 on its own apiserver (Kubernetes
    // 1.34: kubeadm keeps a control-plane kubelet local, docs/facts.md).
    let file = lab.plan_file(&["4.2", "4.3", "4.4"]);
    let out = lab.plan(&file, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}\n{}", lab.sshd_log("lab-wk-1"));
    assert!(shown.contains("HALTED at step 4.4") && shown.contains("lab-cp-2"), "{shown}");
    // Off a terminal (stderr is a pipe here) every step and command is logged line by line.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("== Phase 4") && log.contains("-- 4.2 ") && log.contains("-- 4.3 "), "{log}");
    assert!(log.contains("-> ok on lab-cp-1 in "), "the end of 4.3's command, with its host and time: {log}");
    assert!(shown.contains("The twin's recovery for this point: 1. phase 4 rollback"), "{shown}");
    for (name, _) in HOSTS {
        if name == MASTER {
            assert!(lab.kubelet_conf(name).contains(DIRECT), "{name} stays on its own apiserver: {}", lab.kubelet_conf(name));
            assert_eq!(lab.restarts(name), 0, "{name}: 4.3 only reads its kubelet.conf");
            continue;
        }
        assert!(lab.kubelet_conf(name).contains(VIP), "{name} flipped: {}", lab.kubelet_conf(name));
        let backup = std::fs::read_to_string(lab.path(&format!("hosts/{name}/etc-kubernetes/kubelet.conf.bak"))).unwrap();
        assert!(backup.contains(DIRECT), "{name} backup keeps the direct server");
        assert_eq!(lab.restarts(name), 1, "{name}: one kubelet restart");
    }
    let journal = lab.journal();
    assert!(journal.contains("\"override_check\":\"loopback fixture: a subset of the plan\""));
    assert!(journal.contains("{\"v\":1") && journal.contains("\"event\":\"step-finished\",\"step\":\"4.3\""));
    let status = lab.plan(&file, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(json["state"], "halted");
    assert_eq!(json["steps"][0], serde_json::json!({"id": "4.2", "state": "done"}));
    // The halt is no by-hand work: --by-hand-done is refused, naming what it halted at.
    let out = lab.plan(&file, &["execute", "--yes", "--resume", "--by-hand-done", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the run's last halt, at step 4.4, is not at by-hand work"), "{}", text(&out));

    let out = lab.plan(&file, &["rollback", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, _) in HOSTS {
        assert!(lab.kubelet_conf(name).contains(DIRECT), "{name} rolled back: {}", lab.kubelet_conf(name));
        let restarts = if name == MASTER { 0 } else { 2 };
        assert_eq!(lab.restarts(name), restarts, "{name}: restarted again by the rollback only if it was flipped");
    }
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("plan status: rolled-back"), "{status}");
    assert!(status.contains("4.2      pending") && status.contains("0/3 steps done"), "the undone steps are pending again: {status}");

    // A resume after the rollback runs the undone steps again (it used to skip them as done and
    // halt at 4.4 on the drift of three kubelets), and status tells what is true now.
    let out = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 4.4"), "{shown}");
    for (name, _) in HOSTS {
        let (server, restarts) = if name == MASTER { (DIRECT, 0) } else { (VIP, 3) };
        assert!(lab.kubelet_conf(name).contains(server), "{name}: {}", lab.kubelet_conf(name));
        assert_eq!(lab.restarts(name), restarts, "{name}: flipped again by the resumed 4.2");
    }
    let status = lab.plan(&file, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!((json["state"].as_str(), json["rolled_back"].as_str()), (Some("halted"), None), "{json}");
    assert_eq!(json["steps"][0], serde_json::json!({"id": "4.2", "state": "done"}));
}

#[test]
fn a_killed_executor_resumes_without_running_a_step_twice() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3"]);
    let (p, s, c) = (file.to_str().unwrap().to_string(), lab.state(), lab.path("ssh_config").display().to_string());
    let mut child = lab.executor_held_at_the_wait_for_lab_wk_2(&file, Stdio::null);
    // A second executor on the same state directory is refused while the first holds the lock.
    let second = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(text(&second).contains("another executor holds"), "{}", text(&second));
    // So is one with a state directory of its own: the lock is the cluster's too.
    let elsewhere = lab.path("elsewhere").display().to_string();
    let third = plan(
        &lab.args(&p, &elsewhere, &c, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]),
        &[("PATH", &lab.path_env()), ("PLAN_LOCK_DIR", &lab.path("locks").display().to_string())],
    );
    assert_eq!(third.status.code(), Some(2), "{}", text(&third));
    assert!(text(&third).contains(&format!("state directory {s}): one executor per cluster")), "{}", text(&third));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::remove_file(lab.path("slow")).unwrap();
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("4.2      interrupted"), "{status}");

    lab.resume_and_find_every_flip_done_once(&file);
    let waits = std::fs::read_to_string(lab.path("workstation.log")).unwrap();
    assert_eq!(waits.lines().filter(|l| l.contains("node/lab-wk-1")).count(), 1, "{waits}");
    let journal = lab.journal();
    for step in ["4.2", "4.3"] {
        assert_eq!(journal.matches(&format!("\"event\":\"step-finished\",\"step\":\"{step}\"")).count(), 1, "{step}");
    }
    assert!(text(&lab.plan(&file, &["status"])).contains("plan status: completed"));

    // Nothing of the killed executor outlives the test: its ControlMasters (ControlPersist=yes)
    // die with the fixture's sshd sessions.
    let root = lab.root.path().display().to_string();
    drop(lab);
    let deadline = Instant::now() + Duration::from_secs(WAIT_S);
    loop {
        let left = processes_mentioning(&root);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes of the test left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_lets_the_running_command_finish_halts_and_the_resume_completes() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3"]);
    let child = lab.executor_held_at_the_wait_for_lab_wk_2(&file, Stdio::piped);
    run("kill", &["-INT", &child.id().to_string()]);
    // The wait runs on: the stop comes after it, not inside it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!lab.journal().contains("\"event\":\"halted\""), "halted inside the running command: {}", lab.journal());
    std::fs::remove_file(lab.path("slow")).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("stopping after the command that runs now"), "{said}");
    assert!(said.contains("HALTED at step 4.2: stopped by the operator before command"), "{said}");
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("halted"), "{status}");

    lab.resume_and_find_every_flip_done_once(&file);
    let waits = std::fs::read_to_string(lab.path("workstation.log")).unwrap();
    assert_eq!(waits.lines().filter(|l| l.contains("node/lab-wk-2")).count(), 1, "the stopped wait was journalled done: {waits}");
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

    // A batch of reads: each host's kubelet.conf, and a file one host lacks.
    let reads: Vec<(HostTarget, &str)> = vec![
        (hosts[1].clone(), "/etc/kubernetes/kubelet.conf"),
        (hosts[0].clone(), "/etc/kubernetes/no-such-file"),
        (hosts[2].clone(), "/etc/kubernetes/kubelet.conf"),
    ];
    let read = transport.read_and_run(&reads, &[]).read;
    assert!(matches!(&read[0], Ok(FileRead::Present(text)) if text.contains(DIRECT)), "{read:?}");
    assert!(matches!(&read[1], Ok(FileRead::Missing)), "{read:?}");
    assert!(matches!(&read[2], Ok(FileRead::Present(_))), "{read:?}");
}

/// The loopback guard asks a host what its text cannot say, over the same connection, before the
/// command runs: the server the host's `kubectl` would reach (the lab's kubectl shim answers
/// `config view --minify` from root's `~/.kube/config`, as kubectl does) and whether `getent`
/// resolves from files only. A kubeconfig naming 10.0.20.99 refuses the command and nothing else
/// runs; one naming a loopback address runs it; the server is asked again at every command.
#[test]
fn the_guard_asks_the_host_where_kubectl_goes_and_how_names_resolve() {
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
        &plan_model::validate::parse_scenario(include_str!("../scenarios/loopback.yaml")).expect("the loopback scenario parses"),
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

/// Processes whose command line mentions `text` (pid and command line).
fn processes_mentioning(text: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid != std::process::id() && cmdline.contains(text)).then_some((pid, cmdline))
        })
        .collect()
}

#[test]
fn a_file_changed_between_steps_halts_with_a_diff() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    let file = lab.plan_file(&["4.2", "4.3", "4.4"]);
    let out = lab.plan(&file, &["execute", "--yes", OVERRIDE[0], OVERRIDE[1]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Behind the executor's back: lab-wk-1 is put back on the direct address.
    let conf = lab.path("hosts/lab-wk-1/etc-kubernetes/kubelet.conf");
    let flipped = std::fs::read_to_string(&conf).unwrap();
    std::fs::File::create(&conf).unwrap().write_all(flipped.replace(VIP, DIRECT).as_bytes()).unwrap();
    let out = lab.plan(&file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 4.4: reality differs from the twin before the step"), "{shown}");
    assert!(
        shown.contains("lab-wk-1: kubelet.conf server is the VIP: twin yes, observed no (server: https://127.0.20.10:6443)"),
        "{shown}"
    );
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("lab-wk-1: kubelet.conf server is the VIP: twin yes, observed no"), "{status}");
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

#[test]
fn plan_status_json_redacts_what_the_journal_holds() {
    let dir = tempfile::tempdir().unwrap();
    // A journal written by hand (or by an older plan): a halt whose reason holds a join token.
    let journal = concat!(
        r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"loopback","plan_digest":"0","steps":["2.5"],"check":"pass","override_check":null,"resume":false,"pid":1}"#,
        "\n",
        r#"{"v":1,"at_ms":2,"event":"halted","step":"2.5","reason":"kubeadm join --token abcdef.0123456789abcdef failed","drift":[],"recovery":"hold","recovery_actions":["token: s3cr3t"]}"#,
        "\n"
    );
    write(&dir.path().join("journal.jsonl"), journal);
    let out = plan(&["--scenario", LOOPBACK, "status", "--format", "json", "--state-dir", dir.path().to_str().unwrap()], &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("abcdef.0123456789abcdef") && !shown.contains("s3cr3t"), "{shown}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("still JSON");
    assert_eq!(json["halted"]["reason"], "kubeadm join --token <redacted> failed");
}

/// Hosts that do not answer: `plan execute` stops at its preflight with a list of what failed and
/// what to fix — no step runs, no journal is begun, no recovery is proposed (nothing changed) —
/// and `plan preflight` reports every machine the same way.
#[test]
fn hosts_that_do_not_answer_fail_the_preflight_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    // The loopback scenario on a range of its own, where no test's sshd listens: every connection
    // is refused.
    let scenario = std::fs::read_to_string(LOOPBACK).unwrap().replace("127.0.20.", "127.0.77.");
    let path = dir.path().join("silent.yaml");
    write(&path, &scenario);
    let ssh_config = dir.path().join("ssh_config");
    write(&ssh_config, "ConnectTimeout 2\n");
    let state = dir.path().join("state");
    let (scenario, state, ssh_config) = (path.to_str().unwrap(), state.to_str().unwrap(), ssh_config.to_str().unwrap());
    let out = plan(&["--scenario", scenario, "execute", "--yes", "--state-dir", state, "--ssh-config", ssh_config], &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("FAIL ssh and sudo on lab-cp-1"), "{shown}");
    assert!(shown.contains("fix: make root@127.0.77.10 reachable over SSH"), "{shown}");
    assert!(shown.contains("nothing was run, so there is nothing to undo"), "{shown}");
    assert!(!shown.contains("recovery") && !shown.contains("HALTED"), "no halt, no recovery: {shown}");
    assert!(!Path::new(state).join("journal.jsonl").exists(), "no journal begun: {shown}");

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

/// Off a terminal, without `--yes`, nobody can answer the phase prompts: refused before anything
/// runs (exit 2), never "declined" as if a person had said no.
#[test]
fn without_a_terminal_or_yes_the_run_is_refused_up_front() {
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

/// A step begun and not ended reads "running" while an executor holds the state directory's lock
/// (it runs a command, or waits at a prompt), and "interrupted" once nothing holds it.
#[test]
fn status_tells_a_running_step_from_an_interrupted_one_by_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let journal = concat!(
        r#"{"v":1,"at_ms":1,"event":"run-started","scenario":"loopback","plan_digest":"0","steps":["4.2"],"check":"pass","override_check":null,"resume":false,"pid":1}"#,
        "\n",
        r#"{"v":1,"at_ms":2,"event":"step-started","step":"4.2"}"#,
        "\n"
    );
    write(&dir.path().join("journal.jsonl"), journal);
    let status = || {
        let out = plan(&["--scenario", LOOPBACK, "status", "--format", "json", "--state-dir", dir.path().to_str().unwrap()], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        (json["state"].as_str().unwrap_or_default().to_string(), json["steps"][0]["state"].as_str().unwrap_or_default().to_string())
    };
    let held = plan_exec::lock::Lock::take(dir.path()).expect("the lock, as an executor holds it");
    assert_eq!(status(), ("running".to_string(), "running".to_string()));
    drop(held);
    assert_eq!(status(), ("interrupted".to_string(), "interrupted".to_string()));
}

/// The workstation's fixture host, which the ssh config knows by this name only.
const WORKSTATION: (&str, Ipv4Addr) = ("workstation", Ipv4Addr::new(127, 0, 20, 250));

/// `--workstation workstation`: the plan's workstation and infra-repo commands run over SSH on the
/// fixture host the ssh config names `workstation` (a `Host workstation` block with its HostName),
/// the infra repo's in its directory there; the preflight finds a missing infra repo there before
/// anything runs; and under the guard a workstation command is held to the rule for hosts' commands.
#[test]
fn the_workstations_commands_run_on_the_host_workstation_names() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start_with(&[WORKSTATION]);
    lab.name_in_ssh_config(WORKSTATION.0, WORKSTATION.1);
    let infra = lab.path("infra");
    let scenario = lab.path("scenario.yaml");
    let loopback = std::fs::read_to_string(LOOPBACK).unwrap();
    let with_repo = loopback.replace("infra_repo: /srv/plan-loopback/infra", &format!("infra_repo: {}", infra.display()));
    assert_ne!(with_repo, loopback, "the loopback scenario names its infra repo");
    write(&scenario, &with_repo);
    let scenario = scenario.to_str().unwrap().to_string();
    // 0.6 runs on the workstation, 1.2 in the infra repo: each writes where it ran. Unset, the
    // fixture's variable fails the command rather than write to /.
    let file = |name: &str, kubectl: bool| {
        let shown = plan(&["--scenario", &scenario, "show", "--format", "yaml"], &[]);
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&shown.stdout).expect("plan yaml");
        let shell = |run: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&format!("- op: shell\n  run: '{run}'\n")).unwrap();
        let mut steps: Vec<serde_yaml_ng::Value> =
            value["steps"].as_sequence().unwrap().iter().filter(|s| matches!(s["id"].as_str(), Some("0.6" | "1.2"))).cloned().collect();
        if !kubectl {
            steps[0]["operations"] = shell("echo ran > ${PLAN_FIXTURE_HOST_DIR:?}/workstation-ran");
        }
        steps[1]["operations"] = shell("pwd > ${PLAN_FIXTURE_HOST_DIR:?}/infra-repo-pwd");
        value["steps"] = serde_yaml_ng::Value::Sequence(steps);
        let path = lab.path(name);
        write(&path, &serde_yaml_ng::to_string(&value).unwrap());
        path.to_str().unwrap().to_string()
    };
    let (plan_file, config, path, locks) = (file("plan.yaml", false), lab.path("ssh_config"), lab.path_env(), lab.path("locks"));
    let (config, locks) = (config.to_str().unwrap(), locks.to_str().unwrap());
    let execute = |plan_file: &str, state: &str| {
        let state = lab.path(state);
        let args = [
            "--scenario",
            &scenario,
            "--plan",
            plan_file,
            "execute",
            "--yes",
            OVERRIDE[0],
            OVERRIDE[1],
            "--state-dir",
            state.to_str().unwrap(),
            "--ssh-config",
            config,
            "--skip-observer",
            "kube",
            "--skip-observer",
            "etcd",
            "--workstation",
            "workstation",
        ];
        plan(&args, &[("PATH", &path), ("PLAN_LOCK_DIR", locks)])
    };
    let ran = |what: &str| std::fs::read_to_string(lab.hosts.host_dir(WORKSTATION.0).join(what)).ok();

    // No infra repo on the workstation yet: the preflight says so, and nothing runs.
    let out = execute(&plan_file, "state");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("ok   ssh on the workstation workstation: answers"), "{shown}");
    assert!(shown.contains(&format!("FAIL the infra repo {} on the workstation workstation", infra.display())), "{shown}");
    assert!(!lab.path("state/journal.jsonl").exists() && ran("workstation-ran").is_none(), "{shown}");

    std::fs::create_dir_all(&infra).unwrap();
    let out = execute(&plan_file, "state");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert_eq!(ran("workstation-ran").as_deref(), Some("ran\n"), "{shown}");
    assert_eq!(ran("infra-repo-pwd").map(|p| p.trim().to_string()), Some(infra.display().to_string()), "in the repo: {shown}");
    let journal = lab.journal();
    assert!(
        journal.contains("\"place\":\"workstation@workstation\"") && journal.contains("\"place\":\"infra-repo@workstation\""),
        "{journal}"
    );
    assert!(shown.contains("workstation@workstation $ echo ran"), "the log says where it ran: {shown}");

    // The plan's own 0.6 (kubectl with the workstation's kubeconfig): under the guard the
    // workstation is asked, as any host is, which server its kubectl would reach; it has no
    // kubeconfig, so the command is refused before it runs.
    let out = execute(&file("kubectl.yaml", true), "state-kubectl");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("refused workstation workstation: kubectl reaches no server"), "{shown}");
    // The shim logs every call: only the guard's question was put to it, never the command.
    let calls = std::fs::read_to_string(lab.path("workstation.log")).unwrap_or_default();
    assert!(
        calls.lines().all(|l| l.contains("config view --minify")) && !calls.contains("get pods"),
        "kubectl never ran: {calls}\n{shown}"
    );
}

/// `--workstation` names a host the ssh config sends off loopback: refused with the other hosts,
/// before the lock, the journal or any connection.
#[test]
fn a_workstation_the_ssh_config_sends_off_loopback_is_refused_before_anything_runs() {
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

/// Unattended, by-hand work halts the run, and a plain resume halts there again: `--resume
/// --by-hand-done` says it is done, journals that one command as done by hand and halts at the
/// next; given when the last halt is not at by-hand work, it is refused (exit 2).
#[test]
fn by_hand_done_moves_an_unattended_run_past_the_by_hand_work_it_halted_at() {
    if !sshd_available() {
        return;
    }
    let lab = Lab::start();
    // 1.2: four edits of the LB's bootstrap script, by hand.
    let file = lab.plan_file(&["1.2"]);
    let yes = ["execute", "--yes", OVERRIDE[0], OVERRIDE[1]];
    let out = lab.plan(&file, &yes);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HALTED at step 1.2: needs the operator: edit lb/haproxy-bootstrap.php: build_pool_https()"), "{shown}");
    assert!(shown.contains("then `plan execute --resume --by-hand-done`"), "{shown}");
    let status = text(&lab.plan(&file, &["status"]));
    assert!(status.contains("by hand: once it is done, `plan execute --resume --by-hand-done` goes on"), "{status}");
    let json: serde_json::Value = serde_json::from_slice(&lab.plan(&file, &["status", "--format", "json"]).stdout).expect("status json");
    assert_eq!(json["halted"]["by_hand"], 0, "{json}");

    let resume = [&yes[..], &["--resume"]].concat();
    let out = lab.plan(&file, &resume);
    assert!(text(&out).contains("HALTED at step 1.2: needs the operator: edit lb/haproxy-bootstrap.php: build_pool_https()"), "again");
    let out = lab.plan(&file, &[&resume[..], &["--by-hand-done"]].concat());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(
            "build_pool_https() with check_type='HTTP', monitor_uri='/readyz', ssl='yes', sslverify='no' -- done, as --by-hand-done says"
        ),
        "{shown}"
    );
    assert!(shown.contains("HALTED at step 1.2: needs the operator: edit lb/haproxy-bootstrap.php: + $POOL_NAMES[]"), "the next: {shown}");
    let journal = lab.journal();
    assert!(
        journal.contains("\"event\":\"command-started\",\"step\":\"1.2\",\"index\":0,\"place\":\"operator\"")
            && journal.contains(
                "\"event\":\"command-finished\",\"step\":\"1.2\",\"index\":0,\"exit\":0,\"duration_ms\":0,\"output\":\"done by hand\""
            ),
        "{journal}"
    );
    assert!(!journal.contains("\"index\":1,\"place\":\"operator\""), "only that one: {journal}");

    let out = lab.plan(&file, &["execute", "--by-hand-done"]);
    assert_eq!(out.status.code(), Some(2), "clap: it needs --resume: {}", text(&out));
}
