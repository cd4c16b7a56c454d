//! Reads the ssh client configuration ssh would read, before any ssh process runs, and refuses
//! directives that run a program on this machine or open a channel the executor did not ask for.
//!
//! `ssh -G` cannot be the first reader: it runs `Match exec` commands while it parses. So the text
//! is read here — keywords case-insensitive, `Key value` or `Key=value`, `Include` followed — and a
//! refusal names the file and line.

use crate::guard::Guard;
use crate::ExecError;
use std::path::{Path, PathBuf};

/// How deep `Include` may nest, as ssh's own `READCONF_MAX_DEPTH`.
pub const INCLUDE_DEPTH_MAX: usize = 16;
/// ssh's system-wide client configuration, read when no `-F` file is given.
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Why a directive is refused, or `None` when it may stay.
///
/// Refused in every mode: what runs a program on the workstation (`Match exec`, `LocalCommand`,
/// `PermitLocalCommand yes`, `KnownHostsCommand`) and what opens a listener or hands the remote
/// root a way back (`LocalForward`, `RemoteForward`, `DynamicForward`, `ForwardAgent`,
/// `ForwardX11`, `Tunnel`). With the loopback guard on, also what sends the connection through
/// another machine (`ProxyCommand`, `ProxyJump`).
fn refusal(keyword: &str, value: &str, guard: Guard) -> Option<&'static str> {
    let value = value.trim_matches('"').to_ascii_lowercase();
    let set = |off: &[&str]| !off.contains(&value.as_str());
    match keyword {
        "match" if value.split_whitespace().any(|w| w == "exec" || w == "!exec") => {
            Some("it runs a command on this machine while ssh reads the file, outside the executor's control")
        }
        "localcommand" if set(&["none", ""]) => Some("it runs a command on this machine after connecting"),
        "permitlocalcommand" if set(&["no"]) => Some("it lets LocalCommand run commands on this machine"),
        "knownhostscommand" if set(&["none", ""]) => Some("it runs a command on this machine to read host keys"),
        "localforward" | "remoteforward" | "dynamicforward" => Some("it opens a forwarding the executor never needs"),
        "forwardagent" if set(&["no"]) => Some("it hands the host (where the executor is root) your ssh agent"),
        "forwardx11" if set(&["no"]) => Some("it opens an X11 channel back to this machine"),
        "tunnel" if set(&["no"]) => Some("it opens a tun/tap device"),
        "proxycommand" | "proxyjump" if guard.loopback_only && set(&["none", ""]) => {
            Some("it sends the connection through another machine or program (PLAN_LOOPBACK_ONLY=1)")
        }
        _ => None,
    }
}

/// One directive: the keyword lowercased, its value, where it is.
struct Directive {
    keyword: String,
    value: String,
    line: usize,
}

/// The directives of one file's text: comments and blank lines skipped, `Key value` and
/// `Key=value` (spaces around `=` allowed) both read.
fn directives(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(line.len());
        let (keyword, rest) = line.split_at(end);
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
        out.push(Directive { keyword: keyword.to_ascii_lowercase(), value: rest.to_string(), line: i + 1 });
    }
    out
}

/// The files one `Include` argument names: `~` expanded, relative paths under `base` (`~/.ssh`
/// for a user's file, `/etc/ssh` for the system's), `*` and `?` in the last component matched
/// against the directory, sorted as ssh's glob sorts them. A missing file is no file, as for ssh.
fn include_targets(argument: &str, base: &Path, home: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    let argument = argument.trim_matches('"');
    let path = match (argument.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        (Some(_), None) => return Err("it names ~ and HOME is not set".to_string()),
        _ if Path::new(argument).is_absolute() => PathBuf::from(argument),
        _ => base.join(argument),
    };
    let wild = |s: &str| s.contains(['*', '?', '[']);
    let parent = path.parent().unwrap_or(Path::new("/"));
    if wild(&parent.to_string_lossy()) {
        return Err("a wildcard in a directory of an Include cannot be followed here".to_string());
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !wild(&name) {
        return Ok(if path.exists() { vec![path] } else { Vec::new() });
    }
    if name.contains('[') {
        return Err("a [class] wildcard in an Include cannot be followed here".to_string());
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(Vec::new()) };
    let mut found: Vec<PathBuf> =
        entries.filter_map(Result::ok).filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy())).map(|e| e.path()).collect();
    found.sort();
    Ok(found)
}

/// `*` and `?` matching as glob(3) does within one path component; a leading `.` is matched only
/// by a leading `.` in the pattern.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// Reads `file` and every file it includes; the first refused directive is the error.
fn check_file(file: &Path, base: &Path, home: Option<&Path>, guard: Guard, depth: usize) -> Result<(), ExecError> {
    let refused = |line: usize, directive: String, why: String| ExecError::SshConfigRefused {
        file: file.display().to_string(),
        line,
        directive,
        why,
    };
    if depth > INCLUDE_DEPTH_MAX {
        return Err(refused(0, "Include".to_string(), format!("includes nest deeper than {INCLUDE_DEPTH_MAX}")));
    }
    let bytes = std::fs::read(file).map_err(|e| refused(0, "-".to_string(), format!("cannot be read: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    for directive in directives(&text) {
        let shown = format!("{} {}", directive.keyword, directive.value);
        if let Some(why) = refusal(&directive.keyword, &directive.value, guard) {
            return Err(refused(directive.line, shown, why.to_string()));
        }
        if directive.keyword == "include" {
            for argument in directive.value.split_whitespace() {
                let targets = include_targets(argument, base, home).map_err(|why| refused(directive.line, shown.clone(), why))?;
                for target in targets {
                    check_file(&target, base, home, guard, depth + 1)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks the configuration ssh would read: `config` when the operator gave one (`ssh -F`), else
/// `~/.ssh/config` and [`SYSTEM_CONFIG`], with every file they include.
///
/// # Caveats
/// Conditional blocks are not evaluated: a refused directive under a `Host` or `Match` that would
/// never match the plan's hosts is refused all the same. A file the executor uses must be clean;
/// the way on is `--ssh-config FILE` naming one that is.
///
/// # Errors
/// [`ExecError::SshConfigRefused`] with the file and line of the first refused directive, or a
/// named file that cannot be read.
///
/// ```
/// use plan_exec::guard::Guard;
/// let dir = tempfile::tempdir().unwrap();
/// let config = dir.path().join("ssh_config");
/// std::fs::write(&config, "Host *\n  IdentitiesOnly yes\n  LocalForward=8080 localhost:80\n").unwrap();
/// let refused = plan_exec::ssh_config::check(Some(&config), Guard::OPEN).unwrap_err();
/// assert!(refused.to_string().contains("ssh_config:3"), "{refused}");
/// ```
pub fn check(config: Option<&Path>, guard: Guard) -> Result<(), ExecError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user_base = home.as_ref().map_or_else(|| PathBuf::from("/"), |h| h.join(".ssh"));
    match config {
        Some(file) => check_file(file, &user_base, home.as_deref(), guard, 0),
        None => {
            let user = user_base.join("config");
            if user.exists() {
                check_file(&user, &user_base, home.as_deref(), guard, 0)?;
            }
            let system = Path::new(SYSTEM_CONFIG);
            if system.exists() {
                check_file(system, Path::new("/etc/ssh"), home.as_deref(), guard, 0)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str, guard: Guard) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, text).unwrap();
        check(Some(&config), guard).err().map(|e| {
            assert!(matches!(e, ExecError::SshConfigRefused { .. }), "{e}");
            e.to_string()
        })
    }

    #[test]
    fn directives_that_run_or_forward_are_refused_with_file_and_line() {
        let cases = [
            "Match exec \"touch /tmp/pwned\"",
            "Match host x !exec true",
            "LocalCommand touch /tmp/pwned",
            "PermitLocalCommand yes",
            "KnownHostsCommand /bin/sh -c x",
            "LocalForward 8080 localhost:80",
            "RemoteForward 9000 localhost:22",
            "DynamicForward 1080",
            "ForwardAgent yes",
            "ForwardAgent /tmp/agent.sock",
            "ForwardX11 yes",
            "Tunnel point-to-point",
            // Case and the `=` form.
            "localforward=8080 localhost:80",
            "FORWARDAGENT = yes",
            "  match   EXEC true",
        ];
        for case in cases {
            let text = format!("# a comment\nHost 127.0.20.*\n  {case}\n");
            let message = refused(&text, Guard::OPEN).unwrap_or_else(|| panic!("not refused: {case}"));
            assert!(message.contains("ssh_config:3"), "{case}: {message}");
        }
    }

    #[test]
    fn harmless_directives_and_explicit_offs_pass() {
        let text = "Host *\n  Port 22\n  IdentityFile ~/.ssh/id\n  ForwardAgent no\n  PermitLocalCommand=no\n  LocalCommand none\n  Tunnel no\n  ProxyJump none\nMatch host 127.0.0.1 user root\n  BatchMode yes\n";
        assert_eq!(refused(text, Guard::LOOPBACK_ONLY), None);
    }

    #[test]
    fn proxies_are_refused_only_with_the_loopback_guard_on() {
        for case in ["ProxyCommand nc %h %p", "ProxyJump=jump.example"] {
            assert!(refused(case, Guard::LOOPBACK_ONLY).is_some(), "{case}");
            assert_eq!(refused(case, Guard::OPEN), None, "{case}");
        }
    }

    #[test]
    fn includes_are_followed_with_wildcards_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(conf_d.join("10-ok.conf"), "Port 22\n").unwrap();
        std::fs::write(conf_d.join("20-bad.conf"), "Port 22\n\nDynamicForward 1080\n").unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, format!("Include {}/conf.d/*.conf\n", dir.path().display())).unwrap();
        let message = check(Some(&config), Guard::OPEN).unwrap_err().to_string();
        assert!(message.contains("20-bad.conf:3"), "{message}");
        // A missing include is no file, as for ssh.
        std::fs::write(&config, "Include /nonexistent/plan-test-*.conf /nonexistent/x\n").unwrap();
        assert!(check(Some(&config), Guard::OPEN).is_ok());
        // Wildcards in a directory are not followed: refused rather than guessed.
        std::fs::write(&config, "Include /etc/*/x.conf\n").unwrap();
        assert!(check(Some(&config), Guard::OPEN).unwrap_err().to_string().contains("ssh_config:1"));
    }

    #[test]
    fn an_include_loop_is_refused_not_followed_forever() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, format!("Include {}\n", config.display())).unwrap();
        assert!(check(Some(&config), Guard::OPEN).unwrap_err().to_string().contains("nest deeper"));
    }

    #[test]
    fn wildcards_match_as_glob_does() {
        assert!(wildcard_match("*.conf", "10-a.conf"));
        assert!(!wildcard_match("*.conf", ".hidden.conf"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
    }
}
