//! What kubeadm said expired when a join failed, journalled with the halt (K13 in
//! docs/facts.md): read from kubeadm's own words before the join's output, a secret's, is dropped.

use serde::{Deserialize, Serialize};

/// The words of copycerts.go's `getSecret` for a `kubeadm-certs` Secret that is gone.
const CERTIFICATE_KEY_EXPIRED: &str = "This Secret might have expired";
/// The words of token.go's `getClusterInfo` for a token whose signature is not in cluster-info.
const TOKEN_EXPIRED: &str = "could not find a JWS signature in the cluster-info ConfigMap for token ID";

/// Which join credentials kubeadm said expired, in the output of the command a halt stopped at:
/// journalled with the halt (`expired`), where `plan recover` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExpiredCredentials {
    /// copycerts.go's words: the `kubeadm-certs` Secret the certificate key decrypts is gone.
    pub certificate_key: bool,
    /// token.go's words: the join token's signature is not in the cluster-info ConfigMap.
    pub token: bool,
}

impl ExpiredCredentials {
    /// Nothing expired (`plan status --format json` then leaves the field out).
    pub fn is_nothing(&self) -> bool {
        *self == ExpiredCredentials::default()
    }

    /// What kubeadm's `output` says expired.
    pub fn read(output: &str) -> ExpiredCredentials {
        ExpiredCredentials { certificate_key: output.contains(CERTIFICATE_KEY_EXPIRED), token: output.contains(TOKEN_EXPIRED) }
    }

    /// What a halt's reason says of them, kubeadm's words quoted (a join's output is a secret's
    /// and not kept, but these words hold none): empty when nothing expired.
    pub fn said(self) -> String {
        let mut out = String::new();
        if self.certificate_key {
            out.push_str(&format!("; kubeadm says the certificate key expired (\"{CERTIFICATE_KEY_EXPIRED}\")"));
        }
        if self.token {
            out.push_str(&format!("; kubeadm says the join token expired (\"{TOKEN_EXPIRED}\")"));
        }
        out
    }
}
