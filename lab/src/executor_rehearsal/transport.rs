//! The executor's transport on the lab.

use crate::executor_lab::{self, LabPaths};
use crate::host::FixtureHosts;
use plan_exec::guard::Guard;
use plan_exec::ssh::OpensshTransport;
use plan_exec::target::{HostTarget, Place};
use plan_exec::transport::{quote, Completed, FileRead, Request, Transport};
use plan_exec::ExecError;
use plan_model::topology::Topology;
use std::sync::Arc;

/// The executor's transport on the lab: hosts over SSH under the loopback guard, the
/// workstation's commands on the workstation's host; every `kubectl` pinned to the server its
/// kubeconfig names at the moment it runs.
pub(super) struct LabTransport {
    pub(super) remote: OpensshTransport,
    pub(super) workstation: OpensshTransport,
    pub(super) workstation_host: HostTarget,
    pub(super) guard: Guard,
    pub(super) hosts: Arc<FixtureHosts>,
    pub(super) t: Topology,
    pub(super) paths: LabPaths,
}

impl LabTransport {
    /// The server `kubectl` at `place` talks to: the workstation's kubeconfig is the infra repo's
    /// first kubeconfig consumer; a host's is its `/etc/kubernetes/admin.conf`.
    fn kubectl_server(&self, place: &Place) -> String {
        let endpoint = &self.t.scenario.control_plane_endpoint;
        let direct = format!("https://{}:{}", self.t.node(self.t.existing_master()).address, endpoint.port);
        let file = match place {
            Place::Local { .. } => self
                .t
                .scenario
                .consumers
                .iter()
                .find(|c| c.kind == plan_model::scenario::ConsumerKind::Kubeconfig)
                .map(|c| self.paths.infra_repo.join(&c.path)),
            Place::Host(h) => Some(self.hosts.etc_kubernetes(&h.name).join("admin.conf")),
        };
        file.and_then(|f| std::fs::read_to_string(f).ok()).and_then(|text| executor_lab::server_in(&text)).unwrap_or(direct)
    }
}

impl Transport for LabTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let pinned = if request.shell.contains("kubectl ") {
            executor_lab::pin_kubectl(request.shell, &self.kubectl_server(place))
        } else {
            request.shell.to_string()
        };
        match place {
            Place::Local { dir, .. } => {
                self.guard.check_local_command(&pinned)?;
                let shell = match dir {
                    Some(dir) => format!("cd {} && {pinned}", quote(dir)),
                    None => pinned,
                };
                self.workstation.run(&Place::Host(self.workstation_host.clone()), &Request { shell: &shell, ..*request })
            }
            Place::Host(_) => self.remote.run(place, &Request { shell: &pinned, ..*request }),
        }
    }

    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        self.remote.read_file(host, path)
    }

    fn read_files(&mut self, reads: &[(HostTarget, &str)]) -> Vec<Result<FileRead, ExecError>> {
        self.remote.read_files(reads)
    }
}
