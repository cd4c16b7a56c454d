//! Redaction of secrets (join tokens, certificate keys, private keys) from anything shown or kept.
//!
//! Every line that leaves the executor — terminal, journal, log, error — passes through
//! [`redact`]. The output of a command marked secret is never kept at all ([`SECRET_OUTPUT`]).

use regex::Regex;
use std::sync::OnceLock;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";
/// What stands for the whole output of a command marked secret.
pub const SECRET_OUTPUT: &str = "<output of a secret command: not kept>";

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // A private key block, whole.
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)", "<redacted private key>"),
            // A kubeadm bootstrap token anywhere: [a-z0-9]{6}.[a-z0-9]{16}.
            (r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", "<redacted>"),
            // A certificate key or CA hash: 64 hex digits.
            (r"\b(sha256:)?[0-9a-fA-F]{64}\b", "<redacted>"),
            // A kubeconfig's client key and token (YAML or JSON), whatever their form.
            (r#"(?i)("?(?:client-key-data|token|id-token|refresh-token|password)"?\s*:\s*"?)[^\s",}]+"#, "${1}<redacted>"),
            // A bearer token in an Authorization header or a message.
            (r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*", "${1}<redacted>"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("the patterns are constants that compile"), replacement))
        .collect()
    })
}

/// `text` with every secret it holds replaced by [`REDACTED`].
///
/// ```
/// use plan_exec::redact::redact;
/// let line = "kubeadm join 127.0.20.99:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// let shown = redact(line);
/// assert!(!shown.contains("abcdef.0123456789abcdef"));
/// assert!(!shown.contains("0123456789abcdef0123456789abcdef"));
/// assert!(shown.starts_with("kubeadm join 127.0.20.99:6443 --token <redacted>"));
/// ```
pub fn redact(text: &str) -> String {
    static FLAG: OnceLock<Regex> = OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        Regex::new(r"(--(?:token|certificate-key|discovery-token-ca-cert-hash)[= ]+)([^\s']+)")
            .expect("the pattern is a constant that compiles")
    });
    // The value after a secret flag, unless it is a placeholder (<T>) or a shell expansion.
    let mut out = flag
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let value = caps[2].trim_start_matches("sha256:");
            if value.starts_with('<') || value.starts_with('$') {
                caps[0].to_string()
            } else {
                format!("{}{REDACTED}", &caps[1])
            }
        })
        .into_owned();
    for (pattern, replacement) in patterns() {
        out = pattern.replace_all(&out, *replacement).into_owned();
    }
    out
}

/// Every string in a JSON value, redacted in place (`plan status --format json`): redacting the
/// printed text instead could cut a private-key pattern across the document.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => *text = redact(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_json),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

/// What of a command's output may be kept: nothing for a secret command, else the redacted tail,
/// at most `bytes_max` bytes of it, cut on a character boundary (a journal line never holds half a
/// character, and its size is bounded whatever the output's script).
pub fn keepable_output(text: &str, secret: bool, bytes_max: usize) -> String {
    if secret {
        return if text.is_empty() { String::new() } else { SECRET_OUTPUT.to_string() };
    }
    let shown = redact(text);
    if shown.len() <= bytes_max {
        return shown;
    }
    let mut start = shown.len() - bytes_max;
    while !shown.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &shown[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_expansions_stay_readable() {
        let line = "kubeadm join 10.0.20.99:6443 --token <T> --discovery-token-ca-cert-hash sha256:<H> --certificate-key $(sudo cat /root/.plan-certificate-key)";
        assert_eq!(redact(line), line);
    }

    #[test]
    fn keys_and_private_keys_are_redacted() {
        let key = "a".repeat(64);
        assert_eq!(redact(&format!("certificate key:\n{key}\n")), "certificate key:\n<redacted>\n");
        let pem = "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\ny";
        assert_eq!(redact(pem), "x\n<redacted private key>\ny");
        assert_eq!(redact("--certificate-key=deadbeef"), "--certificate-key=<redacted>");
    }

    #[test]
    fn kubeconfig_credentials_and_bearer_tokens_are_redacted() {
        let kubeconfig = "users:\n- name: admin\n  user:\n    client-certificate-data: LS0tCERU\n    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t\n    token: s3cr3t-t0ken\n";
        let shown = redact(kubeconfig);
        assert!(!shown.contains("LS0tLS1CRUdJTiBF") && !shown.contains("s3cr3t-t0ken"), "{shown}");
        assert!(shown.contains("client-key-data: <redacted>") && shown.contains("token: <redacted>"), "{shown}");
        assert!(shown.contains("client-certificate-data: LS0tCERU"), "a certificate is not a secret: {shown}");
        assert_eq!(redact(r#"{"token":"abc.def"}"#), r#"{"token":"<redacted>"}"#);
        assert_eq!(redact("Authorization: Bearer eyJhbGciOi.x-y_z=="), "Authorization: Bearer <redacted>");
        let mut json = serde_json::json!({"halted": {"reason": "--token abcdef.0123456789abcdef", "n": 1}, "drift": ["token: x"]});
        redact_json(&mut json);
        assert_eq!(json, serde_json::json!({"halted": {"reason": "--token <redacted>", "n": 1}, "drift": ["token: <redacted>"]}));
    }

    #[test]
    fn secret_output_is_never_kept() {
        assert_eq!(keepable_output("abcdef.0123456789abcdef", true, 100), SECRET_OUTPUT);
        assert_eq!(keepable_output("", true, 100), "");
        assert_eq!(keepable_output("0123456789", false, 4), "…6789");
    }

    #[test]
    fn kept_output_is_bounded_in_bytes_and_cut_between_characters() {
        // Four-byte characters: a cut by bytes that ignored boundaries would split one.
        let output = "\u{1F600}".repeat(1000);
        for bytes_max in [1, 2, 3, 4, 5, 2001] {
            let kept = keepable_output(&output, false, bytes_max);
            let tail = kept.strip_prefix('…').expect("marked as cut");
            assert!(tail.len() <= bytes_max && tail.len().is_multiple_of(4), "{bytes_max}: {} bytes", tail.len());
        }
        let kept = keepable_output(&"é".repeat(3000), false, 2000);
        assert_eq!(kept.len(), '…'.len_utf8() + 2000, "2000 bytes, not 2000 characters");
    }
}
