//! YAML with a comment over every field: the tree a starter scenario is written as, and its text.
//!
//! serde's YAML writer drops comments, and the starter's whole point is to say what each field is,
//! so the few shapes a scenario uses (scalars, mappings, lists of mappings, lists of scalars) are
//! written here by hand. Scalars are quoted whenever YAML would read the plain text as something
//! other than that text (`1.34` as a number, `on` as a boolean).

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, as YAML text (see [`text`], [`number`]).
    Scalar(String),
    /// A nested mapping.
    Map(Vec<Entry>),
    /// A list of mappings, each written in block style.
    Items(Vec<Vec<Entry>>),
    /// A list of scalars, written in flow style (`[a, b]`).
    Flow(Vec<String>),
}

/// Whether a key is written as YAML or as a comment the operator may uncomment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Written,
    /// `# key: value`: an optional field left out, shown so the operator knows it exists.
    CommentedOut,
}

/// One key with its value and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: &'static str,
    pub value: Value,
    /// What the field is, in the words of docs/scenario.md.
    pub about: String,
    /// What the operator must still decide, when the value is a placeholder.
    pub todo: Option<String>,
    pub shown: Shown,
}

impl Entry {
    pub fn new(key: &'static str, value: Value, about: &str) -> Entry {
        Entry { key, value, about: about.to_string(), todo: None, shown: Shown::Written }
    }

    /// A scalar entry.
    pub fn scalar(key: &'static str, yaml: String, about: &str) -> Entry {
        Entry::new(key, Value::Scalar(yaml), about)
    }

    /// The value is a placeholder: the comment says what to put there.
    pub fn todo(mut self, todo: &str) -> Entry {
        self.todo = Some(todo.to_string());
        self
    }

    /// Written as a comment: an optional field the starter leaves out.
    pub fn commented_out(mut self) -> Entry {
        self.shown = Shown::CommentedOut;
        self
    }
}

/// A string as a YAML scalar that reads back as the same string.
pub fn text(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~ ".contains(c))
        && !s.ends_with([' ', ':'])
        && serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s).ok() == Some(serde_yaml_ng::Value::String(s.to_string()));
    if plain {
        s.to_string()
    } else {
        // A JSON string is a YAML double-quoted scalar.
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// A number (or any value whose `Display` is valid plain YAML: integers, booleans, addresses).
pub fn number(n: impl std::fmt::Display) -> String {
    n.to_string()
}

/// Comment lines are wrapped at this width (the indentation included).
const COMMENT_WIDTH_MAX: usize = 100;

/// The document's text: `header` as comment lines, then every entry.
pub fn render(header: &[String], entries: &[Entry]) -> String {
    let mut out = String::new();
    for line in header {
        comment(&mut out, 0, line);
    }
    write_entries(&mut out, 0, entries, Opening::Mapping);
    out
}

/// Where a run of entries starts: inside a mapping, or as a list item (the first after `- `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    Mapping,
    ListItem,
}

fn comment(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    if text.is_empty() {
        out.push_str(&format!("{pad}#\n"));
        return;
    }
    let width = COMMENT_WIDTH_MAX.saturating_sub(indent + 2).max(40);
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&format!("{pad}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&format!("{pad}# {line}\n"));
}

/// Writes `entries` at `indent`; the first one after `- ` when they open a list item.
fn write_entries(out: &mut String, indent: usize, entries: &[Entry], opening: Opening) {
    for (n, entry) in entries.iter().enumerate() {
        if indent == 0 && n > 0 {
            // A blank line between top-level sections.
            out.push('\n');
        }
        comment(out, indent, &entry.about);
        if let Some(todo) = &entry.todo {
            comment(out, indent, &format!("TODO: {todo}"));
        }
        let (pad, dash) = match (opening, n) {
            (Opening::ListItem, 0) => (indent - 2, "- "),
            _ => (indent, ""),
        };
        // A commented-out key is a comment from its first character on, its `- ` included.
        let hash = if entry.shown == Shown::CommentedOut { "# " } else { "" };
        let lead = format!("{}{hash}{dash}", " ".repeat(pad));
        match &entry.value {
            Value::Scalar(yaml) => out.push_str(&format!("{lead}{}: {yaml}\n", entry.key)),
            Value::Flow(values) => out.push_str(&format!("{lead}{}: [{}]\n", entry.key, values.join(", "))),
            Value::Map(inner) => {
                out.push_str(&format!("{lead}{}:\n", entry.key));
                write_nested(out, indent + 2, inner, entry.shown, Opening::Mapping);
            }
            Value::Items(items) if items.is_empty() => out.push_str(&format!("{lead}{}: []\n", entry.key)),
            Value::Items(items) => {
                out.push_str(&format!("{lead}{}:\n", entry.key));
                for item in items {
                    write_nested(out, indent + 4, item, entry.shown, Opening::ListItem);
                }
            }
        }
    }
}

/// A mapping under a key; a commented-out key comments out all it holds.
fn write_nested(out: &mut String, indent: usize, entries: &[Entry], shown: Shown, opening: Opening) {
    match shown {
        Shown::Written => write_entries(out, indent, entries, opening),
        Shown::CommentedOut => write_entries(out, indent, &commented(entries), opening),
    }
}

fn commented(entries: &[Entry]) -> Vec<Entry> {
    entries.iter().cloned().map(Entry::commented_out).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_the_text_written() {
        for s in ["1.34", "on", "yes", "null", "~", "true", "k8s-master", "/srv/etcd", "a: b", "-x", "", "0x10", "1e3", "v1.34"] {
            let yaml = format!("k: {}\n", text(s));
            let back: std::collections::BTreeMap<String, String> = serde_yaml_ng::from_str(&yaml).expect(&yaml);
            assert_eq!(back["k"], s, "{yaml}");
        }
        assert_eq!(text("k8s-master"), "k8s-master", "a plain name stays plain");
        assert_eq!(text("1.34"), "\"1.34\"");
    }

    #[test]
    fn every_entry_carries_its_comment_and_the_text_parses() {
        let entries = vec![
            Entry::scalar("name", text("lab"), "The scenario's name."),
            Entry::new("target", Value::Map(vec![Entry::scalar("count", number(3), "How many.")]), "The target."),
            Entry::new(
                "nodes",
                Value::Items(vec![vec![
                    Entry::scalar("name", text("a"), "A node's name."),
                    Entry::scalar("vmid", number(100), "Its VM id.").todo("the real id"),
                ]]),
                "The nodes.",
            ),
            Entry::new("flags", Value::Flow(vec![text("x"), text("y")]), "Flags."),
            Entry::new("none", Value::Items(Vec::new()), "Nothing yet."),
            Entry::new("gate", Value::Map(vec![Entry::scalar("path", text("p"), "Its path.")]), "Optional.").commented_out(),
        ];
        let yaml = render(&["A header.".to_string()], &entries);
        let expected = "# A header.\n# The scenario's name.\nname: lab\n\n# The target.\ntarget:\n  # How many.\n  count: 3\n\
                        \n# The nodes.\nnodes:\n    # A node's name.\n  - name: a\n    # Its VM id.\n    # TODO: the real id\n    vmid: 100\n\
                        \n# Flags.\nflags: [x, y]\n\n# Nothing yet.\nnone: []\n\n# Optional.\n# gate:\n  # Its path.\n  # path: p\n";
        assert_eq!(yaml, expected);
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("parses");
        assert_eq!(back["nodes"][0]["vmid"], serde_yaml_ng::Value::from(100));
        assert!(back.get("gate").is_none(), "a commented-out key is not read");
    }

    #[test]
    fn long_comments_wrap() {
        let mut out = String::new();
        comment(&mut out, 2, &"word ".repeat(40));
        assert!(out.lines().count() > 1);
        assert!(out.lines().all(|l| l.len() <= COMMENT_WIDTH_MAX && l.starts_with("  # ")), "{out}");
    }
}
