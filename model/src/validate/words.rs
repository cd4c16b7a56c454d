//! serde's messages about the scenario's shape in an operator's words: `expected u16` becomes
//! "a whole number from 0 to 65535", and an unknown field or variant names the nearest one.

/// `message` (a serde error about the file's shape) in an operator's words.
///
/// ```
/// use plan_model::validate::in_operator_words;
/// assert_eq!(
///     in_operator_words("unknown field `etcd_bakup`, expected one of `name`, `etcd_backup`"),
///     "unknown field `etcd_bakup`: did you mean `etcd_backup`? (the fields here: `name`, `etcd_backup`)"
/// );
/// assert_eq!(in_operator_words("invalid type: string \"twelve\", expected u32"), "got the text \"twelve\", expected a whole number (0 or more)");
/// ```
pub fn in_operator_words(message: &str) -> String {
    let mut text = message.to_string();
    for (serde, words) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("invalid type: string ", "got the text "),
        ("invalid type: integer ", "got the number "),
        ("invalid type: floating point ", "got the number "),
        ("invalid value: integer ", "got the number "),
        (
            "invalid type: sequence, expected struct Scenario",
            "got a list, expected a scenario (a mapping of fields: name, kubernetes, nodes, ...)",
        ),
        ("expected struct ", "expected a mapping: "),
    ] {
        text = text.replace(serde, words);
    }
    suggest(&text).unwrap_or(text)
}

/// `unknown field|variant `X`, expected one of `a`, `b`` with the nearest name suggested.
fn suggest(text: &str) -> Option<String> {
    let (prefix, what, rest) =
        ["unknown field `", "unknown variant `"].iter().find_map(|p| text.split_once(p).map(|(before, r)| (before, *p, r)))?;
    let (wrong, rest) = rest.split_once('`')?;
    let choices = rest.strip_prefix(", expected one of ").or_else(|| rest.strip_prefix(", expected "))?;
    let names: Vec<&str> = choices.split(", ").flat_map(|c| c.split(" or ")).map(|c| c.trim_matches('`')).collect();
    let kind = what.trim_start_matches("unknown ").trim_end_matches(" `");
    let nearest = names
        .iter()
        .map(|n| (distance(&wrong.to_lowercase(), &n.to_lowercase()), *n))
        .filter(|(d, n)| *d <= (n.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d);
    let listed = format!("the {kind}s here: {choices}");
    Some(match nearest {
        Some((_, n)) => format!("{prefix}unknown {kind} `{wrong}`: did you mean `{n}`? ({listed})"),
        None => format!("{prefix}unknown {kind} `{wrong}` ({listed})"),
    })
}

/// Levenshtein distance between two names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_located_unknown_field_keeps_its_path() {
        let said = in_operator_words("target: unknown field `control_plane_cont`, expected `control_plane_count`");
        assert_eq!(
            said,
            "target: unknown field `control_plane_cont`: did you mean `control_plane_count`? (the fields here: `control_plane_count`)"
        );
    }

    #[test]
    fn a_far_name_is_listed_without_a_guess() {
        let said = in_operator_words("unknown field `zzz`, expected one of `name`, `path`");
        assert_eq!(said, "unknown field `zzz` (the fields here: `name`, `path`)");
    }

    #[test]
    fn variants_and_ports_read_as_words() {
        assert_eq!(
            in_operator_words("unknown variant `control-plain`, expected `control-plane` or `worker`"),
            "unknown variant `control-plain`: did you mean `control-plane`? (the variants here: `control-plane` or `worker`)"
        );
        assert_eq!(
            in_operator_words("invalid value: integer `70000`, expected u16"),
            "got the number `70000`, expected a whole number from 0 to 65535"
        );
        assert_eq!(distance("etcd_bakup", "etcd_backup"), 1);
    }
}
