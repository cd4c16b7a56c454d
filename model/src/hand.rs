//! What a person does for a by-hand command, typed: the edit of a file with its structured
//! change, the kubeadm configuration made for the HA endpoint, or work outside every file the
//! plan holds. The command's text is this value's description, and whatever carries the work
//! out (the operator, the lab) reads the value, never the text.

use crate::action::Action;
use crate::scenario::HealthCheck;

/// The work behind one by-hand command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HandTask {
    /// Edits of files in the infra repo, made in order.
    Repo(Vec<RepoEdit>),
    /// The kubeadm configuration file on the node the step runs on, given the cluster's HA
    /// endpoint and the serving certificate's extra SANs.
    KubeadmConfig { file: String, endpoint: String, cert_sans: Vec<String> },
    /// A recovery action the twin chose that the executor cannot carry out itself.
    Recovery(Action),
    /// Work outside every file the plan holds (a web UI, IPAM, a tracker, a DNS server, a
    /// machine): the check after it confirms it.
    #[default]
    Elsewhere,
}

/// One edit of one file (or of every file of a directory) in the infra repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoEdit {
    /// Relative to the infra repo.
    pub file: String,
    /// The line people find it at, shown only.
    pub line: Option<u32>,
    pub change: Change,
}

/// What an edit changes, as structured as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The first occurrence of `from` becomes `to`.
    Replace { from: String, to: String },
    /// The line `key = …` becomes `key = value` (added when there is none).
    Assign { key: String, value: String },
    /// Lines added at the end of the file.
    Append(Vec<String>),
    /// The pfSense bootstrap script's apiserver pool: the members of its `build_pool_https()` call.
    PoolMembers(String),
    /// HAProxy's apiserver frontend at the VIP and the backend it sends to, each a whole section of
    /// the config file (added, or put in place of the section of that name).
    HaproxySections { frontend: HaproxyFrontend, backend: HaproxyBackend },
    /// The `server` lines of an HAProxy backend: the pool's members, in place of the ones it had.
    HaproxyServers(HaproxyBackend),
    /// A change only described: the plan does not know the file's syntax well enough to make it.
    Described(String),
}

/// An HAProxy frontend in TCP mode: where it listens and the backend it sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyFrontend {
    pub name: String,
    /// `ADDRESS:PORT`.
    pub bind: String,
    pub backend: String,
}

/// An HAProxy backend in TCP mode with the scenario's health check, and its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyBackend {
    pub name: String,
    pub check: HealthCheck,
    pub servers: Vec<HaproxyServer>,
}

/// One `server NAME ADDRESS:PORT` of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyServer {
    pub name: String,
    /// `ADDRESS:PORT`.
    pub address: String,
}

impl HaproxyFrontend {
    /// The section as it stands in the config file: its header, then its indented lines.
    pub fn section(&self) -> Vec<String> {
        vec![
            format!("frontend {}", self.name),
            format!("    bind {}", self.bind),
            "    mode tcp".to_string(),
            format!("    default_backend {}", self.backend),
        ]
    }
}

impl HaproxyBackend {
    /// The health check's lines in the backend (a `tcp` check is HAProxy's default connect check).
    fn check_lines(&self) -> &'static [&'static str] {
        match self.check {
            HealthCheck::HttpsReadyz => &["option httpchk GET /readyz", "http-check expect status 200"],
            HealthCheck::Tcp => &[],
        }
    }

    /// Each server's `server` line, without its indentation.
    pub fn server_lines(&self) -> Vec<String> {
        let check = match self.check {
            HealthCheck::HttpsReadyz => "check check-ssl verify none",
            HealthCheck::Tcp => "check",
        };
        self.servers.iter().map(|s| format!("server {} {} {check}", s.name, s.address)).collect()
    }

    /// The section as it stands in the config file: its header, then its indented lines.
    pub fn section(&self) -> Vec<String> {
        let mut lines = vec![format!("backend {}", self.name), "    mode tcp".to_string()];
        lines.extend(self.check_lines().iter().map(|l| format!("    {l}")));
        lines.extend(self.server_lines().into_iter().map(|l| format!("    {l}")));
        lines
    }

    /// What a person reads: `mode tcp, CHECK; server …; server …`.
    fn describe(&self) -> String {
        let check = match self.check {
            HealthCheck::HttpsReadyz => self.check_lines().join(", "),
            HealthCheck::Tcp => "TCP check".to_string(),
        };
        format!("mode tcp, {check}; {}", self.server_lines().join("; "))
    }
}

impl RepoEdit {
    pub fn new(file: impl Into<String>, change: Change) -> RepoEdit {
        RepoEdit { file: file.into(), line: None, change }
    }

    /// `edit FILE[:LINE]: CHANGE`, what a person reads.
    pub fn describe(&self) -> String {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        let change = match &self.change {
            Change::Replace { from, to } => format!("{from} -> {to}"),
            Change::Assign { key, value } => format!("{key} = {value}"),
            Change::Append(lines) => lines.iter().map(|l| format!("+ {l}")).collect::<Vec<_>>().join(" "),
            Change::PoolMembers(pool) => format!("pool {pool}"),
            Change::HaproxySections { frontend, backend } => format!(
                "frontend {} (bind {}, mode tcp, default_backend {}); backend {} ({})",
                frontend.name,
                frontend.bind,
                frontend.backend,
                backend.name,
                backend.describe()
            ),
            Change::HaproxyServers(backend) => format!("backend {}: {}", backend.name, backend.server_lines().join("; ")),
            Change::Described(words) => words.clone(),
        };
        format!("edit {}{line}: {change}", self.file)
    }
}

impl HandTask {
    /// What a person reads: the text of the by-hand command.
    pub fn describe(&self, elsewhere: &str) -> String {
        match self {
            HandTask::Repo(edits) => edits.iter().map(RepoEdit::describe).collect::<Vec<_>>().join("; "),
            HandTask::KubeadmConfig { file, endpoint, cert_sans } => format!(
                "edit {file}: existing ClusterConfiguration + controlPlaneEndpoint: {endpoint} + apiServer.certSANs: [{}]",
                cert_sans.join(", ")
            ),
            HandTask::Recovery(_) | HandTask::Elsewhere => elsewhere.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_reads_as_the_edit_a_person_makes() {
        let replace = RepoEdit {
            line: Some(231),
            ..RepoEdit::new("config.tfvars", Change::Replace { from: "https://a:6443".into(), to: "https://v:6443".into() })
        };
        assert_eq!(replace.describe(), "edit config.tfvars:231: https://a:6443 -> https://v:6443");
        let assign = RepoEdit::new("stacks/flags/main.tf", Change::Assign { key: "hosts".into(), value: "[\"a\"]".into() });
        assert_eq!(assign.describe(), "edit stacks/flags/main.tf: hosts = [\"a\"]");
        let append = RepoEdit::new("lb/b.php", Change::Append(vec!["$A[] = 'x';".into(), "$B[] = 'y';".into()]));
        assert_eq!(append.describe(), "edit lb/b.php: + $A[] = 'x'; + $B[] = 'y';");
        let both = HandTask::Repo(vec![assign, append]);
        assert_eq!(both.describe("unused"), "edit stacks/flags/main.tf: hosts = [\"a\"]; edit lb/b.php: + $A[] = 'x'; + $B[] = 'y';");
        assert_eq!(HandTask::Elsewhere.describe("register it in IPAM"), "register it in IPAM");
    }

    fn backend(check: HealthCheck) -> HaproxyBackend {
        let server = |name: &str, address: &str| HaproxyServer { name: name.into(), address: address.into() };
        HaproxyBackend {
            name: "apiserver".into(),
            check,
            servers: vec![server("cp-1", "10.0.0.21:6443"), server("cp-2", "10.0.0.22:6443")],
        }
    }

    #[test]
    fn haproxys_sections_read_as_the_operator_text_and_render_as_config_lines() {
        let frontend = HaproxyFrontend { name: "apiserver".into(), bind: "10.0.0.5:6443".into(), backend: "apiserver".into() };
        let sections = RepoEdit::new(
            "haproxy/haproxy.cfg",
            Change::HaproxySections { frontend: frontend.clone(), backend: backend(HealthCheck::HttpsReadyz) },
        );
        assert_eq!(
            sections.describe(),
            "edit haproxy/haproxy.cfg: frontend apiserver (bind 10.0.0.5:6443, mode tcp, default_backend apiserver); backend apiserver (mode tcp, option httpchk GET /readyz, http-check expect status 200; server cp-1 10.0.0.21:6443 check check-ssl verify none; server cp-2 10.0.0.22:6443 check check-ssl verify none)"
        );
        assert_eq!(frontend.section(), ["frontend apiserver", "    bind 10.0.0.5:6443", "    mode tcp", "    default_backend apiserver"]);
        assert_eq!(
            backend(HealthCheck::HttpsReadyz).section(),
            [
                "backend apiserver",
                "    mode tcp",
                "    option httpchk GET /readyz",
                "    http-check expect status 200",
                "    server cp-1 10.0.0.21:6443 check check-ssl verify none",
                "    server cp-2 10.0.0.22:6443 check check-ssl verify none",
            ]
        );
        // A TCP check is HAProxy's connect check: no httpchk line, a plain `check`.
        let tcp = backend(HealthCheck::Tcp);
        assert_eq!(
            tcp.section(),
            ["backend apiserver", "    mode tcp", "    server cp-1 10.0.0.21:6443 check", "    server cp-2 10.0.0.22:6443 check"]
        );
        assert_eq!(
            RepoEdit::new("h.cfg", Change::HaproxyServers(tcp)).describe(),
            "edit h.cfg: backend apiserver: server cp-1 10.0.0.21:6443 check; server cp-2 10.0.0.22:6443 check"
        );
    }
}
