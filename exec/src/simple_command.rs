//! A shell command's simple commands as the loopback guard reads them: each program with its
//! arguments, and the `sudo`, `env` and `NAME=value` words in front of it.
//!
//! A reading of text, for the guard's courtesy check ([`crate::guard`]); quotes are not parsed.

/// Words that run the next word as the program (`sudo env ETCDCTL_API=3 etcdctl …`).
const PROGRAM_PREFIXES: [&str; 14] =
    ["sudo", "env", "exec", "command", "nohup", "time", "if", "elif", "then", "else", "while", "until", "do", "!"];
/// Options of `sudo` and `env` whose value is the next word (`sudo -u wizard kubectl …`: the
/// program is kubectl, not wizard).
const OPTIONS_WITH_A_VALUE: [(&str, &str); 8] = [
    ("sudo", "ugUCDhpRrTt"),
    ("env", "uCS"),
    ("sudo", "--user"),
    ("sudo", "--group"),
    ("sudo", "--chdir"),
    ("sudo", "--host"),
    ("env", "--unset"),
    ("env", "--chdir"),
];
/// One simple command of a shell line: its program, its arguments, and what runs it.
#[derive(Debug, Default)]
pub struct SimpleCommand {
    pub program: String,
    pub arguments: Vec<String>,
    /// `sudo` runs it, with these options (the words after `sudo`, values included).
    pub sudo: Option<Vec<String>>,
    /// `NAME=value` words before the program (`env`'s included).
    pub assignments: Vec<String>,
}

/// The programs of a shell command with their arguments, one per simple command: split at `;`,
/// `&&`, `||`, `|`, parentheses, backquotes and `$(`, with `sudo`, `env`, `VAR=value` and their
/// options taken off the front. Quotes are not parsed: a word keeps its quote characters trimmed.
pub fn simple_commands(shell: &str) -> Vec<SimpleCommand> {
    let mut out = Vec::new();
    for segment in shell.split([';', '&', '|', '(', ')', '`', '\n', '{', '}']) {
        let mut words = segment.split_whitespace().map(|w| w.trim_matches(|c| c == '\'' || c == '"' || c == '$'));
        let mut command = SimpleCommand::default();
        // The prefix whose options are being read, and whether the next word is an option's value.
        let (mut prefix, mut value_next) = ("", false);
        for word in words.by_ref() {
            let name = word.rsplit('/').next().unwrap_or(word);
            if std::mem::take(&mut value_next) {
                if let Some(options) = command.sudo.as_mut().filter(|_| prefix == "sudo") {
                    options.push(word.to_string());
                }
                continue;
            }
            if word.is_empty() || word.parse::<u32>().is_ok() {
                continue;
            }
            if PROGRAM_PREFIXES.contains(&name) {
                prefix = if matches!(name, "sudo" | "env") { name } else { "" };
                if name == "sudo" {
                    command.sudo = Some(Vec::new());
                }
                continue;
            }
            if word.starts_with('-') {
                value_next = takes_a_value(prefix, word);
                if let Some(options) = command.sudo.as_mut().filter(|_| prefix == "sudo") {
                    options.push(word.to_string());
                }
                continue;
            }
            let assignment =
                word.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if assignment {
                command.assignments.push(word.to_string());
                continue;
            }
            command.program = name.to_string();
            break;
        }
        if !command.program.is_empty() {
            command.arguments = words.map(str::to_string).collect();
            out.push(command);
        }
    }
    out
}

/// Whether the option word `word` of `prefix` (`sudo`, `env`) takes the next word as its value:
/// a long option in [`OPTIONS_WITH_A_VALUE`] without `=`, or short options ending in one of its letters.
fn takes_a_value(prefix: &str, word: &str) -> bool {
    let of_prefix = || OPTIONS_WITH_A_VALUE.iter().filter(move |(p, _)| *p == prefix).map(|(_, o)| *o);
    if word.starts_with("--") {
        return of_prefix().any(|long| long == word);
    }
    let letters = &word[1..];
    let Some(short) = of_prefix().find(|o| !o.starts_with("--")) else { return false };
    // The first letter that takes a value takes the rest of the word, or the next word when last.
    letters.char_indices().find(|(_, c)| short.contains(*c)).is_some_and(|(i, _)| i + 1 == letters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_env_and_assignments_are_taken_off_the_front() {
        let commands = simple_commands("if sudo -n env ETCDCTL_API=3 etcdctl member list; then echo ok; fi");
        let etcdctl = &commands[0];
        assert_eq!((etcdctl.program.as_str(), etcdctl.sudo.as_deref()), ("etcdctl", Some(&["-n".to_string()][..])));
        assert_eq!(etcdctl.assignments, vec!["ETCDCTL_API=3".to_string()]);
        assert_eq!(etcdctl.arguments, vec!["member".to_string(), "list".to_string()]);
        assert_eq!(commands[1].program, "echo");
        assert!(commands[1].sudo.is_none());
    }

    #[test]
    fn an_options_value_is_not_taken_for_the_program() {
        let program = |shell: &str| simple_commands(shell).into_iter().next().map(|c| (c.program, c.sudo));
        let wizard = Some(vec!["-u".to_string(), "wizard".to_string()]);
        assert_eq!(program("sudo -u wizard kubectl get nodes"), Some(("kubectl".to_string(), wizard)));
        assert_eq!(program("sudo -nu wizard kubectl get nodes").map(|p| p.0), Some("kubectl".to_string()));
        assert_eq!(program("sudo -uwizard kubectl get nodes").map(|p| p.0), Some("kubectl".to_string()));
        assert_eq!(program("sudo --user wizard kubectl get nodes").map(|p| p.0), Some("kubectl".to_string()));
        assert_eq!(program("sudo --user=wizard kubectl get nodes").map(|p| p.0), Some("kubectl".to_string()));
        assert_eq!(program("env -u HOME dig x").map(|p| p.0), Some("dig".to_string()));
        // `-n` of sudo takes no value: the next word is the program.
        assert_eq!(program("sudo -n kubectl get nodes").map(|p| p.0), Some("kubectl".to_string()));
    }
}
