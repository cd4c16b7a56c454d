//! The executor's fixture hosts, for the tests of `plan execute`, `plan status` and `plan rollback`
//! (tests/loopback/execute.rs, tests/loopback/execute_ssh.rs): sshd servers on 127.0.20.x, started and stopped by
//! each test.
//!
//! Fixture hosts (`plan_lab::host`, shared with the lab's rehearsal through the executor): each
//! host of scenarios/loopback.yaml that the plan subset touches gets its own `/usr/sbin/sshd`,
//! listening on its own loopback address, started under `unshare --mount` with a per-host
//! directory bind-mounted over `/etc/kubernetes`, so every host has its own real kubelet.conf and
//! apiserver.crt at the real paths. Shims for sudo, systemctl, kubectl and sleep
//! on PATH record each call in a per-host log: the side effects the tests count.

use plan_lab::host::{FixtureHost, FixtureHosts, TmpDir};
use plan_lab::scratch::LabRange;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PLAN: &str = env!("CARGO_BIN_EXE_plan");
pub const LOOPBACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/loopback.yaml");
/// The hosts the plan subsets touch: the existing master and the two workers.
pub const HOSTS: [(&str, Ipv4Addr); 3] =
    [("lab-cp-1", Ipv4Addr::new(127, 0, 20, 10)), ("lab-wk-1", Ipv4Addr::new(127, 0, 20, 21)), ("lab-wk-2", Ipv4Addr::new(127, 0, 20, 22))];
pub const DIRECT: &str = "server: https://127.0.20.10:6443";
/// The existing master: on Kubernetes 1.34 its kubelet stays on its own apiserver (4.3 verifies).
pub const MASTER: &str = "lab-cp-1";
pub const VIP: &str = "server: https://127.0.20.99:6443";
/// Bound on waiting for the executor to reach a point, or for its processes to end.
pub const WAIT_S: u64 = 20;

pub fn plan(args: &[&str], envs: &[(&str, &str)]) -> Output {
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

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

pub fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("fixture tool runs");
    assert!(status.success(), "{program} {args:?} failed");
}

pub fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("fixture paths have a parent")).expect("fixture dir");
    std::fs::write(path, content).expect("fixture file");
}

fn executable(path: &Path, content: &str) {
    write(path, content);
    run("chmod", &["755", path.to_str().expect("utf-8 path")]);
}

/// The fixture hosts (sshd servers, `plan_lab::host`) and files of one test; stops the servers
/// when dropped, failed test or not, after closing the executor's ControlMasters.
pub struct Lab {
    pub root: tempfile::TempDir,
    pub hosts: FixtureHosts,
    /// Released after the servers stopped (fields drop after [`Drop::drop`]).
    _range: RangeZero,
}

/// How long a fixture test waits for a lab beside it to give range 0 up (a whole-plan rehearsal
/// holds it for a minute or two under load).
const RANGE_ZERO_WAIT_S: u64 = 900;

/// The tests' holders of range 0, and the claim they share.
static RANGE_ZERO: Mutex<(usize, Option<LabRange>)> = Mutex::new((0, None));

/// Range 0 of the labs' loopback claims (`127.0.0.0/16`), held while a test uses the loopback
/// scenario's own addresses (the fixture hosts at 127.0.20.x, the API and VIP on 6443, etcd and
/// HAProxy started on 127.0.20.x): a lab started beside it in this binary takes 127.1 and up
/// instead of binding the same addresses. Tests holding it share it; one waits while a lab holds it.
pub struct RangeZero(());

pub fn hold_range_zero() -> RangeZero {
    let deadline = Instant::now() + Duration::from_secs(RANGE_ZERO_WAIT_S);
    loop {
        {
            let mut holders = RANGE_ZERO.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if holders.1.is_none() {
                holders.1 = LabRange::claim_octet(0).ok();
            }
            if holders.1.is_some() {
                holders.0 += 1;
                return RangeZero(());
            }
        }
        assert!(Instant::now() < deadline, "a lab held 127.0.0.0/16 for {RANGE_ZERO_WAIT_S} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Keeps range 0 for the fixture for the rest of this test process, so that no lab a test starts
/// takes it: a lab claims the lowest free range, and one that got range 0 made every fixture test
/// that came after it wait for its whole rehearsal (up to about 50 s each in the parallel suite).
/// Every lab-starting test calls it, through [`super::lab_binaries`] and
/// [`super::fixture_hosts_run`], before any lab starts.
pub fn keep_range_zero_for_the_fixture() {
    static KEPT: std::sync::Once = std::sync::Once::new();
    KEPT.call_once(|| std::mem::forget(hold_range_zero()));
}

impl Drop for RangeZero {
    fn drop(&mut self) {
        let mut holders = RANGE_ZERO.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        holders.0 -= 1;
        if holders.0 == 0 {
            holders.1 = None;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A SIGKILLed executor cannot close its own ControlMasters.
        self.hosts.close_masters(&self.path("state/ssh"));
        self.hosts.stop();
    }
}

/// Whether sshd can run here; under CI it must.
pub fn sshd_available() -> bool {
    let usable = plan_lab::host::usable();
    if let Err(e) = &usable {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but fixture hosts cannot run: {e}: install openssh-server");
        eprintln!("skipping: {e} (not CI)");
    }
    usable.is_ok()
}

impl Lab {
    /// The fixture with its sshd servers answering: keys, shims, each host's files.
    pub fn start() -> Lab {
        Lab::start_with(&[])
    }

    /// [`Lab::start`], with `extra` hosts that have no files of the cluster (the workstation).
    pub fn start_with(extra: &[(&str, Ipv4Addr)]) -> Lab {
        let range = hold_range_zero();
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
                super::apiserver_cert(&kube.join("pki"), "DNS:lab-cp-1,IP:10.96.0.1,IP:127.0.20.10");
            }
        }
        let mut lab = Lab { root, hosts, _range: range };
        if let Err(e) = lab.hosts.start() {
            panic!("fixture hosts did not start: {e}");
        }
        lab
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn sshd_log(&self, name: &str) -> String {
        self.hosts.sshd_log(name)
    }

    pub fn kubelet_conf(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("hosts/{name}/etc-kubernetes/kubelet.conf"))).expect("kubelet.conf")
    }

    pub fn restarts(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(&format!("hosts/{name}/systemctl.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "restart kubelet")
            .count()
    }

    /// A plan file of the loopback plan with only `steps`.
    pub fn plan_file(&self, steps: &[&str]) -> PathBuf {
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

    pub fn state(&self) -> String {
        self.path("state").display().to_string()
    }

    /// `plan` against the lab: the loopback scenario, its ssh config, the shims on PATH.
    pub fn args<'a>(&'a self, plan_file: &'a str, state: &'a str, config: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--scenario", LOOPBACK, "--plan", plan_file];
        args.extend_from_slice(rest);
        args.extend_from_slice(&["--state-dir", state]);
        if !matches!(rest.first(), Some(&"status")) {
            // The fixture hosts have no Kubernetes API behind them (tests/loopback/observe.rs reads a fake
            // one) and run no etcd (tests/loopback/lab_executor.rs rehearses with real members): the
            // executor watches etcd at every step, so the fixture turns that observer off.
            args.extend_from_slice(&["--ssh-config", config, "--skip-observer", "kube", "--skip-observer", "etcd"]);
        }
        if matches!(rest.first(), Some(&"execute")) {
            // The new masters and the hypervisor have no sshd here: a step that needs them halts,
            // and a halt waits for what does not answer (90 s by default) before it takes it as
            // dead. Nothing here comes back: a second's wait shows the same.
            args.extend_from_slice(&["--wait-for-host", "1s"]);
        }
        args
    }

    pub fn path_env(&self) -> String {
        format!("{}:{}", self.path("shims").display(), std::env::var("PATH").unwrap_or_default())
    }

    pub fn plan(&self, plan_file: &Path, rest: &[&str]) -> Output {
        let (p, s, c) = (plan_file.to_str().unwrap().to_string(), self.state(), self.path("ssh_config").display().to_string());
        let (path, locks) = (self.path_env(), self.path("locks").display().to_string());
        plan(&self.args(&p, &s, &c, rest), &[("PATH", &path), ("PLAN_LOCK_DIR", &locks)])
    }

    /// `plan execute` of `plan_file` started in the background with the file `slow` in place:
    /// returned once it journals the `kubectl wait` for lab-wk-2, which hangs until `slow` goes.
    pub fn executor_held_at_the_wait_for_lab_wk_2(&self, plan_file: &Path, output: fn() -> Stdio) -> std::process::Child {
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
    pub fn resume_and_find_every_flip_done_once(&self, plan_file: &Path) {
        let out = self.plan(plan_file, &["execute", "--yes", "--resume", OVERRIDE[0], OVERRIDE[1]]);
        assert!(out.status.success(), "{}", text(&out));
        for (name, _) in HOSTS {
            let (server, restarts) = if name == MASTER { (DIRECT, 0) } else { (VIP, 1) };
            assert!(self.kubelet_conf(name).contains(server), "{name}");
            assert_eq!(self.restarts(name), restarts, "{name}: the flip and restart ran once across the interruption and the resume");
        }
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.path("state/journal.jsonl")).unwrap_or_default()
    }

    /// Makes the fixture host at `address` known to the fixture's ssh config by `name` only, as a
    /// lab's ssh config names its workstation: a `Host NAME` block with its HostName and the
    /// options of the address's own block.
    pub fn name_in_ssh_config(&self, name: &str, address: Ipv4Addr) {
        let config = std::fs::read_to_string(self.path("ssh_config")).expect("the fixture's ssh config");
        let block = config.split("Host ").find(|b| b.starts_with(&format!("{address}\n"))).expect("the address's block");
        let options: String = block.lines().skip(1).map(|l| format!("{l}\n")).collect();
        write(&self.path("ssh_config"), &format!("{config}Host {name}\n  HostName {address}\n{options}"));
    }
}

pub const OVERRIDE: [&str; 2] = ["--override-check", "loopback fixture: a subset of the plan"];
