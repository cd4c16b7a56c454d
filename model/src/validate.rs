//! Reads a scenario's YAML and checks it is one the planner can work with, locating every error.

use crate::locate::{locate, FieldPath, Position};
use crate::scenario::{NodeRole, NodeSpec, Scenario};
use std::collections::HashMap;
use std::net::Ipv4Addr;

mod machines;
mod profiles;
mod words;
pub use words::in_operator_words;

/// The most nodes (existing and new) a scenario may hold: node sets are 64-bit masks.
pub const NODES_MAX: usize = 64;
/// The most kubeconfig consumers a scenario may hold (also a 64-bit mask).
pub const CONSUMERS_MAX: usize = 64;
/// The most hypervisors a scenario may hold.
/// The longest kubeadm TTLs accepted: a year.
const CERTS_TTL_MIN_MAX: u32 = 365 * 24 * 60;
const TOKEN_TTL_H_MAX: u32 = 365 * 24;
pub const HYPERVISORS_MAX: usize = 8;

/// What is wrong with a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioErrorKind {
    /// Not YAML, or not the scenario's shape (unknown field, wrong type, missing field).
    Syntax,
    DuplicateName,
    DuplicateAddress,
    VipConflict,
    TargetCount,
    UnknownReference,
    UnsafeValue,
    BadValue,
}

impl ScenarioErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioErrorKind::Syntax => "syntax",
            ScenarioErrorKind::DuplicateName => "duplicate-name",
            ScenarioErrorKind::DuplicateAddress => "duplicate-address",
            ScenarioErrorKind::VipConflict => "vip-conflict",
            ScenarioErrorKind::TargetCount => "target-count",
            ScenarioErrorKind::UnknownReference => "unknown-reference",
            ScenarioErrorKind::UnsafeValue => "unsafe-value",
            ScenarioErrorKind::BadValue => "bad-value",
        }
    }
}

/// One located problem in a scenario file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", match position { Some(p) => format!("line {}, column {}: ", p.line, p.column), None => String::new() })]
pub struct ScenarioError {
    pub kind: ScenarioErrorKind,
    /// The field the problem is in, e.g. `nodes[3].address`, when known.
    pub path: Option<String>,
    pub position: Option<Position>,
    pub message: String,
}

impl ScenarioError {
    /// The message with the field it is in, as the refusals show it: `MESSAGE (FIELD)`, or the
    /// message alone where the field is not known.
    pub fn message_and_field(&self) -> String {
        match &self.path {
            Some(path) => format!("{} ({path})", self.message),
            None => self.message.clone(),
        }
    }
}

/// Parses and validates a scenario.
///
/// # Errors
/// The first problem found, with its field path and position in `text` where they are known.
///
/// ```
/// let text = include_str!("../../scenarios/homelab.yaml");
/// let scenario = plan_model::validate::parse_scenario(text).unwrap();
/// assert_eq!(scenario.target.control_plane_count, 3);
/// ```
pub fn parse_scenario(text: &str) -> Result<Scenario, ScenarioError> {
    parse_scenario_every_problem(text).map_err(|mut problems| problems.swap_remove(0))
}

/// Parses and validates a scenario, reporting every problem the validation tells apart
/// ([`problems`]): an operator fixing a file sees them all at once.
///
/// # Errors
/// At least one problem, located like [`parse_scenario`]'s, in the order they are checked (the
/// first is [`parse_scenario`]'s). A file that is not YAML or not the scenario's shape has one:
/// the parser's first.
pub fn parse_scenario_every_problem(text: &str) -> Result<Scenario, Vec<ScenarioError>> {
    check_flow_nesting(text).map_err(|e| vec![e])?;
    let scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| vec![syntax_error(text, &e)])?;
    let found = problems(&scenario);
    if found.is_empty() {
        return Ok(scenario);
    }
    Err(found
        .into_iter()
        .map(|problem| ScenarioError {
            kind: problem.kind,
            position: locate(text, &problem.path),
            path: Some(problem.path.to_string()),
            message: problem.message,
        })
        .collect())
}

/// A YAML error (not YAML, or not the expected shape) as a located [`ScenarioErrorKind::Syntax`]
/// error; used for plan files too.
///
/// The parser's message loses its "at line L column C" tail (the position says it); a reader
/// error that gives a byte offset instead ("at position N") is located from it; an error at the
/// end of the text says so, since the likeliest cause is a file cut short.
pub fn syntax_error(text: &str, e: &serde_yaml_ng::Error) -> ScenarioError {
    let mut message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
    let mut position = e.location().map(|l| Position { line: l.line(), column: l.column() });
    if let Some((head, offset)) = message.rsplit_once(" at position ") {
        if let Ok(offset) = offset.parse::<usize>() {
            let before = text.get(..offset.min(text.len())).unwrap_or(text);
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            position = Some(Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 });
            message = head.to_string();
        }
    }
    let content = text.trim_end();
    let lines = content.lines().count();
    let last_width = content.lines().last().map_or(0, |l| l.chars().count());
    if position.is_some_and(|p| p.line > lines || (p.line == lines && p.column > last_width)) {
        message += " (the text ends here: is the file cut short?)";
    }
    ScenarioError { kind: ScenarioErrorKind::Syntax, path: None, position, message: in_operator_words(&message) }
}

/// Flow collections (`[..]`, `{..}`) nested deeper than this are refused before the YAML parser
/// sees them. The parser's scanner does work proportional to the nesting for every token, so a
/// file of `[[[[...` takes minutes; no scenario or plan file nests more than three levels.
pub const FLOW_NESTING_MAX: usize = 64;

/// Flow-collection openers times bytes: a bound on that scanner work which no text can evade
/// (nesting cannot exceed the openers, tokens cannot exceed the bytes). A 40 KB plan file with
/// 80 openers uses 3.2 million of it.
pub const FLOW_WORK_MAX: u64 = 1 << 26;

/// Refuses YAML whose flow collections would make the parser's scanner quadratic.
///
/// The nesting is measured the way a reader sees it (brackets outside comments and quoted
/// scalars, a block-context bracket only after a space or at a line's start); a crafted text that hides its
/// nesting from that reading still meets [`FLOW_WORK_MAX`].
///
/// # Errors
/// A [`ScenarioErrorKind::Syntax`] error at the bracket that goes past [`FLOW_NESTING_MAX`], or
/// without a position when the openers times the bytes exceed [`FLOW_WORK_MAX`].
pub fn check_flow_nesting(text: &str) -> Result<(), ScenarioError> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    // The character before this one, and the last one that was not a space (on this line, in
    // block context; anywhere, in flow context).
    let (mut previous, mut last_solid) = ('\n', '\n');
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        column += 1;
        if ch == '\n' {
            (line, column) = (line + 1, 0);
        }
        match quote {
            Some('\'') if ch == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    column += 1;
                } else {
                    quote = None;
                }
            }
            Some('"') if ch == '\\' => {
                if chars.next() == Some('\n') {
                    (line, column) = (line + 1, 0);
                } else {
                    column += 1;
                }
            }
            Some('"') if ch == '"' => quote = None,
            Some(_) => {}
            None => {
                let token_start = previous.is_whitespace() || (depth > 0 && "[{,:?".contains(last_solid));
                match ch {
                    '#' if previous.is_whitespace() => {
                        for skipped in chars.by_ref() {
                            if skipped == '\n' {
                                (line, column) = (line + 1, 0);
                                break;
                            }
                        }
                        (previous, last_solid) = ('\n', if depth > 0 { last_solid } else { '\n' });
                        continue;
                    }
                    '\'' | '"' if token_start => quote = Some(ch),
                    '[' | '{' if depth > 0 || previous.is_whitespace() => {
                        depth += 1;
                        if depth > FLOW_NESTING_MAX {
                            return Err(ScenarioError {
                                kind: ScenarioErrorKind::Syntax,
                                path: None,
                                position: Some(Position { line, column }),
                                message: format!("flow collections ('[' or '{{') nested deeper than {FLOW_NESTING_MAX} levels"),
                            });
                        }
                    }
                    ']' | '}' if depth > 0 => depth -= 1,
                    _ => {}
                }
            }
        }
        if ch == '\n' && depth == 0 {
            last_solid = '\n';
        } else if !ch.is_whitespace() {
            last_solid = ch;
        }
        previous = ch;
    }
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count() as u64;
    if openers.saturating_mul(text.len() as u64) > FLOW_WORK_MAX {
        return Err(ScenarioError {
            kind: ScenarioErrorKind::Syntax,
            path: None,
            position: None,
            message: format!(
                "{openers} flow collections ('[' or '{{') in {} bytes: more than the YAML parser takes in bounded time \
                 (openers x bytes may be at most {FLOW_WORK_MAX}); write lists and maps in block style",
                text.len()
            ),
        });
    }
    Ok(())
}

/// A problem found on the typed scenario, before it is located in the text.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ScenarioErrorKind,
    pub path: FieldPath,
    pub message: String,
}

fn problem(kind: ScenarioErrorKind, path: FieldPath, message: String) -> Problem {
    Problem { kind, path, message }
}

fn root() -> FieldPath {
    FieldPath::default()
}

/// A name that is safe unquoted in a shell command and a valid DNS label sequence.
fn is_safe_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !value.starts_with(['-', '.'])
}

/// A repository path: letters, digits and `._/+@-`, no `..` component, no leading `-`.
fn is_safe_path(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/+@-".contains(&b))
        && !value.starts_with('-')
        && !value.split('/').any(|part| part == "..")
}

/// Parses `major.minor` (a patch part is accepted and ignored).
pub fn parse_version(value: &str) -> Option<(u32, u32)> {
    let mut parts = value.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((major, minor)),
        Some(patch) if patch.parse::<u32>().is_ok() && parts.next().is_none() => Some((major, minor)),
        Some(_) => None,
    }
}

/// The host and port of `https://HOST:PORT`.
pub fn server_host(value: &str) -> Option<(String, u16)> {
    let rest = value.strip_prefix("https://")?;
    let (host, port) = rest.trim_end_matches('/').split_once(':')?;
    (!host.is_empty()).then(|| Some((host.to_string(), port.parse().ok()?)))?
}

/// Whether `host` reaches the first master (`name`, `address`): its address, its name with or
/// without the zone, or a record of `dns.records` for its address (with or without the zone).
pub fn names_master(s: &Scenario, name: &str, address: Ipv4Addr, host: &str) -> bool {
    let bare = host.strip_suffix(&format!(".{}", s.dns.zone)).unwrap_or(host);
    host.parse::<Ipv4Addr>().is_ok_and(|a| a == address)
        || bare == name
        || s.dns.records.iter().any(|r| r.address == address && r.name == bare)
}

/// The stale record of `dns.records` a consumer's server names, if it names one.
pub fn stale_record_named(s: &Scenario, server: &str) -> Option<String> {
    let (host, _) = server_host(server)?;
    let bare = host.strip_suffix(&format!(".{}", s.dns.zone)).unwrap_or(&host).to_string();
    s.dns.records.iter().find(|r| r.stale && r.name == bare).map(|r| r.name.clone())
}

fn check_name(value: &str, path: FieldPath, what: &str) -> Result<(), Problem> {
    if is_safe_name(value) {
        Ok(())
    } else {
        Err(problem(
            ScenarioErrorKind::UnsafeValue,
            path,
            format!("{what} {value:?} is not allowed: use lowercase letters, digits, '-' and '.' (it is used in shell commands)"),
        ))
    }
}

fn check_path(value: &str, path: FieldPath, what: &str) -> Result<(), Problem> {
    if is_safe_path(value) {
        Ok(())
    } else {
        Err(problem(
            ScenarioErrorKind::UnsafeValue,
            path,
            format!("{what} {value:?} is not allowed: use letters, digits and '._/+@-', no '..' (it is used in shell commands)"),
        ))
    }
}

fn check_amount(value: f64, path: FieldPath, what: &str) -> Result<(), Problem> {
    if value.is_finite() && (0.0..1.0e6).contains(&value) {
        Ok(())
    } else {
        Err(problem(ScenarioErrorKind::BadValue, path, format!("{what} must be a non-negative number of GB, not {value}")))
    }
}

/// Checks a typed scenario for what the YAML shape cannot express.
///
/// # Errors
/// The first problem, with the field path it is in.
pub fn validate(s: &Scenario) -> Result<(), Problem> {
    match problems(s).into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Every problem of a typed scenario the checks tell apart, in the order they are checked (the
/// first is [`validate`]'s). The checks of single fields (safe names and paths, the versions, the
/// figures) each report on their own. The profiles' checks, and the structure from the
/// hypervisors on (the machines, their names and addresses, the VIP, the migration's shape, the
/// references), stop at their first problem: there one mistake (a line copied twice, a master's
/// address mistyped) breaks several rules, and reporting each would send the operator to fix
/// what is right. A problem found twice (a hypervisor's name is a safe name and a profile's
/// field) is reported once.
pub fn problems(s: &Scenario) -> Vec<Problem> {
    let mut found: Vec<Problem> = Vec::new();
    let checked = check_name(&s.name, root().key("name"), "scenario name")
        .err()
        .into_iter()
        .chain(check_versions(s).err())
        .chain(check_shell_words(s))
        .chain(check_figures(s))
        .chain(check_structure(s).err());
    for problem in checked {
        if !found.iter().any(|f| f.path == problem.path && f.message == problem.message) {
            found.push(problem);
        }
    }
    found
}

/// The structure: the hypervisors, the machines, the VIP, the migration's shape and the
/// references to nodes; the first problem.
fn check_structure(s: &Scenario) -> Result<(), Problem> {
    let hypervisors = machines::check_hypervisors(s)?;
    // Nodes and new masters: names and addresses unique across both, and against the VIP.
    let names = machines::check_machines(s, &hypervisors)?;
    machines::check_vip_is_free(s)?;
    // Names and addresses as identities: no name reads as an address, no two machines share a
    // name, every address is a host's.
    crate::identity::check(s)?;
    machines::check_metallb_pool(s)?;
    // The shape of the migration.
    let master = check_shape(s)?;
    machines::check_vmids(s)?;
    // References to nodes.
    check_consumers(s, master)?;
    check_references(s, &names)
}

/// The cluster's Kubernetes version, and the VM template's, which may not be newer.
fn check_versions(s: &Scenario) -> Result<(), Problem> {
    use ScenarioErrorKind::*;
    let version = parse_version(&s.kubernetes.version).ok_or_else(|| {
        problem(
            BadValue,
            root().key("kubernetes").key("version"),
            format!("Kubernetes version {:?} is not of the form 1.34", s.kubernetes.version),
        )
    })?;
    if let Some(template) = &s.vm_template {
        let at = root().key("vm_template").key("kubernetes_version");
        let parsed = parse_version(&template.kubernetes_version).ok_or_else(|| {
            problem(BadValue, at.clone(), format!("template version {:?} is not of the form 1.34", template.kubernetes_version))
        })?;
        if parsed > version {
            return Err(problem(
                BadValue,
                at,
                format!(
                    "the VM template's Kubernetes {} is newer than the cluster's {}",
                    template.kubernetes_version, s.kubernetes.version
                ),
            ));
        }
    }
    Ok(())
}

/// The names and paths that end up in shell commands: each safe there unquoted. Every problem,
/// field by field (the profiles' first).
fn check_shell_words(s: &Scenario) -> Vec<Problem> {
    let mut checked = vec![
        check_path(&s.infra_repo, root().key("infra_repo"), "infra repo path"),
        check_name(&s.ssh_user, root().key("ssh_user"), "SSH user"),
        check_name(&s.load_balancer.ssh_user, root().key("load_balancer").key("ssh_user"), "SSH user"),
        profiles::check(s),
        check_name(&s.control_plane_endpoint.fqdn, root().key("control_plane_endpoint").key("fqdn"), "FQDN"),
    ];
    if s.dns.via != crate::scenario::DnsVia::None || !s.dns.zone.is_empty() {
        checked.push(check_name(&s.dns.zone, root().key("dns").key("zone"), "DNS zone"));
    }
    if s.dns_via() == crate::scenario::DnsVia::Iac || !s.dns.source.is_empty() {
        checked.push(check_path(&s.dns.source, root().key("dns").key("source"), "DNS source path"));
    }
    checked.push(check_path(&s.etcd_backup.path, root().key("etcd_backup").key("path"), "backup path"));
    if let Some(gate) = &s.reboot_gate {
        checked.push(check_path(&gate.path, root().key("reboot_gate").key("path"), "reboot gate path"));
        checked.push(check_name(&gate.name, root().key("reboot_gate").key("name"), "reboot gate name"));
        checked.push(check_name(&gate.namespace, root().key("reboot_gate").key("namespace"), "namespace"));
    }
    if let Some(chain) = &s.upgrade_chain {
        checked.push(check_path(&chain.path, root().key("upgrade_chain").key("path"), "upgrade chain path"));
    }
    if let Some(stack) = &s.config_stack {
        checked.push(check_name(&stack.name, root().key("config_stack").key("name"), "config stack name"));
        checked.push(check_path(&stack.path, root().key("config_stack").key("path"), "config stack path"));
    }
    if let Some(template) = &s.vm_template {
        checked.push(check_name(&template.name, root().key("vm_template").key("name"), "template name"));
    }
    if let Some(issue) = &s.tracking_issue {
        // An issue tracker's id: `ops-1234`, `OPS-1234`, `GH_12` (it is a word of `bd close ID`).
        let safe = !issue.is_empty() && !issue.starts_with('-') && issue.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !safe {
            checked.push(Err(problem(
                ScenarioErrorKind::UnsafeValue,
                root().key("tracking_issue"),
                format!("tracking issue {issue:?} is not allowed: use letters, digits, '-', '_' and '.' (it is used in shell commands)"),
            )));
        }
    }
    for (i, flag) in s.apiserver_flags().iter().enumerate() {
        checked.push(check_name(flag, root().key("config_stack").key("apiserver_flags").index(i), "apiserver flag"));
    }
    checked.into_iter().filter_map(Result::err).collect()
}

/// The figures: the RAM headroom a percentage, the kubeadm TTLs positive and at most a year.
/// Every problem.
fn check_figures(s: &Scenario) -> Vec<Problem> {
    use ScenarioErrorKind::*;
    let mut found = Vec::new();
    let headroom = s.capacity.ram_headroom_percent;
    if !(0.0..100.0).contains(&headroom) {
        found.push(problem(
            BadValue,
            root().key("capacity").key("ram_headroom_percent"),
            format!("headroom must be a percentage from 0 to 100, not {headroom}"),
        ));
    }
    if s.kubeadm.certs_ttl_min == 0 || s.kubeadm.token_ttl_h == 0 {
        found.push(problem(BadValue, root().key("kubeadm"), "kubeadm TTLs must be positive".to_string()));
    }
    // The model's clock counts seconds in u32 (136 years); a TTL beyond a year is a typo.
    if s.kubeadm.certs_ttl_min > CERTS_TTL_MIN_MAX {
        found.push(problem(
            BadValue,
            root().key("kubeadm").key("certs_ttl_min"),
            format!("certs_ttl_min is at most {CERTS_TTL_MIN_MAX} (a year), not {}", s.kubeadm.certs_ttl_min),
        ));
    }
    if s.kubeadm.token_ttl_h > TOKEN_TTL_H_MAX {
        found.push(problem(
            BadValue,
            root().key("kubeadm").key("token_ttl_h"),
            format!("token_ttl_h is at most {TOKEN_TTL_H_MAX} (a year), not {}", s.kubeadm.token_ttl_h),
        ));
    }
    found
}

/// Exactly one existing master, and a target of 3, 5 or 7 masters that the new masters listed
/// make up; the existing master.
fn check_shape(s: &Scenario) -> Result<&NodeSpec, Problem> {
    use ScenarioErrorKind::*;
    let masters: Vec<usize> = s.nodes.iter().enumerate().filter(|(_, n)| n.role == NodeRole::ControlPlane).map(|(i, _)| i).collect();
    match masters.len() {
        1 => {}
        0 => {
            return Err(problem(BadValue, root().key("nodes"), "no control-plane node: the scenario needs the existing master".to_string()))
        }
        n => {
            return Err(problem(
                BadValue,
                root().key("nodes").index(masters[1]).key("role"),
                format!("{n} control-plane nodes: plan converts a cluster with exactly one master"),
            ))
        }
    }
    let master = &s.nodes[masters[0]];
    let target = s.target.control_plane_count;
    let target_path = root().key("target").key("control_plane_count");
    // 0 is even too, but "no more failures than with -1" says nothing: it gets the range message.
    if target.is_multiple_of(2) && target > 0 {
        return Err(problem(
            TargetCount,
            target_path,
            format!(
                "target of {target} masters is even: etcd tolerates no more failures with {target} than with {}, use an odd count",
                target - 1
            ),
        ));
    }
    if !(3..=7).contains(&target) {
        return Err(problem(TargetCount, target_path, format!("target of {target} masters: use 3, 5 or 7")));
    }
    if s.new_masters.len() + 1 != target as usize {
        return Err(problem(
            TargetCount,
            root().key("new_masters"),
            format!("{} new masters listed, but a target of {target} masters needs {}", s.new_masters.len(), target - 1),
        ));
    }
    let on_proxmox = s.hypervisors.iter().any(|h| h.name == master.hypervisor && h.kind == crate::scenario::HypervisorKind::Proxmox);
    if master.vmid.is_none() && on_proxmox {
        return Err(problem(
            BadValue,
            root().key("nodes").index(masters[0]),
            format!("the existing master {} needs a vmid (the plan snapshots it with qm)", master.name),
        ));
    }
    Ok(master)
}

/// Every consumer's name and path safe and its name unique, its server the master's API.
fn check_consumers(s: &Scenario, master: &NodeSpec) -> Result<(), Problem> {
    use ScenarioErrorKind::*;
    if s.consumers.len() > CONSUMERS_MAX {
        return Err(problem(BadValue, root().key("consumers"), format!("at most {CONSUMERS_MAX} consumers are supported")));
    }
    let mut consumer_names: HashMap<&str, usize> = HashMap::new();
    for (i, c) in s.consumers.iter().enumerate() {
        let at = root().key("consumers").index(i);
        check_name(&c.name, at.clone().key("name"), "consumer name")?;
        check_path(&c.path, at.clone().key("path"), "consumer path")?;
        if let Some(first) = consumer_names.insert(&c.name, i) {
            return Err(problem(
                DuplicateName,
                at.key("name"),
                format!("consumer name {:?} is used twice (also consumers[{first}])", c.name),
            ));
        }
        let (host, port) = server_host(&c.server).ok_or_else(|| {
            problem(BadValue, at.clone().key("server"), format!("server {:?} is not of the form https://HOST:PORT", c.server))
        })?;
        let api_port = s.kubernetes.apiserver_port.unwrap_or(s.control_plane_endpoint.port);
        if !names_master(s, &master.name, master.address, &host) || port != api_port {
            return Err(problem(
                BadValue,
                at.key("server"),
                format!(
                    "consumer {} uses {}, but the cluster's API is at https://{}:{} (or the master's name, or a DNS record of dns.records that names its address)",
                    c.name, c.server, master.address, api_port
                ),
            ));
        }
    }
    Ok(())
}

/// The CronJobs, the upgrade chain's masters and the DNS records: their names safe, the nodes
/// they name known (`names`: every node's and new master's name).
fn check_references(s: &Scenario, names: &HashMap<&str, FieldPath>) -> Result<(), Problem> {
    use ScenarioErrorKind::*;
    let known_node = |name: &str, path: FieldPath| -> Result<(), Problem> {
        if names.contains_key(name) {
            Ok(())
        } else {
            Err(problem(UnknownReference, path, format!("unknown node {name:?}")))
        }
    };
    let mut cronjob_names: HashMap<&str, usize> = HashMap::new();
    for (i, job) in s.cronjobs.iter().enumerate() {
        let at = root().key("cronjobs").index(i);
        check_name(&job.name, at.clone().key("name"), "CronJob name")?;
        check_path(&job.path, at.clone().key("path"), "CronJob path")?;
        if let Some(first) = cronjob_names.insert(&job.name, i) {
            return Err(problem(
                DuplicateName,
                at.key("name"),
                format!("CronJob name {:?} is used twice (also cronjobs[{first}])", job.name),
            ));
        }
        if let Some(node) = &job.pinned_to {
            known_node(node, at.key("pinned_to"))?;
        }
    }
    for (i, m) in s.upgrade_chain.iter().flat_map(|c| &c.masters).enumerate() {
        known_node(m, root().key("upgrade_chain").key("masters").index(i))?;
    }
    for (i, r) in s.dns.records.iter().enumerate() {
        check_name(&r.name, root().key("dns").key("records").index(i).key("name"), "DNS record name")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOMELAB: &str = include_str!("../../scenarios/homelab.yaml");

    #[test]
    fn the_homelab_scenario_is_valid() {
        let s = parse_scenario(HOMELAB).expect("homelab is valid");
        assert_eq!(s.nodes.len(), 5);
        assert_eq!(s.new_masters.len(), 2);
    }

    #[test]
    fn an_unknown_field_is_a_located_syntax_error() {
        let text = HOMELAB.replace("  control_plane_count: 3", "  control_plane_count: 3\n  masters_wanted: 3");
        let error = parse_scenario(&text).unwrap_err();
        assert_eq!(error.kind, ScenarioErrorKind::Syntax);
        assert!(error.message.contains("unknown field `masters_wanted`"), "{}", error.message);
        assert!(error.position.is_some());
    }

    /// Every problem of a file at once, in the order they are checked: each field's own, and
    /// the structure's first only (a line copied twice breaks the names, the VMIDs and the count
    /// of new masters, and is one mistake). On five masters, another inventory than the homelab.
    #[test]
    fn every_problem_of_a_file_is_reported_at_once_and_each_mistake_once() {
        use ScenarioErrorKind::*;
        let five = include_str!("../../scenarios/five-masters.yaml");
        let kinds = |text: &str| -> Vec<(ScenarioErrorKind, Option<String>)> {
            parse_scenario_every_problem(text).unwrap_err().into_iter().map(|e| (e.kind, e.path)).collect()
        };
        let at = |path: &str| Some(path.to_string());
        let fields = five
            .replace("version: \"1.33\"", "version: \"1.x\"")
            .replace("\nssh_user: admin\n", "\nssh_user: Admin\n")
            .replace("ram_headroom_percent: 10", "ram_headroom_percent: 150");
        let copied = "  - { name: ctl-e, address: 198.51.100.14, vmid: 304, hypervisor: pve-a, vcpu: 4, ram_gb: 16, disk_gb: 64 }\n";
        let text = fields.replace(copied, &copied.repeat(2));
        assert_eq!(
            kinds(&text),
            [
                (BadValue, at("kubernetes.version")),
                (UnsafeValue, at("ssh_user")),
                (BadValue, at("capacity.ram_headroom_percent")),
                (DuplicateName, at("new_masters[4].name")),
            ]
        );
        // The structure's next problem shows once the first is fixed: a fifth new master where
        // five masters need four.
        let renamed = fields
            .replace(copied, &format!("{copied}{}", copied.replace("ctl-e, address: 198.51.100.14", "ctl-f, address: 198.51.100.15")));
        assert_eq!(kinds(&renamed)[3..], [(TargetCount, at("new_masters"))]);
        // A master's address mistyped onto another machine's is one problem, not also every
        // consumer that names the right address.
        let mistyped = five.replace("role: control-plane, address: 198.51.100.10", "role: control-plane, address: 198.51.100.21");
        assert_eq!(kinds(&mistyped), [(DuplicateAddress, at("nodes[1].address"))]);
        // A hypervisor's unsafe name is a field's problem and the structure's: reported once.
        let shouting = five.replace("name: pve-a,", "name: PVE-A,").replace("hypervisor: pve-a", "hypervisor: PVE-A");
        assert_eq!(kinds(&shouting), [(UnsafeValue, at("hypervisors[0].name"))]);
        assert!(parse_scenario_every_problem(five).is_ok());
    }

    #[test]
    fn a_duplicate_address_names_both_places() {
        let text = HOMELAB.replace("address: 10.0.20.102", "address: 10.0.20.101");
        let error = parse_scenario(&text).unwrap_err();
        assert_eq!(error.kind, ScenarioErrorKind::DuplicateAddress);
        assert_eq!(error.path.as_deref(), Some("nodes[2].address"));
        assert!(error.message.contains("nodes[1].address"), "{}", error.message);
        assert_eq!(error.position.map(|p| p.line), HOMELAB.lines().position(|l| l.contains("k8s-node2")).map(|l| l + 1));
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_the_bracket_before_parsing() {
        let deep = format!("name: x\nnodes: {}{}\n", "[".repeat(100), "]".repeat(100));
        let error = parse_scenario(&deep).unwrap_err();
        assert_eq!(error.kind, ScenarioErrorKind::Syntax);
        assert!(error.message.contains("nested deeper than 64 levels"), "{}", error.message);
        assert_eq!(error.position, Some(Position { line: 2, column: 8 + FLOW_NESTING_MAX }));
        // 64 levels are the parser's to judge.
        let fine = format!("name: {}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_flow_nesting(&fine).is_ok());
    }

    #[test]
    fn brackets_in_quotes_comments_and_plain_words_are_not_nesting() {
        let text = format!("a: '{0}'\nb: \"{0}\"\n# {0}\nc: x{0}\nd: [ '{1}', \"]\" ]\n", "[".repeat(100), "[{".repeat(100));
        assert!(check_flow_nesting(&text).is_ok());
    }

    #[test]
    fn hidden_nesting_still_meets_the_work_bound() {
        // A quote the reader takes for a string start hides the brackets after it.
        let text = format!("a: it 'is\nb: {}", "[".repeat(20_000));
        let error = check_flow_nesting(&text).unwrap_err();
        assert_eq!(error.position, None);
        assert!(error.message.contains("20000 flow collections"), "{}", error.message);
    }

    #[test]
    fn versions_parse_with_or_without_a_patch() {
        assert_eq!(parse_version("1.34"), Some((1, 34)));
        assert_eq!(parse_version("v1.28.3"), Some((1, 28)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
    }

    #[test]
    fn unsafe_names_and_paths_are_refused() {
        assert!(!is_safe_name("k8s-master; rm -rf /"));
        assert!(!is_safe_name("$(reboot)"));
        assert!(is_safe_name("k8s-master-2"));
        assert!(!is_safe_path("../etc/passwd"));
        assert!(!is_safe_path("a b"));
        assert!(is_safe_path("stacks/k8s-portal/files/src/routes/download/+server.ts"));
    }
}
