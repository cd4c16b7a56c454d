//! The scenario's IaC program on the lab: a wrapper in the infra repo (`scripts/tg apply
//! {stack}`) or a program on the hosts' PATH run in the stack's directory (`terragrunt apply
//! -auto-approve`), both answered by one shim.

use super::FLAG_VALUE;
use crate::error::LabError;
use crate::host;
use plan_model::topology::Topology;
use std::path::Path;

/// The programs the lab's hosts run from its shims directory (`write_host_shims`, the kubeadm
/// shim): an IaC command may not take one of their names.
pub const LAB_SHIM_PROGRAMS: [&str; 14] =
    ["sudo", "sleep", "systemctl", "virsh", "containerd", "bd", "qm", "reboot", "ping", "sockstat", "etcdctl", "php", "kubectl", "kubeadm"];

/// Where the lab puts the scenario's IaC program: a wrapper the repo holds (`scripts/tg apply
/// {stack}`), or a program on the hosts' PATH run in the stack's directory (`terragrunt apply
/// -auto-approve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IacProgram {
    /// A path inside the infra repo.
    InRepo(String),
    /// A name looked up on PATH: the lab's shims directory.
    OnPath(String),
}

impl IacProgram {
    /// The program of the scenario's apply command, or why the lab cannot stand in for it.
    ///
    /// # Errors
    /// An absolute path, a path out of the repo, or the name of a program the lab shims already.
    pub fn of(apply: &str) -> Result<Self, String> {
        let program = apply.split_whitespace().next().unwrap_or_default();
        if program.is_empty() || program.starts_with('/') || program.split('/').any(|part| part == "..") {
            return Err(format!("`{program}` is not a program in the infra repo or on PATH"));
        }
        if LAB_SHIM_PROGRAMS.contains(&program) {
            return Err(format!("`{program}` is a program the lab already stands in for"));
        }
        Ok(if program.contains('/') { Self::InRepo(program.to_string()) } else { Self::OnPath(program.to_string()) })
    }
}

/// The scenario's IaC program on the lab (`scripts/tg` in the repo, or `terragrunt` on PATH):
/// `apply` of the config stack writes each listed master's apiserver flags into its manifest (what
/// the stack's remote-exec does); a `-target=module.X` apply records that X's VM exists; the rest
/// is logged. The stack is the argument that is neither the verb nor an option (a wrapper's
/// `{stack}`), else the directory it runs in, relative to the repo.
pub(super) fn write_iac_shim(repo: &Path, shims: &Path, root: &Path, t: &Topology) -> Result<(), LabError> {
    let s = &t.scenario;
    let Some(iac) = s.iac.as_ref().filter(|i| i.kind == plan_model::scenario::IacKind::Terragrunt) else { return Ok(()) };
    let program =
        IacProgram::of(&iac.apply).map_err(|why| LabError::NotRehearsable { what: "the scenario's IaC command".to_string(), why })?;
    let path = match &program {
        IacProgram::InRepo(relative) => repo.join(relative),
        IacProgram::OnPath(name) => shims.join(name),
    };
    let flags: Vec<String> = s.apiserver_flags().iter().map(|f| format!("    - --{f}={FLAG_VALUE}")).collect();
    let masters: Vec<String> =
        t.nodes.iter().filter(|n| n.kind != plan_model::topology::NodeKind::Worker).map(|n| format!("{} {}", n.address, n.name)).collect();
    host::write_file(&root.join("flags"), &(flags.join("\n") + "\n"))?;
    host::write_file(&root.join("masters"), &(masters.join("\n") + "\n"))?;
    host::write_executable(
        &path,
        &format!(
            r#"#!/bin/sh
# The IaC tool on the lab: the config stack's effect on the masters, VMs recorded, the rest logged.
echo "$0 $*" >> {root}/iac.log
verb= stack= module=
for a; do
  case "$a" in
    apply|destroy) [ -n "$verb" ] || verb=$a ;;
    -target=module.*) module=${{a#-target=module.}} ;;
    -*) ;;
    *) [ -n "$verb" ] && [ -z "$stack" ] && stack=$a ;;
  esac
done
[ -n "$stack" ] || {{ stack=${{PWD#{repo}}}; stack=${{stack#/}}; }}
if [ "$verb" = apply ] && [ -n "$module" ]; then
  mkdir -p {root}/vms && touch {root}/vms/$module
  echo "apply: module.$module"
elif [ "$verb" = apply ] && [ "$stack" = "{stack}" ]; then
  main={repo}/{stack}/main.tf
  hosts=$(sed -n 's/^k8s_master_hosts = \[\(.*\)\]/\1/p' "$main" | tr -d '" ' | tr ',' ' ')
  [ -n "$hosts" ] || hosts=$(sed -n 's/^k8s_master_host = "\(.*\)"/\1/p' "$main")
  for address in $hosts; do
    name=$(awk -v a="$address" '$1 == a {{ print $2 }}' {root}/masters)
    manifest={root}/hosts/$name/etc-kubernetes/manifests/kube-apiserver.yaml
    [ -n "$name" ] && [ -e "$manifest" ] || {{ echo "apply {stack}: $address is not a master with a manifest" >&2; exit 1; }}
    while read -r flag; do
      grep -qF -- "$flag" "$manifest" || printf '%s\n' "$flag" >> "$manifest"
    done < {root}/flags
    echo "apply {stack}: flags on $name"
  done
else
  echo "Apply complete! (lab: no effect modelled)"
fi
"#,
            root = root.display(),
            repo = repo.display(),
            stack = s.config_stack.as_ref().map_or("config-stack", |c| c.path.as_str()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    fn topology(file: &str) -> Topology {
        let path = format!("{}/../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
        Topology::new(&parse_scenario(&std::fs::read_to_string(path).expect("scenario")).expect("valid"))
    }

    #[test]
    fn the_lab_stands_in_for_a_wrapper_in_the_repo_or_a_program_on_path_and_nothing_else() {
        assert_eq!(IacProgram::of("scripts/tg apply {stack}"), Ok(IacProgram::InRepo("scripts/tg".into())));
        assert_eq!(IacProgram::of("terragrunt apply -auto-approve"), Ok(IacProgram::OnPath("terragrunt".into())));
        assert_eq!(IacProgram::of("terraform apply -auto-approve"), Ok(IacProgram::OnPath("terraform".into())));
        for refused in
            ["/usr/local/bin/terragrunt apply", "../tools/tg apply {stack}", "kubectl apply -f {stack}", "sudo terragrunt apply", ""]
        {
            assert!(IacProgram::of(refused).is_err(), "{refused}");
        }
    }

    /// Runs the shim the way the plan's commands do: `cd STACK && terragrunt apply …` (five
    /// masters, on PATH) or `scripts/tg apply STACK` from the repo's top (the homelab). The config
    /// stack's apply writes the flags into each listed master's manifest; a module target records
    /// the VM; any other stack changes nothing.
    #[test]
    fn the_iac_shim_applies_the_config_stack_from_its_directory_or_its_argument() {
        for (file, in_stack_dir) in [("five-masters.yaml", true), ("homelab.yaml", false)] {
            let t = topology(file);
            let dir = tempfile::tempdir().expect("tempdir");
            let (root, repo) = (dir.path().to_path_buf(), dir.path().join("infra"));
            let stack = t.scenario.config_stack.as_ref().expect("a config stack").path.clone();
            let [first, second] =
                [0, 1].map(|i| t.nodes.iter().filter(|n| n.kind != plan_model::topology::NodeKind::Worker).nth(i).unwrap());
            host::write_file(
                &repo.join(&stack).join("main.tf"),
                &format!("k8s_master_hosts = [\"{}\", \"{}\"]\n", first.address, second.address),
            )
            .unwrap();
            let manifest = |name: &str| root.join("hosts").join(name).join("etc-kubernetes/manifests/kube-apiserver.yaml");
            for node in [first, second] {
                host::write_file(&manifest(&node.name), "spec:\n").unwrap();
            }
            host::write_file(&repo.join("other/main.tf"), "").unwrap();
            write_iac_shim(&repo, &root.join("shims"), &root, &t).expect("written");
            let apply = |dir: &str, args: &[&str]| {
                let program = match IacProgram::of(&t.scenario.iac.as_ref().unwrap().apply).unwrap() {
                    IacProgram::InRepo(p) => repo.join(p),
                    IacProgram::OnPath(p) => root.join("shims").join(p),
                };
                let out = std::process::Command::new(program).args(args).current_dir(repo.join(dir)).output().expect("runs");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).to_string()
            };
            let flags = |name: &str| std::fs::read_to_string(manifest(name)).unwrap().matches("- --").count();
            let other = if in_stack_dir { apply("other", &["apply", "-auto-approve"]) } else { apply(".", &["apply", "other"]) };
            assert!(other.contains("no effect modelled"), "{file}: {other}");
            assert_eq!((flags(&first.name), flags(&second.name)), (0, 0), "{file}");
            let applied = if in_stack_dir { apply(&stack, &["apply", "-auto-approve"]) } else { apply(".", &["apply", &stack]) };
            assert!(applied.contains(&format!("flags on {}", second.name)), "{file}: {applied}");
            let wanted = t.scenario.apiserver_flags().len();
            assert!(wanted > 0 && flags(&first.name) == wanted && flags(&second.name) == wanted, "{file}");
            if in_stack_dir {
                apply("other", &["apply", "-auto-approve", "-target=module.ctl-c"]);
            } else {
                apply(".", &["apply", "-target=module.ctl-c"]);
            }
            assert!(root.join("vms/ctl-c").exists(), "{file}");
        }
    }
}
