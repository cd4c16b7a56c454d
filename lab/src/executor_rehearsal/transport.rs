//! The executor's transport on the lab.

use plan_exec::guard::Guard;
use plan_exec::ssh::OpensshTransport;
use plan_exec::target::{HostTarget, Place};
use plan_exec::transport::{quote, Completed, FileRead, Request, Transport};
use plan_exec::ExecError;

/// The executor's transport on the lab: every host over SSH under the loopback guard, the
/// workstation's commands on the workstation's host as on any host (the guard asks that host
/// which server its `kubectl` reaches, as it asks a master).
///
/// The infra repo's commands are the exception: `scripts/tg apply` and `git push` take their
/// destinations from configuration no host can be asked about (terraform's providers, a git
/// remote), so the guard's rule for hosts would refuse them. They are held to its rule for local
/// commands instead (no address off loopback, no ssh of their own): on the lab `scripts/tg` is
/// the lab's shim and the remote a bare repository in its directory; `plan execute` runs them in
/// a network namespace.
pub(super) struct LabTransport {
    pub(super) remote: OpensshTransport,
    /// The infra repo's commands, on the workstation's host, checked here with `guard`.
    pub(super) infra_repo: OpensshTransport,
    pub(super) workstation_host: HostTarget,
    pub(super) guard: Guard,
}

impl Transport for LabTransport {
    fn run(&mut self, place: &Place, request: &Request<'_>) -> Result<Completed, ExecError> {
        let workstation = Place::Host(self.workstation_host.clone());
        match place {
            Place::Local { dir: None, .. } => self.remote.run(&workstation, request),
            Place::Local { dir: Some(dir), .. } => {
                self.guard.check_local_command(request.shell)?;
                let shell = format!("cd {} && {}", quote(dir), request.shell);
                self.infra_repo.run(&workstation, &Request { shell: &shell, ..*request })
            }
            Place::Host(_) => self.remote.run(place, request),
        }
    }

    fn read_file(&mut self, host: &HostTarget, path: &str) -> Result<FileRead, ExecError> {
        self.remote.read_file(host, path)
    }

    fn read_files(&mut self, reads: &[(HostTarget, &str)]) -> Vec<Result<FileRead, ExecError>> {
        self.remote.read_files(reads)
    }
}
