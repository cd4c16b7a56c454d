//! What the plan's commands become when run: shell commands on a place, uploads, secret relays,
//! and instructions only a person can carry out.
//!
//! Each plan command is a list of typed parts (`plan_model::plan::Part`): a shell command on a
//! machine the scenario names, in the infra repo, on the workstation or where the step runs, or
//! a file copied to a machine. The executor runs each part where it says, through its own
//! transport (so host-key checking, multiplexing, the loopback guard and the journal see every
//! remote command); the text `show` prints is derived from the same parts and never read back.

use crate::target::{Hosts, Place};
use crate::workstation::WorkstationHost;
use plan_model::action::{Action, Refusal, RefusalKind};
use plan_model::cluster::Cluster;
use plan_model::hand::HandTask;
use plan_model::plan::{Command, Part, RunsOn, Step};
use plan_model::topology::Topology;
use serde::Serialize;
use std::collections::HashMap;

/// One unit of work the runner journals and runs. Serialized for people (JSON), never read back:
/// a by-hand [`Work::Manual`]'s typed task is derived from the plan's operations, not from text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Work {
    Shell {
        place: Place,
        shell: String,
    },
    /// A file of the infra repo copied to a host: read on this machine, or on the machine
    /// `from` names when the workstation is another one (`--workstation`).
    Upload {
        host: crate::target::HostTarget,
        local: String,
        remote: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<WorkstationHost>,
    },
    /// A secret file copied from the host that made it to the host that needs it; its content
    /// never passes through a log, the journal or the terminal.
    Relay {
        from: crate::target::HostTarget,
        to: crate::target::HostTarget,
        path: String,
    },
    /// Something only a person can do (edit a file, click in a web UI): `instruction` is what
    /// they read, `task` the same work typed, which a stand-in for the person carries out.
    Manual {
        instruction: String,
        #[serde(skip)]
        task: HandTask,
    },
}

/// A unit of work, with where it came from in the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
            Work::Manual { instruction, .. } => format!("by hand: {instruction}"),
        };
        crate::redact::redact(&text)
    }

    /// One line for people: where it runs, what runs (redacted), and whether its output is kept
    /// (`[secret]`: never). `plan show` and `plan execute --dry-run` print these same lines.
    pub fn line(&self) -> String {
        format!("{:<14} {}{}", self.place_label(), self.display(), if self.secret { "  [secret]" } else { "" })
    }

    pub fn is_manual(&self) -> bool {
        matches!(self.work, Work::Manual { .. })
    }
}

/// The by-hand work one halt at command `j` of a step (`invocations`) waits for: `j` and the
/// by-hand commands right after it, up to the step's next command that runs by itself. An
/// operator does a step's edits in one sitting; the halt names them all and `--by-hand-done`
/// confirms them all, never a command after a command that runs by itself. Empty where `j` is
/// not by-hand work.
pub fn by_hand_run(invocations: &[Invocation], j: usize) -> std::ops::Range<usize> {
    let end = (j..invocations.len()).find(|&k| !invocations[k].is_manual()).unwrap_or(invocations.len().max(j));
    j..end
}

/// Turns plan commands into invocations for one topology.
pub struct Compiler<'t> {
    t: &'t Topology,
    hosts: Hosts<'t>,
    /// Where each `/root/.plan-*` secret file was written.
    secrets_at: HashMap<String, crate::target::HostTarget>,
    /// The machine the workstation's commands run on when it is not this one.
    workstation: Option<WorkstationHost>,
}

impl<'t> Compiler<'t> {
    /// The workstation's commands on this machine.
    pub fn new(t: &'t Topology) -> Self {
        Compiler::on(t, None)
    }

    /// The workstation's commands on `workstation` when given (`--workstation`), else here: their
    /// places say so, and so where they run and how they are labelled.
    pub fn on(t: &'t Topology, workstation: Option<WorkstationHost>) -> Self {
        Compiler { t, hosts: Hosts::new(t), secrets_at: HashMap::new(), workstation }
    }

    /// The workstation, in `dir` when given.
    fn workstation(&self, dir: Option<String>) -> Place {
        Place::Local { dir, on: self.workstation.clone() }
    }

    fn default_place(&self, runs_on: &RunsOn) -> Place {
        match runs_on {
            RunsOn::Node(name) => match self.hosts.named(name) {
                Some(host) => Place::Host(host),
                None => self.workstation(None),
            },
            RunsOn::LoadBalancer(_) => self.hosts.load_balancer().map(Place::Host).unwrap_or_else(|| self.workstation(None)),
            RunsOn::Hypervisor(name) => self.hosts.named(name).map(Place::Host).unwrap_or_else(|| self.workstation(None)),
            RunsOn::InfraRepo => self.workstation(Some(self.t.scenario.infra_repo.clone())),
            RunsOn::Workstation => self.workstation(None),
        }
    }

    /// The invocations of one step, in order.
    pub fn step(&mut self, step: &Step) -> Vec<Invocation> {
        let place = self.default_place(&step.runs_on);
        let mut out = Vec::new();
        for (index, command) in step.commands.iter().enumerate() {
            for work in self.command_works(command, &place) {
                self.relay_secrets(&work, command, index, &mut out);
                out.push(Invocation { work, secret: command.secret, command: index });
            }
        }
        out
    }

    /// The invocations of an operation's cleanup before a re-run ([`plan_model::operation::Operation::cut_cleanup`]),
    /// run where the step runs unless a part says otherwise.
    pub fn cleanup(&self, step: &Step, commands: &[Command]) -> Vec<Invocation> {
        let place = self.default_place(&step.runs_on);
        commands
            .iter()
            .flat_map(|command| command.parts.iter())
            .map(|part| Invocation { work: self.work(part, &place), secret: false, command: usize::MAX })
            .collect()
    }

    /// The invocations of a probe, run where the step runs.
    pub fn probe(&self, step: &Step, probe: &plan_model::operation::Probe) -> Vec<Invocation> {
        let place = self.default_place(&step.runs_on);
        probe.parts.iter().map(|part| Invocation { work: self.work(part, &place), secret: false, command: usize::MAX }).collect()
    }

    /// What one part of a command becomes: `here` is where its step runs.
    fn work(&self, part: &Part, here: &Place) -> Work {
        match part {
            Part::Run { at: None, shell } => Work::Shell { place: here.clone(), shell: shell.clone() },
            Part::Run { at: Some(at), shell } => Work::Shell { place: self.default_place(at), shell: shell.clone() },
            Part::Upload { local, to, remote } => match self.default_place(to) {
                Place::Host(host) => {
                    let repo = &self.t.scenario.infra_repo;
                    let local = if local.starts_with('/') { local.clone() } else { format!("{}/{local}", repo.trim_end_matches('/')) };
                    Work::Upload { host, local, remote: remote.clone(), from: self.workstation.clone() }
                }
                Place::Local { .. } => Work::Manual {
                    instruction: format!("copy {local} to {remote} on {to} (not a machine of the scenario)"),
                    task: HandTask::Elsewhere,
                },
            },
        }
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

    /// The commands that carry out the recovery actions the twin chose from `c`, each beside the
    /// action it carries out (one may take several: an upload, then its run). An action with no
    /// command the executor can run safely becomes an instruction for the operator. An action on
    /// a machine that is down in `c` (a reset of a node no SSH reaches, a VM on a hypervisor that
    /// does not answer) is passed over, as the twin's recovery passes it over: nothing runs for it.
    pub fn recovery(&self, c: &Cluster, actions: &[Action]) -> Vec<(Action, Invocation)> {
        let mut out = Vec::new();
        for (index, (action, before, passed_over)) in replayed(self.t, c, actions).enumerate() {
            if passed_over.is_some() {
                continue;
            }
            for work in self.recovery_work(&before, action) {
                out.push((action, Invocation { work, secret: false, command: index }));
            }
        }
        out
    }

    /// The actions of `actions`, carried out from `c`, that [`Compiler::recovery`] passes over
    /// because their machine is down, each worded with why.
    pub fn passed_over(&self, c: &Cluster, actions: &[Action]) -> Vec<String> {
        let t = self.t;
        replayed(t, c, actions)
            .filter_map(|(action, _, refusal)| refusal.map(|r| format!("{}: {}", action.describe(t), r.reason)))
            .collect()
    }

    /// What carries out one recovery action from the state `before` it: the plan's own
    /// operation where one does the work (rendered as a step's are), a command the executor can
    /// run safely, or an instruction for the operator.
    fn recovery_work(&self, before: &Cluster, action: Action) -> Vec<Work> {
        let t = self.t;
        let s = &t.scenario;
        let m0 = t.existing_master();
        let on = |node, shell: String| vec![Work::Shell { place: Place::Host(self.hosts.node(node)), shell }];
        let manual = || vec![Work::Manual { instruction: action.describe(t), task: HandTask::Recovery(action) }];
        let vip = s.control_plane_endpoint.vip_url();
        if let Some(operation) = plan_model::operation::Operation::carrying_out(t, before, action) {
            let works = self.operation_works(&operation);
            return if works.is_empty() { manual() } else { works };
        }
        match action {
            // No config stack in the scenario: nothing to edit (the model's list is its own).
            Action::ConfigStackRemoveHost(_) if s.config_stack.is_none() => Vec::new(),
            // The undo of the plan's own flip, rendered as the operation renders it.
            Action::RevertKubelet(n) => {
                let flip =
                    plan_model::operation::Operation::KubeletServer { nodes: vec![t.name(n).to_string()], server: vip, wait_ready: false };
                let revert = flip.undo(t).map(|undo| undo.render(t)).unwrap_or_default();
                match revert.first().and_then(|c| c.parts.first()) {
                    Some(part) => vec![self.work(part, &Place::Host(self.hosts.node(n)))],
                    None => manual(),
                }
            }
            Action::RestoreCert(n) => {
                on(n, "sudo cp /tmp/apiserver-backup/apiserver.crt /tmp/apiserver-backup/apiserver.key /etc/kubernetes/pki/".to_string())
            }
            Action::RestartApiserver(n) => on(n, "sudo systemctl restart kubelet".to_string()),
            Action::RevertKubeadmConfig => {
                on(m0, "sudo kubeadm init phase upload-config kubeadm --config /tmp/kubeadm-config.backup.yaml".to_string())
            }
            Action::KubeadmReset(n) => on(n, plan_model::operation::KUBEADM_RESET.to_string()),
            _ => manual(),
        }
    }

    /// An operation's commands as a recovery runs them: its by-hand edits as instructions with
    /// their typed task, its parts where they say (else in the infra repo, where the workstation's
    /// edits are made).
    fn operation_works(&self, operation: &plan_model::operation::Operation) -> Vec<Work> {
        let here = self.default_place(&RunsOn::InfraRepo);
        operation.render(self.t).iter().flat_map(|command| self.command_works(command, &here)).collect()
    }

    /// What one plan command becomes: by-hand work as an instruction with its typed task, else
    /// each part where it says (`here`: where its step runs).
    fn command_works(&self, command: &Command, here: &Place) -> Vec<Work> {
        if command.by_hand {
            let task = command.hand.clone().unwrap_or_default();
            return vec![Work::Manual { instruction: command.run.trim().to_string(), task }];
        }
        command.parts.iter().map(|part| self.work(part, here)).collect()
    }
}

/// The invocations of every step of `plan`, in order: what `plan execute` runs (compiled in plan
/// order, since a join's secret relay depends on where an earlier step wrote the secret).
pub fn compile(t: &Topology, plan: &plan_model::plan::Plan) -> Vec<Vec<Invocation>> {
    compile_on(t, plan, None)
}

/// [`compile`], the workstation's commands on `workstation` when given ([`Compiler::on`]).
pub fn compile_on(t: &Topology, plan: &plan_model::plan::Plan, workstation: Option<&WorkstationHost>) -> Vec<Vec<Invocation>> {
    let mut compiler = Compiler::on(t, workstation.cloned());
    plan.steps.iter().map(|s| compiler.step(s)).collect()
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
    hosts.load_balancer().into_iter().for_each(&mut add);
    (0..t.scenario.hypervisors.len()).filter_map(|i| hosts.hypervisor(i)).for_each(&mut add);
    out
}

/// Each of `actions` carried out from `c` in turn, as a recovery runs them: the action, the state
/// before it, and the refusal where the model passes it over because its machine is down (as the
/// twin's recovery passes it over). Any other refusal leaves the state as it was and the action
/// is run all the same: the search judged the candidate on the first such one, and a command that
/// fails halts the recovery.
fn replayed<'a>(t: &'a Topology, c: &Cluster, actions: &'a [Action]) -> impl Iterator<Item = (Action, Cluster, Option<Refusal>)> + 'a {
    let mut state = *c;
    actions.iter().map(move |&action| {
        let before = state;
        let passed_over = match plan_model::action::apply_in_place(&mut state, t, action) {
            Err(refusal) if refusal.kind == RefusalKind::HostDown => Some(refusal),
            _ => None,
        };
        (action, before, passed_over)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn homelab() -> (Topology, plan_model::plan::Plan) {
        let t = Topology::new(
            &plan_model::validate::parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the homelab is valid"),
        );
        let plan = plan_model::planner::generate(&t);
        (t, plan)
    }

    #[test]
    fn a_kubelets_revert_is_the_undo_of_the_plans_flip_rendered() {
        let (t, _) = homelab();
        let worker = t.workers().next().expect("a worker");
        let invocations = Compiler::new(&t).recovery(&Cluster::initial(&t), &[Action::RevertKubelet(worker)]);
        let direct = format!("https://{}:{}", t.node(t.existing_master()).address, t.scenario.control_plane_endpoint.port);
        let Work::Shell { place: Place::Host(host), shell } = &invocations[0].1.work else { panic!("{invocations:?}") };
        assert_eq!(host.name, t.name(worker));
        assert_eq!(shell, &plan_model::operation::kubelet_server_shell(&direct));
    }

    /// A recovery's config-stack edit in a scenario without a config stack renders nothing; its
    /// pool edit and deploy on the Linux profile are the plan's own (the edit typed, the deploy
    /// on the LB host).
    #[test]
    fn a_recovery_edits_only_what_the_scenario_has() {
        let text = include_str!("../../scenarios/haproxy-libvirt.yaml");
        let t = Topology::new(&plan_model::validate::parse_scenario(text).expect("valid"));
        let plan = plan_model::planner::generate(&t);
        let mut c = Cluster::initial(&t);
        for a in plan.steps.iter().take_while(|s| !s.id.starts_with("4.")).flat_map(|s| s.actions.iter()) {
            c = plan_model::action::apply(&c, &t, *a).unwrap_or(c);
        }
        let m2 = t.new_masters().next().expect("a new master");
        let actions = [Action::ConfigStackRemoveHost(m2), Action::RemoveLbBackend(m2), Action::DeployLb];
        let rendered = Compiler::new(&t).recovery(&c, &actions);
        assert!(rendered.iter().all(|(a, _)| *a != Action::ConfigStackRemoveHost(m2)), "no stack to edit: {rendered:?}");
        let lines: Vec<String> = rendered.iter().map(|(_, inv)| inv.line()).collect();
        assert!(
            lines.iter().any(|l| l.contains("by hand: edit haproxy/haproxy.cfg") && !l.contains(&format!("server {} ", t.name(m2)))),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(&t.scenario.load_balancer.name) && l.contains("systemctl reload-or-restart haproxy")),
            "{lines:#?}"
        );
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
