//! Text into HTML and SVG: escaping, shortening to fit a box, and the numbers a drawing prints.

/// `text` safe inside an element or a quoted attribute of HTML or SVG: every character markup
/// gives a meaning to is written as a character reference.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// `text` cut to at most `chars_max` characters, the cut marked with an ellipsis.
pub fn shorten(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_string();
    }
    let kept: String = text.chars().take(chars_max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// `text` in at most `lines_max` lines of at most `chars_max` characters, broken between words.
/// When the text does not fit, the last line ends with an ellipsis after the last word that
/// fits; a word longer than a line is cut.
pub fn wrap(text: &str, chars_max: usize, lines_max: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut lines: Vec<String> = Vec::new();
    let mut next = 0;
    while next < words.len() && lines.len() < lines_max {
        let mut line = words[next].to_string();
        next += 1;
        while next < words.len() && line.chars().count() + 1 + words[next].chars().count() <= chars_max {
            line.push(' ');
            line.push_str(words[next]);
            next += 1;
        }
        lines.push(shorten(&line, chars_max));
    }
    if next < words.len() {
        if let Some(last) = lines.last_mut() {
            *last = with_ellipsis(last, chars_max);
        }
    }
    lines
}

/// `line` shortened to make room for an ellipsis, cut between words where it can be.
fn with_ellipsis(line: &str, chars_max: usize) -> String {
    if line.ends_with('…') {
        return line.to_string();
    }
    let mut kept = line.to_string();
    while kept.chars().count() + 1 > chars_max {
        match kept.rfind(' ') {
            Some(space) => kept.truncate(space),
            None => return shorten(&format!("{kept} …"), chars_max),
        }
    }
    format!("{kept}…")
}

/// A coordinate with one decimal, the precision a screen shows.
pub fn px(value: f64) -> String {
    format!("{value:.1}")
}

/// Elapsed time as `h:mm` (`0:00`, `2:30`, `26:05`), for an axis.
pub fn clock(seconds: u32) -> String {
    format!("{}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

/// An id attribute for something named by the plan (`2.5` -> `2.5`, `k8s master` -> `k8s-master`):
/// letters, digits, `.`, `-` and `_` kept, anything else a `-`.
pub fn id_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(escape(r#"<script>alert('x & "y"')</script>"#), "&lt;script&gt;alert(&#39;x &amp; &quot;y&quot;&#39;)&lt;/script&gt;");
        assert_eq!(escape("k8s-master-2 → VIP"), "k8s-master-2 → VIP", "text without markup stays as it is");
    }

    #[test]
    fn shorten_keeps_short_text_and_marks_a_cut() {
        assert_eq!(shorten("Smoke", 10), "Smoke");
        assert_eq!(shorten("Generate the join command", 10), "Generate…");
        assert_eq!(shorten("Generate the join command", 10).chars().count(), 9);
        assert_eq!(shorten("Prép à", 3), "Pr…", "cuts between characters, not bytes");
    }

    #[test]
    fn wrap_breaks_between_words_and_cuts_the_rest() {
        assert_eq!(wrap("Smoke", 10, 2), ["Smoke"]);
        assert_eq!(wrap("Generate the join command", 12, 2), ["Generate the", "join command"]);
        assert_eq!(wrap("Join k8s-master-2 as a control-plane node", 12, 2), ["Join", "k8s-master-…"]);
        assert_eq!(
            wrap("Refactor the stack to loop over a list of masters", 22, 2),
            ["Refactor the stack to", "loop over a list of…"],
            "the words that do not fit are marked as cut"
        );
        assert_eq!(wrap("Smoke through the VIP now", 21, 1), ["Smoke through the…"]);
        assert_eq!(wrap("Upload control-plane certs", 14, 1), ["Upload…"]);
        assert_eq!(wrap("control-plane-certificates", 14, 2), ["control-plane…"], "one word longer than a line is cut");
        assert_eq!(wrap("", 10, 2), Vec::<String>::new());
        assert!(wrap("a very long title that goes on and on", 8, 3).iter().all(|l| l.chars().count() <= 8));
    }

    #[test]
    fn clock_reads_hours_and_minutes() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(9000), "2:30");
        assert_eq!(clock(26 * 3600 + 300), "26:05");
    }

    #[test]
    fn id_parts_hold_no_markup_or_space() {
        assert_eq!(id_part("3b.5"), "3b.5");
        assert_eq!(id_part("pve a<\"x\">"), "pve-a--x--");
    }
}
