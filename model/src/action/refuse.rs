//! A refusal and its words: built where a caller reads them, left out where it does not.

use super::{Refusal, RefusalKind};
use crate::cluster::Cluster;
use crate::observe;
use crate::topology::{NodeIx, Topology};

/// Whether a refusal is worded: its reason built (every caller but one), or left empty for a
/// caller that words only the refusals it reports, by applying the action again with words
/// ([`super::apply_in_place_unworded`]). Wording a refusal is most of what a refused action costs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Words(pub(super) bool);

impl Words {
    /// `why()`, or nothing (no allocation) without words.
    pub(super) fn say<R: Into<String>>(self, why: impl FnOnce() -> R) -> String {
        if self.0 {
            why().into()
        } else {
            String::new()
        }
    }

    pub(super) fn refuse<T, R: Into<String>>(self, reason: impl FnOnce() -> R) -> Result<T, Refusal> {
        self.refuse_as(RefusalKind::Precondition, reason)
    }

    pub(super) fn refuse_as<T, R: Into<String>>(self, kind: RefusalKind, reason: impl FnOnce() -> R) -> Result<T, Refusal> {
        Err(Refusal { kind, reason: self.say(reason) })
    }
}

/// Whether the credentials a control-plane join needs hold in `c`: a join token younger than its
/// TTL and the control-plane certs uploaded (the `kubeadm-certs` Secret) less than their TTL ago
/// (K13 in docs/facts.md). An expired one is refused as [`RefusalKind::Expired`]: the renewal
/// (`UploadCerts`, `CreateToken`) is what clears it.
///
/// # Errors
/// The refusal the join would meet.
pub fn join_credentials(c: &Cluster, t: &Topology) -> Result<(), Refusal> {
    join_credentials_in(c, t, Words(true))
}

pub(super) fn join_credentials_in(c: &Cluster, t: &Topology, w: Words) -> Result<(), Refusal> {
    let join = "kubeadm join --control-plane";
    match c.token_s {
        Some(at) if c.clock_s - at < t.scenario.kubeadm.token_ttl_h * 3600 => {}
        Some(at) => {
            return w.refuse_as(RefusalKind::Expired, || format!("{join}: token expired {} h after creation", (c.clock_s - at) / 3600))
        }
        None => return w.refuse(|| format!("{join}: no join token")),
    }
    let ttl_s = t.scenario.kubeadm.certs_ttl_min * 60;
    match c.certs_uploaded_s {
        Some(at) if c.clock_s - at < ttl_s => Ok(()),
        Some(at) => w.refuse_as(RefusalKind::Expired, || {
            format!(
                "{join}: secret kubeadm-certs not found: uploaded {} min ago, TTL {} min",
                (c.clock_s - at) / 60,
                t.scenario.kubeadm.certs_ttl_min
            )
        }),
        None => w.refuse(|| format!("{join}: control-plane certs were never uploaded")),
    }
}

/// Some apiserver reachable for an operator command run on the existing master (kubectl, kubeadm
/// phases that talk to the API): the VIP once consumers use it, else any ready apiserver.
pub(super) fn api_for_operator(c: &Cluster, t: &Topology) -> Result<(), String> {
    if api_answers(c) {
        Ok(())
    } else {
        let master = t.existing_master();
        Err(match observe::apiserver_ready(c, master) {
            Err(why) => format!("no apiserver answers ({}: {why})", t.name(master)),
            Ok(()) => "no apiserver answers".to_string(),
        })
    }
}

/// Whether some apiserver answers an operator command ([`api_for_operator`], without its words).
fn api_answers(c: &Cluster) -> bool {
    !c.control_plane.and(observe::apiservers_ready(c)).is_empty()
}

pub(super) fn needs_up(w: Words, c: &Cluster, t: &Topology, node: NodeIx, command: &str) -> Result<(), Refusal> {
    if c.up.contains(node) {
        Ok(())
    } else {
        w.refuse_as(RefusalKind::HostDown, || format!("{command}: ssh {}: host is down", t.name(node)))
    }
}

pub(super) fn needs_api(w: Words, c: &Cluster, t: &Topology, command: &str) -> Result<(), Refusal> {
    if api_answers(c) {
        return Ok(());
    }
    w.refuse_as(RefusalKind::NoQuorum, || format!("{command}: {}", api_for_operator(c, t).err().unwrap_or_default()))
}
