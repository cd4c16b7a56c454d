//! Finds the line and column of a field path (`nodes[3].address`) in a scenario's YAML text.
//!
//! Semantic errors (a duplicate address, a VIP inside the MetalLB pool) are found on the typed
//! scenario, after the YAML parser has forgotten positions; this maps them back to the text so
//! the operator sees where to look. It understands block mappings, block sequences and one-line
//! flow mappings (`- { name: a, address: b }`), which is what scenario files use. When it cannot
//! follow the text it answers `None` and the error is reported without a position.

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A field path, e.g. `nodes[3].address`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(PathSegment::Key(key.to_string()));
        self
    }
    pub fn index(mut self, index: usize) -> Self {
        self.0.push(PathSegment::Index(index));
        self
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Finds `key:` as a key in `line` at or after byte `from`; returns its byte offset.
fn find_key(line: &str, key: &str, from: usize) -> Option<usize> {
    let pattern = format!("{key}:");
    let mut start = from;
    while let Some(found) = line.get(start..)?.find(&pattern) {
        let at = start + found;
        let before = line[..at].trim_end_matches(' ');
        let ok_before = before.is_empty() || before.ends_with('{') || before.ends_with(',') || before.ends_with('-');
        let after = &line[at + pattern.len()..];
        let ok_after = after.is_empty() || after.starts_with(' ');
        if ok_before && ok_after {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

/// Locates `path` in `text`.
pub fn locate(text: &str, path: &FieldPath) -> Option<Position> {
    let lines: Vec<&str> = text.lines().collect();
    let mut node = Node { first: 0, end: lines.len(), column: 0, position: None };
    for segment in &path.0 {
        match segment {
            PathSegment::Key(key) => node.enter_key(&lines, key)?,
            PathSegment::Index(wanted) => node.enter_item(&lines, *wanted)?,
        }
    }
    node.position
}

/// Where the walk down a field path stands. Lines `[first, end)` bound the current node;
/// `column` is where the node starts on its first line (flow mappings live on one line);
/// `position` is the node's, none at the document's root.
struct Node {
    first: usize,
    end: usize,
    column: usize,
    position: Option<Position>,
}

impl Node {
    /// Into the value of `key` in the current mapping (a flow mapping on the current line, or a
    /// block mapping); `None` where the text has no such key.
    fn enter_key(&mut self, lines: &[&str], key: &str) -> Option<()> {
        // A flow mapping on the current line?
        if self.position.is_some() {
            if let Some(at) = lines.get(self.first).and_then(|l| find_key(l, key, self.column)) {
                if lines[self.first][self.column..].contains('{') {
                    self.position = Some(Position { line: self.first + 1, column: at + 1 });
                    self.column = at + key.len() + 1;
                    self.end = self.first + 1;
                    return Some(());
                }
            }
        }
        let (n, at) = self.find_block_key(lines, key)?;
        self.position = Some(Position { line: n + 1, column: at + 1 });
        // The key's value runs until a line indented no deeper than the key.
        let mut stop = n + 1;
        while stop < self.end && (!is_content(lines[stop]) || indent_of(lines[stop]) > at) {
            stop += 1;
        }
        self.first = n;
        self.end = stop;
        self.column = at + key.len() + 1;
        Some(())
    }

    /// The line and byte offset of `key` as a key of the current block mapping.
    fn find_block_key(&self, lines: &[&str], key: &str) -> Option<(usize, usize)> {
        let first = self.first;
        // Children sit deeper than their parent key or dash; an item's first key shares
        // the dash's line.
        let parent_indent = self.position.map(|_| indent_of(lines[first]));
        for (n, line) in lines.iter().enumerate().take(self.end).skip(first) {
            if !is_content(line) {
                continue;
            }
            let from = if n == first && parent_indent.is_some() { self.column } else { 0 };
            if n != first {
                if let Some(parent) = parent_indent {
                    if indent_of(line) <= parent {
                        break;
                    }
                }
            }
            if parent_indent.is_none() && indent_of(line) != 0 {
                continue;
            }
            if n == first && parent_indent.is_some() && from >= line.len() {
                continue;
            }
            let indent = indent_of(line).max(from);
            if let Some(at) = find_key(line, key, from) {
                if at == indent || line[indent.min(at)..at].trim_start_matches(['-', ' ']).is_empty() {
                    return Some((n, at));
                }
            }
        }
        None
    }

    /// Into the `wanted`-th item of the current sequence (a block sequence, or a flow sequence
    /// on the key's line); `None` where the text has no such item.
    fn enter_item(&mut self, lines: &[&str], wanted: usize) -> Option<()> {
        let Some((n, indent)) = self.find_block_item(lines, wanted) else {
            return self.enter_flow_item(lines, wanted);
        };
        let mut stop = n + 1;
        while stop < self.end && (!is_content(lines[stop]) || indent_of(lines[stop]) > indent) {
            stop += 1;
        }
        self.position = Some(Position { line: n + 1, column: indent + 1 });
        self.first = n;
        self.end = stop;
        self.column = indent + 2;
        Some(())
    }

    /// The line and indent of the `wanted`-th item of a block sequence: items are "- " lines at
    /// one indent below the key.
    fn find_block_item(&self, lines: &[&str], wanted: usize) -> Option<(usize, usize)> {
        let mut count = 0usize;
        let mut item_indent = None;
        for (n, line) in lines.iter().enumerate().take(self.end).skip(self.first + 1) {
            if !is_content(line) {
                continue;
            }
            let indent = indent_of(line);
            if !line[indent..].starts_with('-') {
                continue;
            }
            match item_indent {
                None => item_indent = Some(indent),
                Some(i) if i != indent => continue,
                _ => {}
            }
            if count == wanted {
                return Some((n, indent));
            }
            count += 1;
        }
        None
    }

    /// Into the `wanted`-th item of a flow sequence on the key's line: `masters: [a, b]`.
    fn enter_flow_item(&mut self, lines: &[&str], wanted: usize) -> Option<()> {
        let first = self.first;
        let line = lines.get(first)?;
        let open = line[self.column..].find('[')? + self.column;
        let mut at = open + 1;
        for _ in 0..wanted {
            at += line[at..].find(',')? + 1;
        }
        let skip = line[at..].len() - line[at..].trim_start().len();
        self.position = Some(Position { line: first + 1, column: at + skip + 1 });
        self.end = first + 1;
        self.column = at + skip;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "name: x\nnodes:\n  - name: a\n    address: 10.0.0.1\n  - { name: b, address: 10.0.0.2 }\nupgrade:\n  masters: [a, b]\n";

    fn at(path: FieldPath) -> Option<(usize, usize)> {
        locate(TEXT, &path).map(|p| (p.line, p.column))
    }

    #[test]
    fn finds_block_and_flow_fields() {
        assert_eq!(at(FieldPath::default().key("name")), Some((1, 1)));
        assert_eq!(at(FieldPath::default().key("nodes").index(0).key("name")), Some((3, 5)));
        assert_eq!(at(FieldPath::default().key("nodes").index(0).key("address")), Some((4, 5)));
        assert_eq!(at(FieldPath::default().key("nodes").index(1)), Some((5, 3)));
        assert_eq!(at(FieldPath::default().key("nodes").index(1).key("address")), Some((5, 16)));
        assert_eq!(at(FieldPath::default().key("upgrade").key("masters").index(1)), Some((7, 16)));
    }

    #[test]
    fn missing_paths_have_no_position() {
        assert_eq!(at(FieldPath::default().key("nodes").index(5)), None);
        assert_eq!(at(FieldPath::default().key("absent")), None);
    }

    #[test]
    fn displays_as_a_dotted_path() {
        let path = FieldPath::default().key("nodes").index(3).key("address");
        assert_eq!(path.to_string(), "nodes[3].address");
    }
}
