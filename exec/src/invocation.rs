//! What the plan's commands become when run: shell commands on a place, uploads, secret relays,
//! and instructions only a person can carry out.
//!
//! The plan writes commands the way the operator would type them on the workstation
//! (`ssh wizard@k8s-node1.zone 'sudo sed …'`, loops over nodes). The executor does not hand those
//! to a local shell: it takes the ssh wrapper off and runs the inner command on the named host
//! through its own transport, so that host-key checking, multiplexing, the loopback guard and the
//! journal see every remote command.

use crate::target::{Hosts, Place};
use plan_model::action::Action;
use plan_model::plan::{Command, RunsOn, Step};
use plan_model::topology::Topology;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One unit of work the runner journals and runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Work {
    Shell {
        place: Place,
        shell: String,
    },
    /// A file of the infra repo copied to a host.
    Upload {
        host: crate::target::HostTarget,
        local: String,
        remote: String,
    },
    /// A secret file copied from the host that made it to the host that needs it; its content
    /// never passes through a log, the journal or the terminal.
    Relay {
        from: crate::target::HostTarget,
        to: crate::target::HostTarget,
        path: String,
    },
    /// Something only a person can do (edit a file, click in a web UI).
    Manual {
        instruction: String,
    },
}

/// A unit of work, with where it came from in the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub work: Work,
    /// The command holds or prints a secret: its output is never kept.
    pub secret: bool,
    /// Index of the plan command it came from.
    pub command: usize,
}

impl Invocation {
    /// Where it runs, as shown.
    pub fn place_label(&self) -> String {
        match &self.work {
            Work::Shell { place, .. } => place.label(),
            Work::Upload { host, .. } => host.name.clone(),
            Work::Relay { to, .. } => to.name.clone(),
            Work::Manual { .. } => "operator".to_string(),
        }
    }

    /// The command as shown and journalled (redacted).
    pub fn display(&self) -> String {
        let text = match &self.work {
            Work::Shell { shell, .. } => format!("$ {shell}"),
            Work::Upload { local, remote, .. } => format!("upload {local} -> {remote}"),
            Work::Relay { from, path, .. } => format!("copy {path} from {} (secret: content never shown)", from.name),
            Work::Manual { instruction } => format!("by hand: {instruction}"),
        };
        crate::redact::redact(&text)
    }

    pub fn is_manual(&self) -> bool {
        matches!(self.work, Work::Manual { .. })
    }
}

/// Splits on a top-level `&&` (outside quotes).
fn split_and(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' && i + 1 < chars.len() => {
                current.push(c);
                i += 1;
                current.push(chars[i]);
                i += 1;
                continue;
            }
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '&' && chars.get(i + 1) == Some(&'&') => {
                parts.push(current.trim().to_string());
                current.clear();
                i += 2;
                continue;
            }
            None => {}
        }
        current.push(c);
        i += 1;
    }
    parts.push(current.trim().to_string());
    parts
}

/// `ssh [USER@]HOST 'CMD' [| filter]` or `ssh [USER@]HOST CMD…`: (user, host, remote command).
fn parse_ssh(text: &str) -> Option<(Option<String>, String, String)> {
    let rest = text.strip_prefix("ssh ")?.trim_start();
    let (destination, rest) = rest.split_once(char::is_whitespace)?;
    let (user, host) = match destination.split_once('@') {
        Some((u, h)) => (Some(u.to_string()), h.to_string()),
        None => (None, destination.to_string()),
    };
    let rest = rest.trim_start();
    let first = rest.chars().next()?;
    if first != '\'' && first != '"' {
        return Some((user, host, rest.to_string()));
    }
    let body: Vec<char> = rest.chars().skip(1).collect();
    let mut command = String::new();
    let mut i = 0;
    loop {
        let c = *body.get(i)?;
        if c == first {
            break;
        }
        if first == '"' && c == '\\' && i + 1 < body.len() {
            command.push(body[i + 1]);
            i += 2;
            continue;
        }
        command.push(c);
        i += 1;
    }
    let tail: String = body[i + 1..].iter().collect();
    let tail = tail.trim();
    if !tail.is_empty() {
        // `ssh h "x" | grep y`: the filter runs just as well on the host.
        command = format!("{command} {tail}");
    }
    Some((user, host, command))
}

/// `for VAR in LIST; do BODY; done`: (variable, items, body).
fn parse_for(text: &str) -> Option<(String, Vec<String>, String)> {
    let rest = text.strip_prefix("for ")?;
    let (var, rest) = rest.split_once(" in ")?;
    let (list, rest) = rest.split_once("; do ")?;
    let body = rest.trim_end().strip_suffix("done")?.trim_end().strip_suffix(';')?.trim();
    let list = list.trim();
    let items: Vec<String> = match list.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
        Some(inner) => inner.split(',').map(str::to_string).collect(),
        None => list.split_whitespace().map(str::to_string).collect(),
    };
    Some((var.trim().to_string(), items, body.to_string()))
}

/// Turns plan commands into invocations for one topology.
pub struct Compiler<'t> {
    t: &'t Topology,
    hosts: Hosts<'t>,
    /// Where each `/root/.plan-*` secret file was written.
    secrets_at: HashMap<String, crate::target::HostTarget>,
}

impl<'t> Compiler<'t> {
    pub fn new(t: &'t Topology) -> Self {
        Compiler { t, hosts: Hosts::new(t), secrets_at: HashMap::new() }
    }

    fn default_place(&self, runs_on: &RunsOn) -> Place {
        match runs_on {
            RunsOn::Node(name) => match self.hosts.named(name) {
                Some(host) => Place::Host(host),
                None => Place::Local { dir: None },
            },
            RunsOn::LoadBalancer(_) => Place::Host(self.hosts.load_balancer()),
            RunsOn::Hypervisor(name) => self.hosts.named(name).map(Place::Host).unwrap_or(Place::Local { dir: None }),
            RunsOn::InfraRepo => Place::Local { dir: Some(self.t.scenario.infra_repo.clone()) },
            RunsOn::Workstation => Place::Local { dir: None },
        }
    }

    /// The invocations of one step, in order.
    pub fn step(&mut self, step: &Step) -> Vec<Invocation> {
        let place = self.default_place(&step.runs_on);
        let mut out = Vec::new();
        for (index, command) in step.commands.iter().enumerate() {
            let mut works = Vec::new();
            if command.by_hand {
                works.push(Work::Manual { instruction: command.run.trim().to_string() });
            } else {
                self.text(&command.run, &place, &mut works);
            }
            for work in works {
                self.relay_secrets(&work, command, index, &mut out);
                out.push(Invocation { work, secret: command.secret, command: index });
            }
        }
        out
    }

    /// The invocations of a probe, run where the step runs.
    pub fn probe(&self, step: &Step, probe: &plan_model::operation::Probe) -> Vec<Invocation> {
        let mut works = Vec::new();
        self.text(&probe.run, &self.default_place(&step.runs_on), &mut works);
        works.into_iter().map(|work| Invocation { work, secret: false, command: usize::MAX }).collect()
    }

    /// Inserts a relay before a command that reads a secret file another host wrote, and notes
    /// where the command writes one (the operation says which files it writes and reads).
    fn relay_secrets(&mut self, work: &Work, command: &Command, index: usize, out: &mut Vec<Invocation>) {
        let Work::Shell { place: Place::Host(host), .. } = work else { return };
        if let Some(path) = &command.writes {
            self.secrets_at.insert(path.clone(), host.clone());
        }
        for path in &command.reads {
            if let Some(from) = self.secrets_at.get(path).filter(|from| *from != host) {
                let relay = Work::Relay { from: from.clone(), to: host.clone(), path: path.clone() };
                out.push(Invocation { work: relay, secret: command.secret, command: index });
            }
        }
    }

    fn text(&self, text: &str, place: &Place, out: &mut Vec<Work>) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some((var, items, body)) = parse_for(text) {
            if body.starts_with("ssh ") {
                for item in items {
                    let expanded = body.replace(&format!("${var}"), &item).replace(&format!("${{{var}}}"), &item);
                    self.text(&expanded, &Place::Local { dir: None }, out);
                }
                return;
            }
        }
        if let Some((name, rest)) = text.strip_prefix("on ").and_then(|r| r.split_once(": ")) {
            if let Some(host) = self.hosts.find(name, None) {
                self.text(rest, &Place::Host(host), out);
                return;
            }
        }
        let repo = &self.t.scenario.infra_repo;
        if text.starts_with(&format!("cd {repo} && ")) {
            out.push(Work::Shell { place: Place::Local { dir: Some(repo.clone()) }, shell: text.to_string() });
            return;
        }
        let segments = split_and(text);
        if !segments.iter().any(|s| s.starts_with("ssh ") || s.starts_with("scp ")) {
            out.push(Work::Shell { place: place.clone(), shell: text.to_string() });
            return;
        }
        // A workstation chain mixing ssh, scp and local commands: each part where it belongs,
        // in order (the runner stops at the first failure, as `&&` would).
        let local = match place {
            Place::Host(_) => Place::Local { dir: None },
            other => other.clone(),
        };
        for segment in segments {
            if let Some((user, host, remote)) = parse_ssh(&segment) {
                match self.hosts.find(&host, user.as_deref()) {
                    Some(host) => out.push(Work::Shell { place: Place::Host(host), shell: remote }),
                    None => out.push(Work::Manual { instruction: format!("{segment}  (host {host} is not in the inventory)") }),
                }
            } else if let Some(upload) = self.parse_scp(&segment) {
                out.push(upload);
            } else {
                out.push(Work::Shell { place: local.clone(), shell: segment });
            }
        }
    }

    /// `scp SRC [USER@]HOST:DEST`, SRC in the infra repo.
    fn parse_scp(&self, text: &str) -> Option<Work> {
        let mut words = text.strip_prefix("scp ")?.split_whitespace();
        let local = words.next()?;
        let (destination, remote) = words.next()?.split_once(':')?;
        let (user, host) = match destination.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, destination),
        };
        let host = self.hosts.find(host, user)?;
        let file = local.rsplit('/').next().unwrap_or(local);
        let remote = if remote.ends_with('/') { format!("{remote}{file}") } else { remote.to_string() };
        let local = if local.starts_with('/') { local.to_string() } else { format!("{}/{local}", self.t.scenario.infra_repo) };
        Some(Work::Upload { host, local, remote })
    }

    /// The commands that carry out recovery actions the twin chose. An action with no command
    /// the executor can run safely becomes an instruction for the operator.
    pub fn recovery(&self, actions: &[Action]) -> Vec<Invocation> {
        let t = self.t;
        let s = &t.scenario;
        let m0 = t.existing_master();
        let port = s.control_plane_endpoint.port;
        let m0_addr = t.node(m0).address;
        let on = |node, shell: String| Work::Shell { place: Place::Host(self.hosts.node(node)), shell };
        actions
            .iter()
            .enumerate()
            .map(|(index, action)| {
                let work = match *action {
                    Action::RevertKubelet(n) => {
                        on(n, plan_model::operation::kubelet_server_shell(&format!("https://{m0_addr}:{port}"), '\''))
                    }
                    Action::RestoreCert(n) => on(
                        n,
                        "sudo cp /tmp/apiserver-backup/apiserver.crt /tmp/apiserver-backup/apiserver.key /etc/kubernetes/pki/".to_string(),
                    ),
                    Action::RestartApiserver(n) => on(n, "sudo systemctl restart kubelet".to_string()),
                    Action::RevertKubeadmConfig => {
                        on(m0, "sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-config.backup.yaml".to_string())
                    }
                    Action::KubeadmReset(n) => on(n, "sudo kubeadm reset --force".to_string()),
                    other => Work::Manual { instruction: other.describe(t) },
                };
                Invocation { work, secret: false, command: index }
            })
            .collect()
    }
}

/// The hosts the plan's commands run on (with the user each command gives), each once, in the
/// order the plan first reaches them.
pub fn hosts_commanded(t: &Topology, plan: &plan_model::plan::Plan) -> Vec<crate::target::HostTarget> {
    let mut compiler = Compiler::new(t);
    let mut out: Vec<crate::target::HostTarget> = Vec::new();
    let mut add = |host: &crate::target::HostTarget| {
        if !out.contains(host) {
            out.push(host.clone());
        }
    };
    for invocation in plan.steps.iter().flat_map(|step| compiler.step(step)) {
        match &invocation.work {
            Work::Shell { place: Place::Host(host), .. } | Work::Upload { host, .. } => add(host),
            Work::Relay { from, to, .. } => {
                add(from);
                add(to);
            }
            Work::Shell { .. } | Work::Manual { .. } => {}
        }
    }
    out
}

/// Every machine a run of `plan` may reach: the hosts its commands run on (with the user each
/// command gives), every node and the load balancer (the observers read them), the hypervisors
/// (recoveries), each once. The loopback guard checks them all before the first connection.
pub fn hosts_touched(t: &Topology, plan: &plan_model::plan::Plan) -> Vec<crate::target::HostTarget> {
    let hosts = Hosts::new(t);
    let mut out = hosts_commanded(t, plan);
    let mut add = |host: crate::target::HostTarget| {
        if !out.contains(&host) {
            out.push(host);
        }
    };
    (0..t.nodes.len()).for_each(|i| add(hosts.node(plan_model::topology::NodeIx(i as u8))));
    add(hosts.load_balancer());
    (0..t.scenario.hypervisors.len()).for_each(|i| add(hosts.hypervisor(i)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_wrappers_come_off() {
        assert_eq!(
            parse_ssh("ssh wizard@k8s-node1.lan 'sudo grep server: /etc/kubernetes/kubelet.conf'"),
            Some((Some("wizard".into()), "k8s-node1.lan".into(), "sudo grep server: /etc/kubernetes/kubelet.conf".into()))
        );
        assert_eq!(
            parse_ssh("ssh admin@10.0.20.1 \"echo 'show servers state' | socat /tmp/haproxy.socket stdio\" | grep apiserver"),
            Some((
                Some("admin".into()),
                "10.0.20.1".into(),
                "echo 'show servers state' | socat /tmp/haproxy.socket stdio | grep apiserver".into()
            ))
        );
        assert_eq!(
            parse_ssh("ssh root@192.168.1.127 qm snapshot 200 x"),
            Some((Some("root".into()), "192.168.1.127".into(), "qm snapshot 200 x".into()))
        );
    }

    #[test]
    fn loops_and_chains_split_where_they_run() {
        let (var, items, body) = parse_for("for n in a b; do ssh u@$n.z \"x\" && kubectl wait node/$n; done").unwrap();
        assert_eq!((var.as_str(), items), ("n", vec!["a".to_string(), "b".to_string()]));
        assert_eq!(split_and(&body), vec!["ssh u@$n.z \"x\"", "kubectl wait node/$n"]);
        assert_eq!(parse_for("for n in {a,b}; do ssh u@$n 'y'; done").unwrap().1, vec!["a", "b"]);
        assert_eq!(split_and("echo 'a && b' && c"), vec!["echo 'a && b'", "c"]);
    }

    fn homelab() -> (Topology, plan_model::plan::Plan) {
        let t = Topology::new(
            &plan_model::validate::parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the homelab is valid"),
        );
        let plan = plan_model::planner::generate(&t);
        (t, plan)
    }

    #[test]
    fn by_hand_work_is_what_the_operations_say_is_by_hand() {
        let (t, plan) = homelab();
        let mut compiler = Compiler::new(&t);
        let mut manual = 0;
        for step in &plan.steps {
            for invocation in compiler.step(step) {
                let command = &step.commands[invocation.command];
                if !matches!(invocation.work, Work::Relay { .. }) {
                    assert_eq!(invocation.is_manual(), command.by_hand, "step {}: {}", step.id, command.run);
                }
                manual += usize::from(invocation.is_manual());
            }
        }
        assert!(manual > 10, "the homelab plan has by-hand edits: {manual}");
    }

    #[test]
    fn a_join_gets_both_secret_files_copied_from_the_first_master() {
        let (t, plan) = homelab();
        let mut compiler = Compiler::new(&t);
        let mut relayed = Vec::new();
        for step in &plan.steps {
            for invocation in compiler.step(step) {
                if let Work::Relay { from, to, path } = &invocation.work {
                    relayed.push((step.id.clone(), from.name.clone(), to.name.clone(), path.clone()));
                }
            }
        }
        let m0 = t.name(t.existing_master()).to_string();
        for (k, m) in t.new_masters().enumerate() {
            let join = format!("{}.5", plan_model::planner::master_phase(k));
            let to_m: Vec<_> = relayed.iter().filter(|(step, ..)| *step == join).collect();
            assert_eq!(to_m.len(), 2, "{join}: {relayed:?}");
            assert!(to_m.iter().all(|(_, from, to, _)| *from == m0 && to == t.name(m)), "{to_m:?}");
        }
    }

    #[test]
    fn deleting_a_secret_file_does_not_copy_it_first() {
        let t = plan_model::topology::Topology::new(
            &plan_model::validate::parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the homelab is valid"),
        );
        let plan = plan_model::planner::generate(&t);
        let step = plan.steps.iter().find(|s| s.id == "4.6").expect("the plan deletes the join secrets");
        let mut compiler = Compiler::new(&t);
        // The joins before 4.6 write and read the secrets; compile them in order.
        let mut relays = Vec::new();
        for s in &plan.steps {
            let lines: Vec<String> = compiler.step(s).iter().map(Invocation::display).collect();
            if s.id == step.id {
                relays = lines;
                break;
            }
        }
        assert!(relays.iter().any(|l| l.contains("rm -f /root/.plan-join-command")), "{relays:?}");
        assert!(!relays.iter().any(|l| l.contains("copy /root/.plan-")), "{relays:?}");
    }
}
