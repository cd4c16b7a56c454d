//! The apiserver's certificate and kubeadm-config's endpoint, and the join credentials: the
//! uploaded certs, the join token, and the secrets the joins leave on the hosts.

use super::refuse::{needs_api, needs_up, Words};
use super::{Action, Refusal};
use crate::cluster::Cluster;
use crate::topology::{NodeIx, Topology};

/// The kubeadm-config and apiserver certificate actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn cert_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    match action {
        Action::PatchKubeadmConfig => {
            needs_api(w, c, t, "kubeadm init phase upload-config")?;
            n.kubeadm_endpoint = true;
        }
        Action::RevertKubeadmConfig => {
            needs_api(w, c, t, "kubeadm init phase upload-config")?;
            n.kubeadm_endpoint = false;
        }
        Action::MoveCertAside(x) => {
            needs_up(w, c, t, x, "mv apiserver.{crt,key}")?;
            if !c.cert_present.contains(x) && !c.cert_backup {
                return w.refuse(|| "mv: apiserver.crt: no such file");
            }
            if c.cert_present.contains(x) {
                n.cert_backup = true;
            }
            n.cert_present.set(x, false);
            n.cert_vip.set(x, false);
        }
        Action::GenerateCert(x) => {
            needs_up(w, c, t, x, "kubeadm init phase certs apiserver")?;
            // The new ClusterConfiguration it reads is written by the kubeadm-config patch step;
            // without it kubeadm stops (the lab's run through the executor showed it).
            if !c.kubeadm_endpoint {
                return w
                    .refuse(|| "kubeadm init phase certs apiserver --config /tmp/kubeadm-new.yaml: unable to read config: no such file");
            }
            // The phase reuses any existing pair that chains to the CA ("Using existing apiserver
            // certificate and key on disk", `runCertPhase` in cmd/phases/init/certs.go) without
            // looking at its SANs: they only change when the old pair was moved away first.
            if !c.cert_present.contains(x) {
                n.cert_present.set(x, true);
                n.cert_vip.set(x, c.kubeadm_endpoint);
            }
            *n = reload_serving_cert(n, x);
        }
        Action::RestoreCert(x) => {
            needs_up(w, c, t, x, "cp apiserver backup")?;
            if !c.cert_backup {
                return w.refuse(|| "cp: /tmp/apiserver-backup/apiserver.crt: no such file");
            }
            n.cert_present.set(x, true);
            n.cert_vip.set(x, false);
            *n = reload_serving_cert(n, x);
        }
        Action::RestartApiserver(x) => {
            needs_up(w, c, t, x, "restart kube-apiserver")?;
            if !c.control_plane.contains(x) {
                return w.refuse(|| format!("{} has no kube-apiserver static pod", t.name(x)));
            }
            n.apiserver_running.set(x, c.cert_present.contains(x));
            n.served_vip.set(x, c.cert_vip.contains(x));
        }
        _ => unreachable!("{action:?} is not a certificate action"),
    }
    Ok(())
}

/// A running apiserver serves the pair on disk within [`crate::facts::APISERVER_CERT_RELOAD_S`];
/// with no pair on disk it keeps the last good one.
fn reload_serving_cert(c: &Cluster, x: NodeIx) -> Cluster {
    let mut n = *c;
    let running = c.up.contains(x) && c.control_plane.contains(x) && c.apiserver_running.contains(x);
    if running && c.cert_present.contains(x) {
        n.served_vip.set(x, c.cert_vip.contains(x));
    }
    n
}

/// The join credentials' actions: what each makes of `c`, written into `n`.
#[inline]
pub(super) fn join_secret_transition(c: &Cluster, n: &mut Cluster, t: &Topology, action: Action, w: Words) -> Result<(), Refusal> {
    let master = t.existing_master();
    match action {
        Action::UploadCerts => {
            needs_api(w, c, t, "kubeadm init phase upload-certs")?;
            n.certs_uploaded_s = Some(c.clock_s);
            // The plan keeps the printed key in a root-only file on the existing master.
            n.join_secrets_on = c.join_secrets_on.with(master);
        }
        Action::CreateToken => {
            needs_api(w, c, t, "kubeadm token create")?;
            n.token_s = Some(c.clock_s);
            n.join_secrets_on = c.join_secrets_on.with(master);
        }
        // A host that is down keeps its files until it is back (or destroyed).
        Action::ForgetJoinSecrets => n.join_secrets_on = c.join_secrets_on.minus(c.up),
        Action::RevokeJoinTokens => {
            if c.token_s.is_some() {
                needs_api(w, c, t, "kubeadm token delete")?;
            }
            n.token_s = None;
        }
        _ => unreachable!("{action:?} is not a join credentials action"),
    }
    Ok(())
}
