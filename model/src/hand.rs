//! What a person does for a by-hand command, typed: the edit of a file with its structured
//! change, the kubeadm configuration made for the HA endpoint, or work outside every file the
//! plan holds. The command's text is this value's description, and whatever carries the work
//! out (the operator, the lab) reads the value, never the text.

use crate::action::Action;

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
    /// A change only described: the plan does not know the file's syntax well enough to make it.
    Described(String),
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
}
