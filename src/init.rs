//! `plan init`: writes a starter scenario from flags, or from a live cluster read read-only.

use crate::input::io_reason;
use crate::{output, Failure};
use plan_exec::guard::Guard;
use plan_exec::kubernetes::{KubeApi, KubeconfigSource};
use plan_model::scenario::{DnsVia, HypervisorKind, IacKind, LbKind};
use plan_model::starter::{self, from_cluster, Answers, Machine, Profiles};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The scenario's name (a safe name: lowercase letters, digits, '-' and '.').
    #[arg(long, default_value = "cluster")]
    pub name: String,
    /// How many control-plane nodes the cluster ends with: 3, 5 or 7.
    #[arg(long, default_value_t = 3)]
    pub masters: u32,
    /// The one control-plane node today.
    #[arg(long, value_name = "NAME=ADDRESS")]
    pub first_master: Option<Machine>,
    /// A master to create, in the order they join; exactly masters - 1 of them (repeat it).
    #[arg(long = "new-master", value_name = "NAME=ADDRESS")]
    pub new_masters: Vec<Machine>,
    /// A worker node (repeat it).
    #[arg(long = "worker", value_name = "NAME=ADDRESS")]
    pub workers: Vec<Machine>,
    /// The free address every client will reach the API on.
    #[arg(long, value_name = "ADDRESS")]
    pub vip: Option<Ipv4Addr>,
    /// The VIP's DNS name with its zone (k8s-api.example.lan); the zone becomes dns.zone.
    #[arg(long, value_name = "NAME")]
    pub fqdn: Option<String>,
    /// The API port on the VIP [default: 6443; with --lb keepalived 8443, the apiservers staying on 6443].
    #[arg(long)]
    pub port: Option<u16>,
    /// The cluster's Kubernetes version, major.minor [default: 1.34, marked TODO].
    #[arg(long, value_name = "VERSION")]
    pub kubernetes: Option<String>,
    /// The load balancer machine that serves the VIP (pfsense-bootstrap, haproxy; keepalived and kube-vip have none).
    #[arg(long, value_name = "NAME=ADDRESS")]
    pub lb_host: Option<Machine>,
    /// A hypervisor the VMs run on; the new masters are spread over them in order (repeat it; optional with --hypervisor none).
    #[arg(long = "hypervisor-host", value_name = "NAME=ADDRESS")]
    pub hypervisor_hosts: Vec<Machine>,
    /// What serves the VIP: HAProxy on pfSense driven by a bootstrap script, HAProxy on a Linux box, keepalived + HAProxy on the masters, kube-vip on the masters.
    #[arg(long, value_enum, default_value_t = LbArg::PfsenseBootstrap)]
    pub lb: LbArg,
    /// What runs the machines: Proxmox (qm), libvirt (virsh), or none (you provide them).
    #[arg(long, value_enum, default_value_t = HypervisorArg::Proxmox)]
    pub hypervisor: HypervisorArg,
    /// How the infra repo's changes are applied: a terragrunt repo, or none (by-hand steps).
    #[arg(long, value_enum, default_value_t = IacArg::Terragrunt)]
    pub iac: IacArg,
    /// How the VIP's DNS record is made: through the IaC repo, by hand, or no DNS for the API.
    #[arg(long, value_enum, default_value_t = DnsArg::Iac)]
    pub dns: DnsArg,
    /// Fill what the flags leave open from a live cluster, read-only (its nodes and kubeadm-config).
    #[arg(long)]
    pub from_cluster: bool,
    /// The kubeconfig for --from-cluster [default: $KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "PATH", requires = "from_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Write the scenario to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE when it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LbArg {
    PfsenseBootstrap,
    Haproxy,
    Keepalived,
    KubeVip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HypervisorArg {
    Proxmox,
    Libvirt,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IacArg {
    Terragrunt,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsArg {
    Iac,
    ByHand,
    None,
}

/// The profile flags as the model's profiles.
fn profiles(args: &InitArgs) -> Profiles {
    Profiles {
        lb: match args.lb {
            LbArg::PfsenseBootstrap => LbKind::PfsenseBootstrap,
            LbArg::Haproxy => LbKind::Haproxy,
            LbArg::Keepalived => LbKind::Keepalived,
            LbArg::KubeVip => LbKind::KubeVip,
        },
        hypervisor: match args.hypervisor {
            HypervisorArg::Proxmox => HypervisorKind::Proxmox,
            HypervisorArg::Libvirt => HypervisorKind::Libvirt,
            HypervisorArg::None => HypervisorKind::None,
        },
        iac: match args.iac {
            IacArg::Terragrunt => IacKind::Terragrunt,
            IacArg::None => IacKind::None,
        },
        dns: match args.dns {
            DnsArg::Iac => DnsVia::Iac,
            DnsArg::ByHand => DnsVia::ByHand,
            DnsArg::None => DnsVia::None,
        },
    }
}

/// The answers the flags give.
fn answers(args: &InitArgs) -> Answers {
    Answers {
        name: args.name.clone(),
        masters: args.masters,
        kubernetes_version: args.kubernetes.clone(),
        first_master: args.first_master.clone(),
        new_masters: args.new_masters.clone(),
        workers: args.workers.clone(),
        vip: args.vip,
        fqdn: args.fqdn.clone(),
        port: args.port,
        lb_host: args.lb_host.clone(),
        hypervisor_hosts: args.hypervisor_hosts.clone(),
        profiles: profiles(args),
        ..Answers::default()
    }
}

/// Writes the starter scenario the flags (and the cluster, with --from-cluster) describe.
pub fn run(args: &InitArgs) -> Result<(), Failure> {
    // The output file is checked first: a cluster is not read for a file that cannot be written.
    if let Some(path) = &args.output {
        refuse_unwritable(path, args.force)?;
    }
    let mut answers = answers(args);
    if args.from_cluster {
        let source = args.kubeconfig.clone().map_or(KubeconfigSource::Environment, KubeconfigSource::File);
        read_cluster(&source, &mut answers)?;
    }
    let text = starter::render(&answers).map_err(|e| Failure::Input(format!("plan init: {e}")))?;
    match &args.output {
        None => output::print(&text),
        Some(path) => {
            write_new(path, &text, args.force)?;
            let todos = text.matches("# TODO:").count();
            let shown = path.display();
            output::print(&format!(
                "plan init: wrote {shown}: {todos} placeholder(s) marked TODO to replace (grep -n TODO {shown}), then plan --scenario {shown} check\n"
            ))
        }
    }
}

/// Fills `answers` from the cluster the kubeconfig names.
fn read_cluster(source: &KubeconfigSource, answers: &mut Answers) -> Result<(), Failure> {
    let api = KubeApi::connect(source, Guard::from_env())
        .map_err(|e| Failure::Input(format!("plan init --from-cluster: {}", one_line(&e.to_string()))))?;
    let seen = api.survey().map_err(|e| {
        Failure::Input(format!("plan init --from-cluster: cannot read the cluster at {}: {}", api.server, one_line(&e.to_string())))
    })?;
    tracing::info!(server = %seen.server, nodes = seen.nodes.len(), kubeadm_config = seen.kubeadm.is_some(), "cluster surveyed");
    from_cluster::fill(answers, &seen).map_err(|e| Failure::Input(format!("plan init --from-cluster: {e}")))
}

/// A message from the Kubernetes client on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn refuse_unwritable(path: &Path, force: bool) -> Result<(), Failure> {
    let shown = path.display();
    if path.is_dir() {
        return Err(Failure::Input(format!(
            "--output {shown} is a directory: name a file in it, e.g. {}",
            path.join("cluster.yaml").display()
        )));
    }
    if path.exists() && !force {
        return Err(Failure::Input(format!("--output {shown} exists: plan init does not overwrite a scenario without --force")));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => {
            Err(Failure::Input(format!("--output {shown}: the directory {} does not exist", parent.display())))
        }
        _ => Ok(()),
    }
}

/// Writes `text` to `path`: a new file, or (with `force`) over an existing one.
fn write_new(path: &Path, text: &str, force: bool) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Refused again at creation: the file may have appeared since the first look.
        options.create_new(true);
    }
    let cannot = |e: std::io::Error| Failure::Input(format!("cannot write {}: {}", path.display(), io_reason(&e)));
    let mut file = options.open(path).map_err(cannot)?;
    file.write_all(text.as_bytes()).map_err(cannot)
}
