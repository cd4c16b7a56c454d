//! Expired join credentials at a halt: what the executor reads of them in kubeadm's own words,
//! and the renewal it proposes, rendered from the plan's own commands that made them.
//!
//! The twin knows when a credential expired (its clock); the executor knows only what the failed
//! join printed. kubeadm says it in two ways (K13 in docs/facts.md):
//! - the certificate key's Secret is gone (`cmd/kubeadm/app/phases/copycerts/copycerts.go`,
//!   `getSecret`): `Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This
//!   Secret might have expired.`;
//! - the join token's Secret is gone, so discovery never finds its signature
//!   (`cmd/kubeadm/app/discovery/token/token.go`, `getClusterInfo`): `could not find a JWS
//!   signature in the cluster-info ConfigMap for token ID "…"`.
//!
//! Read there, the credential is written over the twin's state as at least its TTL old (time has
//! passed that much since it was made), and the twin's renewal (`plan_sim::search::renewal`)
//! applies: the executor proposes it first, as the twin takes it first.

use super::Runner;
use crate::invocation::Invocation;
use crate::journal::ExpiredCredentials;
use plan_model::action::Action;
use plan_model::cluster::Cluster;
use plan_model::topology::Topology;

impl ExpiredCredentials {
    /// `c` with what expired made at least its TTL old: the clock moved on to where it expires
    /// (no earlier than it stands). A credential the twin holds as never made stays so.
    pub fn written_over(self, t: &Topology, c: &Cluster) -> Cluster {
        let mut out = *c;
        let kubeadm = &t.scenario.kubeadm;
        let expires = |made: Option<u32>, ttl_s: u32| made.map(|at| at.saturating_add(ttl_s));
        if self.certificate_key {
            if let Some(at) = expires(c.certs_uploaded_s, kubeadm.certs_ttl_min * 60) {
                out.clock_s = out.clock_s.max(at);
            }
        }
        if self.token {
            if let Some(at) = expires(c.token_s, kubeadm.token_ttl_h * 3600) {
                out.clock_s = out.clock_s.max(at);
            }
        }
        out
    }
}

impl Runner<'_> {
    /// The commands that renew the join credentials step `i` reads: for each secret file its
    /// commands read, the plan's last command before it that writes the file, as compiled (the
    /// upload of the certs, the token's creation), each with the model's action it carries out.
    pub(super) fn renewal_invocations(&self, i: usize) -> Vec<(Action, Invocation)> {
        let mut writers: Vec<(usize, usize)> = Vec::new();
        for (j, command) in self.plan.steps[i].commands.iter().enumerate() {
            for path in &command.reads {
                if let Some(writer) = self.writer_of(path, i, j) {
                    if !writers.contains(&writer) {
                        writers.push(writer);
                    }
                }
            }
        }
        writers.sort_unstable();
        writers
            .into_iter()
            .flat_map(|(k, writer)| {
                // Named by what it makes: the certificate key, or the join command (the token).
                let writes = self.plan.steps[k].commands[writer].writes.as_deref();
                let action =
                    if writes == Some(plan_model::operation::CERTIFICATE_KEY_FILE) { Action::UploadCerts } else { Action::CreateToken };
                self.compiled[k].iter().filter(move |inv| inv.command == writer).map(move |inv| (action, inv.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan_model::validate::parse_scenario;

    /// copycerts.go's and token.go's errors as a failed `kubeadm join` prints them.
    const KEY_GONE: &str = "error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one";
    const TOKEN_GONE: &str = "error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\"";

    #[test]
    fn kubeadm_s_words_for_each_expired_credential_are_read_and_nothing_else_is() {
        assert_eq!(ExpiredCredentials::read(KEY_GONE), ExpiredCredentials { certificate_key: true, token: false });
        assert_eq!(ExpiredCredentials::read(TOKEN_GONE), ExpiredCredentials { certificate_key: false, token: true });
        for other in ["kubeadm join on k8s-master-2 ended with exit 1: [preflight] /etc/kubernetes/kubelet.conf already exists", ""] {
            assert_eq!(ExpiredCredentials::read(other), ExpiredCredentials::default(), "{other}");
            assert_eq!(ExpiredCredentials::read(other).said(), "");
        }
        // What the halt's reason says of them reads back the same.
        for said in [KEY_GONE, TOKEN_GONE] {
            let expired = ExpiredCredentials::read(said);
            let reason = format!("the join ended with exit 1: <output of a secret command: not kept>{}", expired.said());
            assert_eq!(ExpiredCredentials::read(&reason), expired, "{reason}");
        }
    }

    #[test]
    fn an_expired_credential_written_over_the_twin_makes_the_join_refuse_it_as_expired() {
        for scenario in [include_str!("../../../scenarios/homelab.yaml"), include_str!("../../../scenarios/five-masters.yaml")] {
            let t = Topology::new(&parse_scenario(scenario).expect("valid"));
            let mut c = Cluster::initial(&t);
            c.clock_s = 1_000;
            c.certs_uploaded_s = Some(900);
            c.token_s = Some(950);
            assert!(plan_model::action::join_credentials(&c, &t).is_ok());
            for (expired, clock_at_least) in [
                (ExpiredCredentials { certificate_key: true, token: false }, 900 + t.scenario.kubeadm.certs_ttl_min * 60),
                (ExpiredCredentials { certificate_key: false, token: true }, 950 + t.scenario.kubeadm.token_ttl_h * 3600),
            ] {
                let over = expired.written_over(&t, &c);
                assert_eq!(over.clock_s, clock_at_least, "{expired:?}");
                let refusal = plan_model::action::join_credentials(&over, &t).expect_err("expired");
                assert_eq!(refusal.kind, plan_model::action::RefusalKind::Expired, "{expired:?}: {}", refusal.reason);
                // Nothing else of the state moves.
                assert_eq!(Cluster { clock_s: c.clock_s, ..over }, c);
            }
            // A clock already past the expiry does not go back.
            let late = Cluster { clock_s: 100_000_000, ..c };
            assert_eq!(ExpiredCredentials { certificate_key: true, token: true }.written_over(&t, &late), late);
        }
    }
}
