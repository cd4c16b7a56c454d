//! The executor's lab, set up and owned: the scenario moved onto loopback, a fixture host per
//! machine with the files the twin's starting state has, real etcd, HAProxy when the start has it
//! deployed, the apiserver stand-ins, the kubelet stand-in's thread and the probe through the VIP.
//! A [`Rig`] stops all of it and removes its directory when dropped, whatever ended the rehearsal.

use super::kubelet::{start_ticker, KubeletStandIn};
use super::shims::{apiserver_manifest, cluster_configuration, kubeconfig, write_kubeadm_shim};
use super::{
    not_rehearsable, predict_slice, slice, APISERVER_MANIFEST, CLUSTER_INFO, ETCD_MANIFEST, KUBEADM_NEW, SCRATCH_DIR, WORKSTATION,
};
use crate::address::{guard_loopback, LoopbackMap};
use crate::apiserver::VerifyingClient;
use crate::error::LabError;
use crate::executor_etcd::SliceEtcd;
use crate::executor_fault::{self, Drill, Strike};
use crate::executor_lab::{self, LabPaths};
use crate::host::{self, FixtureHost, FixtureHosts, RootHome, TmpDir};
use crate::pki::{LabCa, ServingCertSans};
use crate::probe::Probe;
use crate::process::Worker;
use crate::scratch::{LabRange, Scratch};
use plan_exec::predict::Prediction;
use plan_model::cluster::Cluster;
use plan_model::plan::Plan;
use plan_model::scenario::{HypervisorKind, LbKind};
use plan_model::topology::Topology;
use plan_sim::run::Injection;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A fault rehearsed through the executor: where the lab strikes, the twin's own run with the
/// fault (its policy recovers), and the twin's state the moment the fault struck.
pub(super) struct FaultRun {
    pub(super) strike: Strike,
    /// The recovery kind the lab picks at the halt (`--choose`), the twin's pinned to it.
    pub(super) choose: Option<&'static str>,
    pub(super) twin: plan_sim::run::RunResult,
    pub(super) at_strike: Cluster,
    /// Where the twin's run has the fault over while the plan goes on
    /// ([`executor_fault::healed_going_on`]): from that step on, the executor's look after a step
    /// lets it clear on the lab.
    pub(super) healed_going_on: Option<String>,
}

/// The lab of one rehearsal through the executor, up.
pub(super) struct Rig {
    // Field order is drop order: the kubelet thread first (it holds the hosts and the stand-in),
    // the probe, the stand-ins and etcd, the hosts (their PID namespaces), the directory last.
    ticker: Worker,
    pub(super) probe: Probe,
    pub(super) kubelet: Arc<Mutex<KubeletStandIn>>,
    pub(super) hosts: Arc<FixtureHosts>,
    pub(super) client: VerifyingClient,
    /// The scenario on the lab: moved onto loopback, its workstation paths in the lab's directory.
    pub(super) t: Topology,
    /// The steps run, and the twin over them from where the whole plan stands before the first.
    pub(super) sliced: Plan,
    pub(super) prediction: Prediction,
    pub(super) initial: Cluster,
    pub(super) fault: Option<FaultRun>,
    pub(super) paths: LabPaths,
    pub(super) workstation: Ipv4Addr,
    /// `10.0.20.100 -> 127.0.20.100` per address moved.
    pub(super) moved_to_loopback: Vec<String>,
    scratch: Scratch,
    range: LabRange,
}

impl Rig {
    /// Refuses what the lab cannot rehearse, then sets the lab up as the twin's starting state
    /// says and starts it.
    ///
    /// # Errors
    /// As [`super::rehearse_through_executor`], before the executor runs.
    pub(super) fn up(scenario_t: &Topology, scenario_plan: &Plan, steps: &[String], drill: Option<Drill>) -> Result<Rig, LabError> {
        // A fault strikes in the slice's run (the whole plan's, by default), from where the whole
        // plan stands before the slice's first step.
        let scenario_slice = slice(scenario_plan, steps)?;
        let start = *predict_slice(scenario_t, scenario_plan, &scenario_slice).before(0);
        let strike = strike_of(scenario_t, scenario_plan, &scenario_slice, &start, drill.map(|d| d.injection))?;
        if let (Some(drill), Some((injection, strike))) = (drill, &strike) {
            executor_fault::check_choice(scenario_t, &scenario_slice, &start, Drill { injection: *injection, ..drill }, strike)?;
        }
        host::usable()?;
        // The executor dials the inventory's addresses: a scenario off loopback is moved onto it
        // first (10.0.20.100 -> 127.0.20.100), its plan's text with it, in a range of the lab's own
        // (127.1.20.100 when another lab holds 127.0.0.0/16).
        let range = LabRange::claim()?;
        let map = LoopbackMap::in_range(&scenario_t.scenario, range.octet())?;
        let moved_t = Topology::new(&map.scenario(&scenario_t.scenario)?);
        let moved_plan = map.plan(scenario_plan, &moved_t)?;
        refuse_what_the_lab_does_not_replicate(&moved_t)?;
        // Dropped last of all: every process, thread and socket below stops before it goes.
        let scratch = Scratch::new_in(Path::new(SCRATCH_DIR))?;
        let root = scratch.path().to_path_buf();
        let paths = LabPaths::under(&root);
        let t = paths.topology(&moved_t);
        let plan = paths.plan(&moved_t, &moved_plan)?;
        let sliced = slice(&plan, steps)?;
        let prediction = predict_slice(&t, &plan, &sliced);
        let initial = *prediction.before(0);
        // Under a fault: the twin's run of the slice with it from the same start (its policy
        // recovers), and where the executor's commands meet the twin's point.
        let choose = drill.and_then(|d| d.choose);
        let fault = strike.map(|(injection, strike)| {
            let twin = executor_fault::twin_run(&t, &sliced, &initial, Drill { injection, choose });
            let healed_going_on = executor_fault::healed_going_on(&twin);
            FaultRun { strike, choose, twin, at_strike: executor_fault::state_at_strike(&t, &sliced, &initial, injection), healed_going_on }
        });
        let workstation = executor_lab::workstation_address(&t)?;
        let mut hosts = prepare_hosts(&t, &root, workstation)?;
        let ca = write_start(&t, &initial, &hosts, &paths)?;
        // etcd elects its leader while the hosts' sshd start.
        let etcd = SliceEtcd::start(&t, &hosts, &initial)?;
        hosts.start()?;
        etcd.wait_ready(&t, &hosts)?;
        // The twin's starting state has a backup (the pre-flight lists it): a real snapshot.
        etcd.take_backup(&paths.backup_before())?;
        if initial.lb_up {
            deploy_lb(&t, &hosts, &paths.infra_repo)?;
        }
        let client = VerifyingClient::new(ca.cert_der())?;
        let kubelet = Arc::new(Mutex::new(KubeletStandIn::new(&t, &root, etcd, client.clone(), initial.joined.or(initial.stale_nodes))));
        {
            let mut k = super::lock(&kubelet);
            for node in initial.apiserver_running.and(initial.control_plane).and(initial.up).iter() {
                k.start(&hosts, node)?;
            }
            k.sync(&hosts)?;
        }
        let hosts = Arc::new(hosts);
        let ticker = start_ticker(&kubelet, &hosts)?;
        let endpoint = &t.scenario.control_plane_endpoint;
        let probe = Probe::start(client.clone(), SocketAddr::from((endpoint.vip, endpoint.port)), endpoint.vip);
        Ok(Rig {
            ticker,
            probe,
            kubelet,
            hosts,
            client,
            sliced,
            prediction,
            initial,
            fault,
            paths,
            workstation,
            moved_to_loopback: map.pairs.iter().filter(|(a, l)| a != l).map(|(a, l)| format!("{a} -> {l}")).collect(),
            t,
            scratch,
            range,
        })
    }

    /// The lab's directory: its hosts, the infra repo, the executor's state.
    pub(super) fn root(&self) -> &Path {
        self.scratch.path()
    }

    /// The loopback range the lab holds, `127.N.0.0/16`: every address of [`Self::t`] is in it.
    pub(super) fn loopback_range(&self) -> String {
        self.range.network()
    }

    /// Stops the kubelet stand-in's thread: nothing on the lab changes after this on its own.
    pub(super) fn stop_kubelet(&mut self) {
        self.ticker.stop();
    }
}

/// A fault the executor's lab cannot strike is refused before anything is looked for or started.
/// (Moving the scenario onto loopback keeps its steps and nodes: the strike holds for the move.)
/// The fault's point in the slice's terms (its step's index in the slice), and the strike there;
/// a fault on a step the slice leaves out is refused.
fn strike_of(
    t: &Topology,
    plan: &Plan,
    sliced: &Plan,
    start: &Cluster,
    injection: Option<Injection>,
) -> Result<Option<(Injection, Strike)>, LabError> {
    let Some(injection) = injection else { return Ok(None) };
    let id = plan.steps.get(usize::from(injection.at.step)).map(|s| s.id.as_str()).unwrap_or_default();
    let Some(at) = sliced.steps.iter().position(|s| s.id == id) else {
        return Err(not_rehearsable(format!("a fault at step {id}"), "the slice leaves that step out: rehearse a slice that has it"));
    };
    let injection = Injection { at: plan_sim::run::Point { step: at as u16, ..injection.at }, ..injection };
    Ok(Some((injection, executor_fault::strike_point(t, sliced, start, injection)?)))
}

/// Every machine on loopback once moved; the load balancer, hypervisor and IaC profiles the lab
/// replicates (pfSense's bootstrap script or HAProxy on a Linux box, Proxmox's `qm` or libvirt's
/// `virsh`, the repo's `scripts/tg` or no IaC tool: docs/lab.md).
fn refuse_what_the_lab_does_not_replicate(t: &Topology) -> Result<(), LabError> {
    let needs_loopback = |name: &str, address: Ipv4Addr| {
        guard_loopback(address).map(|_| ()).map_err(|_| not_rehearsable(format!("{name} ({address})"), "not on loopback once moved"))
    };
    for node in &t.nodes {
        needs_loopback(&node.name, node.address)?;
    }
    let s = &t.scenario;
    let lb = &s.load_balancer;
    let replicated = matches!(lb.kind, LbKind::PfsenseBootstrap | LbKind::Haproxy);
    let Some(lb_address) = lb.machine_address().filter(|_| replicated) else {
        return Err(not_rehearsable(
            format!("load balancer kind {}", lb.kind.as_str()),
            "the executor's lab replicates pfsense-bootstrap and haproxy (a Linux box) only",
        ));
    };
    needs_loopback(&lb.name, lb_address)?;
    if let Some(h) = s.hypervisors.iter().find(|h| !matches!(h.kind, HypervisorKind::Proxmox | HypervisorKind::Libvirt)) {
        return Err(not_rehearsable(
            format!("hypervisor {} ({})", h.name, h.kind.as_str()),
            "the executor's lab shims Proxmox's qm and libvirt's virsh only",
        ));
    }
    // Without an IaC tool the plan's applies are by-hand steps with checks.
    if let Some(Err(why)) = s.iac.as_ref().map(|i| executor_lab::IacProgram::of(&i.apply)) {
        return Err(not_rehearsable("the scenario's IaC command", why));
    }
    for h in &s.hypervisors {
        needs_loopback(&h.name, h.address.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
    }
    needs_loopback("the VIP", s.control_plane_endpoint.vip)
}

/// A host per machine: every node (a new master's VM is a host from the start; the twin has it
/// once Terraform made it), the load balancer, the hypervisors, the workstation. Not started.
fn prepare_hosts(t: &Topology, root: &Path, workstation: Ipv4Addr) -> Result<FixtureHosts, LabError> {
    let mut fixture = executor_lab::machines(t);
    fixture.push(FixtureHost { name: WORKSTATION.to_string(), address: workstation });
    Ok(FixtureHosts::prepare(root, fixture, TmpDir::PerHost)?
        .with_root_home(RootHome::PerHost)
        .with_resolver(executor_lab::hosts_file(t, workstation)))
}

/// The files of the twin's starting state: the lab CA, kubeadm's configuration and cluster-info,
/// each joined node's kubelet.conf, each master's cert, manifests and admin.conf, the infra repo,
/// the shims, kube-proxy's ConfigMap. Returns the CA.
fn write_start(t: &Topology, initial: &Cluster, hosts: &FixtureHosts, paths: &LabPaths) -> Result<LabCa, LabError> {
    let root = hosts.root();
    let endpoint = &t.scenario.control_plane_endpoint;
    let ca = LabCa::new(root)?;
    ca.write_key(&root.join("ca.key"))?;
    host::write_file(&root.join("kubeadm-config.yaml"), &cluster_configuration(t, initial.kubeadm_endpoint))?;
    let existing = t.node(t.existing_master()).address;
    let ca_pem = ca.pem();
    let existing_api = format!("https://{existing}:{}", endpoint.port);
    host::write_file(&root.join(CLUSTER_INFO), &executor_lab::kubeconfig_file(&existing_api, ca_pem.as_bytes()))?;
    if initial.kubeadm_endpoint {
        // The twin's kubeadm-config is on the VIP only after 0.2's by-hand edit, which leaves its
        // file on the existing master (0.3 reads it).
        let edited = hosts.host_dir(t.name(t.existing_master())).join("tmp").join(KUBEADM_NEW);
        host::write_file(&edited, &cluster_configuration(t, true))?;
    }
    host::write_file(&hosts.etc_kubernetes(WORKSTATION).join("pki/ca.crt"), &ca_pem)?;
    write_nodes(t, initial, hosts, &ca)?;
    executor_lab::prepare_infra_repo(t, initial, paths, root, ca_pem.as_bytes())?;
    executor_lab::write_root_kubeconfigs(t, hosts, paths, WORKSTATION, ca_pem.as_bytes())?;
    executor_lab::write_host_shims(&hosts.shims(), root, t)?;
    write_kubeadm_shim(&hosts.shims(), root)?;
    std::fs::create_dir_all(root.join(executor_lab::CLUSTER_DIR)).map_err(|e| LabError::io("the cluster directory", e))?;
    let kube_proxy_server = if initial.kube_proxy_vip { endpoint.vip } else { existing };
    host::write_file(
        &root.join(executor_lab::CLUSTER_DIR).join(executor_lab::KUBE_PROXY_CONFIGMAP),
        &executor_lab::kube_proxy_configmap(&format!("https://{kube_proxy_server}:{}", endpoint.port)),
    )?;
    Ok(ca)
}

/// Each joined node's kubelet.conf on the server the twin says; each master's cert (with the VIP
/// SANs where the twin has them), manifests and admin.conf.
fn write_nodes(t: &Topology, initial: &Cluster, hosts: &FixtureHosts, ca: &LabCa) -> Result<(), LabError> {
    let endpoint = &t.scenario.control_plane_endpoint;
    let existing = t.node(t.existing_master()).address;
    for node in initial.joined.iter() {
        let kube = hosts.etc_kubernetes(t.name(node));
        let server = if initial.kubelet_vip.contains(node) {
            endpoint.vip
        } else if initial.kubelet_local.contains(node) {
            t.node(node).address
        } else {
            existing
        };
        host::write_file(&kube.join("kubelet.conf"), &kubeconfig(server, endpoint.port))?;
        if initial.control_plane.contains(node) {
            let vip = initial.cert_vip.contains(node).then_some((endpoint.vip, endpoint.fqdn.as_str()));
            let sans = ServingCertSans::of(t.name(node), t.node(node).address, vip);
            if initial.cert_present.contains(node) {
                ca.issue(&sans, &kube.join("pki/apiserver.crt"), &kube.join("pki/apiserver.key"))?;
            }
            host::write_file(&kube.join(APISERVER_MANIFEST), &apiserver_manifest(t, node, initial.apiserver_flags.contains(node)))?;
            host::write_file(&kube.join(ETCD_MANIFEST), &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd-{}\n", t.name(node)))?;
            // kubeadm writes admin.conf on the endpoint it had: the first master's own address.
            let admin = if node == t.existing_master() { existing } else { endpoint.vip };
            host::write_file(&kube.join("admin.conf"), &kubeconfig(admin, endpoint.port))?;
        }
    }
    Ok(())
}

/// The LB runs what the infra repo declares: at the lab's start, the declared state of the twin's
/// start; as the `lb-reload` fault, whatever the repo declares by then. pfSense: the bootstrap
/// script uploaded and run; a Linux box: `haproxy.cfg` installed and HAProxy reloaded by its unit.
pub(super) fn deploy_lb(t: &Topology, hosts: &FixtureHosts, infra_repo: &Path) -> Result<(), LabError> {
    let lb = &t.scenario.load_balancer;
    if lb.kind == LbKind::Haproxy {
        let (config, _) = executor_lab::lb_files(t);
        let installed = hosts.private_path(&lb.name, config).ok_or_else(|| not_rehearsable(config, "not a directory of the LB's own"))?;
        std::fs::copy(infra_repo.join(lb.config_file()), installed).map_err(|e| LabError::io("install the LB's haproxy.cfg", e))?;
        hosts.run(lb.machine_address().unwrap_or(Ipv4Addr::UNSPECIFIED), "systemctl reload-or-restart haproxy")?;
        return Ok(());
    }
    let script = std::fs::read(infra_repo.join(lb.bootstrap_script())).map_err(|e| LabError::io("the bootstrap script", e))?;
    std::fs::write(hosts.host_dir(&lb.name).join("tmp/haproxy-bootstrap.php"), script).map_err(|e| LabError::io("deploy the LB", e))?;
    hosts.run(lb.machine_address().unwrap_or(Ipv4Addr::UNSPECIFIED), "php /tmp/haproxy-bootstrap.php")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::fault::Fault;
    use plan_sim::run::Point;

    /// A fault in a slice strikes at its step's place in the slice, from where the whole plan
    /// stands before the slice; a fault on a step the slice leaves out is refused.
    #[test]
    fn a_fault_in_a_slice_strikes_at_its_step_there_and_one_outside_it_is_refused() {
        let t = Topology::new(&plan_model::validate::parse_scenario(include_str!("../../../scenarios/homelab.yaml")).expect("homelab"));
        let plan = plan_model::planner::generate(&t);
        let steps: Vec<String> = ["4.1", "4.2", "4.3"].iter().map(|s| s.to_string()).collect();
        let sliced = slice(&plan, &steps).expect("a slice");
        let start = *predict_slice(&t, &plan, &sliced).before(0);
        assert_ne!(start, Cluster::initial(&t), "the slice starts where the whole plan stands before 4.1");
        let m3 = t.resolve("master-3").expect("master-3");
        let at = |id: &str| Point { step: plan.steps.iter().position(|s| s.id == id).expect(id) as u16, action: 0 };
        let partition = |id: &str| Injection { at: at(id), fault: Fault::Partition { node: m3, lasts_s: Some(300) } };
        let (injection, strike) = strike_of(&t, &plan, &sliced, &start, Some(partition("4.2"))).expect("strikes").expect("a fault");
        assert_eq!((injection.at.step, strike.step, strike.step_id.as_str()), (1, 1, "4.2"));
        match strike_of(&t, &plan, &sliced, &start, Some(partition("2.5"))) {
            Err(LabError::NotRehearsable { why, .. }) => assert!(why.contains("leaves that step out"), "{why}"),
            other => panic!("refused: {other:?}"),
        }
        // The twin's state at the strike is the slice's, from its start: three voters, one frozen.
        let c = executor_fault::state_at_strike(&t, &sliced, &start, injection);
        assert_eq!(c.voters.len(), 3);
    }
}
