//! The rehearsal's observations of the control plane beside etcd: apiserver readiness per master,
//! HAProxy's healthy backends, TLS and `/readyz` through the VIP, and client-visible downtime,
//! each set beside what the twin's `observe` derives from its state.

use super::{names, Walk};
use crate::apiserver::Readyz;
use crate::error::LabError;
use crate::etcd::{Real, Refused};
use crate::fidelity::{Cell, Evidence, Observed, Tls, VipDowntime};
use crate::haproxy::{CHECK_FALL, CHECK_TIMEOUT_MS, REHEARSAL_CHECK_INTERVAL_MS};
use crate::probe::{ProbeRecord, PROBE_INTERVAL_MS};
use plan_model::action::{self, Action, Check};
use plan_model::cluster::Cluster;
use plan_model::observe::{self, ClientNeeds, Endpoint, Reach};
use plan_model::topology::{NodeIx, NodeSet, Topology};
use std::time::{Duration, Instant};

/// How long a master answering "not ready" is asked again before the lab concludes it is not
/// ready: a leader election after a crash makes etcd's `/health` fail for a few hundred ms
/// although quorum holds (as [`crate::lab::QUORUM_SETTLE_MS`] for writes).
pub const READY_SETTLE_MS: u64 = 2_000;
/// A client-visible outage the twin did not predict is still agreement when it is no longer
/// than this: HAProxy needs `fall` failed checks (each up to the check timeout) to take a dead
/// backend out, and the probe samples every [`PROBE_INTERVAL_MS`]; the twin's checks are
/// instantaneous. 2 x 100 ms + 500 ms + 100 ms, rounded up.
pub const DETECTION_TOLERANCE_MS: u64 = 1_000;
const _: () =
    assert!(CHECK_FALL as u64 * REHEARSAL_CHECK_INTERVAL_MS as u64 + CHECK_TIMEOUT_MS as u64 + PROBE_INTERVAL_MS <= DETECTION_TOLERANCE_MS);

/// The twin's prediction for a client of the VIP, in model seconds, accumulated on the walk's
/// model state as the simulator's downtime accounting does (each action's duration in the state
/// before it, plus its transient: an apiserver restart, an LB reset window).
#[derive(Debug, Clone, Default)]
pub(super) struct TwinVip {
    /// The VIP answered ready at least once (before that, "down" is "not built yet").
    pub seen_ok: bool,
    pub down_s: u32,
    /// Steps with predicted downtime, in order, each once.
    pub steps: Vec<String>,
}

fn vip_reach(c: &Cluster, t: &Topology) -> Reach {
    observe::reach(c, t, Endpoint::Vip, ClientNeeds { oidc: false })
}

/// The twin's TLS view of the VIP: which healthy backends serve a cert without the VIP SAN.
fn twin_tls(c: &Cluster, t: &Topology) -> Cell {
    let healthy = observe::healthy_backends(c, t);
    if !c.lb_up || !c.vip_alias || !c.lb_running.frontend || healthy.is_empty() {
        return Observed::Tls(Tls::NoHandshake("no healthy backend to verify".to_string())).into();
    }
    let bad = healthy.minus(c.served_vip);
    let lacks = format!("cert of {} lacks the VIP SAN", names(t, bad));
    if bad.is_empty() {
        Observed::Tls(Tls::Verified).with(format!("served by {}", names(t, healthy)))
    } else if bad == healthy {
        Observed::Tls(Tls::Rejected(lacks)).into()
    } else {
        Observed::Tls(Tls::Mixed(lacks)).into()
    }
}

/// What rustls said of the answers through the VIP.
fn lab_tls(answers: &[Readyz]) -> Cell {
    let rejected: Vec<&Readyz> = answers.iter().filter(|a| matches!(a, Readyz::TlsRejected(_))).collect();
    let verified = answers.iter().filter(|a| a.tls_verified()).count();
    let tls = match (verified, rejected.first()) {
        (0, None) => Tls::NoHandshake(answers.first().map(|a| a.to_string()).unwrap_or_default()),
        (_, None) => return Observed::Tls(Tls::Verified).with(format!("{verified} of {} requests", answers.len())),
        (0, Some(first)) => Tls::Rejected(format!("{first} ({} of {} requests)", rejected.len(), answers.len())),
        (_, Some(first)) => Tls::Mixed(format!("{first} ({} of {} requests; {verified} verified)", rejected.len(), answers.len())),
    };
    Observed::Tls(tls).into()
}

/// A client's reach through the VIP from the answers it got, in the twin's terms.
fn lab_reach(answers: &[Readyz]) -> (Reach, Option<String>) {
    let ready = answers.iter().filter(|a| a.is_ready()).count();
    let first_bad = answers.iter().find(|a| !a.is_ready()).map(|a| a.to_string()).unwrap_or_default();
    match ready {
        0 => (Reach::Down(first_bad), None),
        n if n == answers.len() => (Reach::Ok, Some(format!("{n} of {n} requests ready"))),
        n => (Reach::Intermittent(format!("{n} of {} ready; {first_bad}", answers.len())), None),
    }
}

impl Walk<'_> {
    /// The twin's VIP downtime for `a`, applied to `before`, now in `self.c`.
    pub(super) fn account_vip(&mut self, before: &Cluster, a: Action, step: &str) {
        let t = self.t;
        if self.twin_vip.seen_ok {
            let mut down = if vip_reach(before, t).is_down() { a.duration_s() } else { 0 };
            if let Some(tr) = action::transient(before, t, a) {
                if vip_reach(&tr.during, t).is_down() {
                    down += tr.seconds;
                }
            }
            if down > 0 {
                self.twin_vip.down_s += down;
                if self.twin_vip.steps.last().map(String::as_str) != Some(step) {
                    self.twin_vip.steps.push(step.to_string());
                }
            }
        }
        if vip_reach(&self.c, t).is_ok() {
            self.twin_vip.seen_ok = true;
        }
    }

    /// The control plane follows the shadow state after `a` (or a fault, `a` = None).
    pub(super) fn sync_control_plane(&mut self, a: Option<Action>, restart: Option<NodeIx>) -> Result<(), LabError> {
        self.cp.sync(&self.c, a, restart)
    }

    /// `GET /readyz` straight at `node`, asked again while it answers "not ready", for at most
    /// [`READY_SETTLE_MS`] (a refused connection is final: nothing listens).
    fn settled_readyz(&self, node: NodeIx) -> Result<Readyz, LabError> {
        let start = Instant::now();
        loop {
            let answer = self.cp.readyz_direct(node)?;
            if !matches!(answer, Readyz::NotReady(_)) || start.elapsed() >= Duration::from_millis(READY_SETTLE_MS) {
                return Ok(answer);
            }
            std::thread::sleep(Duration::from_millis(crate::lab::RETRY_MS));
        }
    }

    /// One row per master that the twin or the lab runs an apiserver on.
    pub(super) fn observe_apiservers(&mut self, step: &str, when: &str, twin: &Cluster) -> Result<(), LabError> {
        let masters = self.t.target_masters();
        let running = twin.control_plane.or(self.c.control_plane).and(masters);
        for node in running.iter() {
            // An observation, not a check: the row holds the verdict.
            let _verdict = self.observe_apiserver(step, when, twin, node)?;
        }
        Ok(())
    }

    fn observe_apiserver(&mut self, step: &str, when: &str, twin: &Cluster, node: NodeIx) -> Result<Real<()>, LabError> {
        let predicted = observe::apiserver_ready(twin, node);
        let answer = self.settled_readyz(node)?;
        let twin_cell = match &predicted {
            Ok(()) => Observed::Ready(true).into(),
            Err(why) => Observed::Ready(false).with(why.to_string()),
        };
        let lab_cell = Observed::Ready(answer.is_ready()).with(answer.to_string());
        let name = self.t.name(node).to_string();
        self.row(step, format!("apiserver {name} /readyz {when}"), twin_cell, lab_cell, Evidence::Real);
        Ok(if answer.is_ready() { Ok(()) } else { Err(Refused(format!("kube-apiserver on {name}: {answer}"))) })
    }

    /// HAProxy's UP servers once its checks have caught up, beside the twin's healthy backends.
    fn observe_backends(&mut self, step: &str, when: &str, twin: &Cluster) -> Result<Real<()>, LabError> {
        let t = self.t;
        let healthy = observe::healthy_backends(twin, t);
        let expected: Vec<String> = healthy.iter().map(|n| t.name(n).to_string()).collect();
        let pool = twin.lb_running.pool;
        let twin_cell = if twin.lb_running.frontend || !pool.is_empty() {
            Observed::nodes(healthy).with(format!("pool: {}", names(t, pool)))
        } else {
            Observed::nodes(healthy).with("no LB frontend")
        };
        let (lab_cell, real) = match self.cp.backends_converging_to(&expected)? {
            None => (
                Observed::nodes(NodeSet::EMPTY).with("HAProxy not running at the VIP"),
                Err(Refused("nothing listens on the VIP".to_string())),
            ),
            Some(backends) => {
                let up = Observed::named_nodes(t, backends.iter().filter(|b| b.is_up()).map(|b| b.name.as_str()));
                let all: Vec<String> =
                    backends.iter().map(|b| format!("{} {} {}", b.name, b.status, b.check).trim_end().to_string()).collect();
                let real = match backends.iter().find(|b| !b.is_up()) {
                    None => Ok(()),
                    Some(down) => Err(Refused(format!("backend {} is {}", down.name, down.status))),
                };
                (up.with(format!("HAProxy: {}", all.join(", "))), real)
            }
        };
        self.row(step, format!("VIP healthy backends {when}"), twin_cell, lab_cell, Evidence::Real);
        Ok(real)
    }

    /// TLS and `/readyz` through the VIP, asked once per pool member twice over (HAProxy spreads
    /// requests round-robin), beside the twin's reach and SAN view.
    fn observe_via_vip(&mut self, step: &str, when: &str, twin: &Cluster) -> Result<Real<()>, LabError> {
        let t = self.t;
        let healthy = observe::healthy_backends(twin, t);
        let expected: Vec<String> = healthy.iter().map(|n| t.name(n).to_string()).collect();
        if self.cp.lb_running() {
            self.cp.backends_converging_to(&expected)?;
        }
        let requests = (2 * twin.lb_running.pool.len()).max(2);
        let mut answers = Vec::new();
        for _ in 0..requests {
            let answer = self.cp.readyz_via_vip()?;
            if let Some(probe) = &self.probe {
                probe.record(step, answer.clone());
            }
            answers.push(answer);
        }
        self.row(step, format!("TLS through the VIP {when}"), twin_tls(twin, t), lab_tls(&answers), Evidence::Real);
        let (lab, detail) = lab_reach(&answers);
        let verdict = if lab.is_ok() { Ok(()) } else { Err(Refused(format!("TLS and /readyz through the VIP: {lab}"))) };
        let lab_cell = Cell { value: Observed::Reach(lab), detail };
        self.row(step, format!("/readyz through the VIP {when}"), Observed::Reach(vip_reach(twin, t)), lab_cell, Evidence::Real);
        Ok(verdict)
    }

    /// Every control-plane observation at one moment (after a fault, at the end).
    pub(super) fn observe_control_plane(&mut self, step: &str, when: &str, twin: &Cluster) -> Result<(), LabError> {
        self.observe_apiservers(step, when, twin)?;
        if self.cp.lb_running() || twin.lb_running.frontend {
            let _backends = self.observe_backends(step, when, twin)?;
            let _via_vip = self.observe_via_vip(step, when, twin)?;
        }
        Ok(())
    }

    /// The lab's own verdict on a check it can make for real, `None` for the others (the model
    /// answers those alone).
    pub(super) fn real_check(&mut self, check: Check, step: &str) -> Result<Option<Real<()>>, LabError> {
        let c = self.c;
        let when = "(check)";
        Ok(Some(match check {
            Check::VipListening => {
                let twin = c.lb_up && c.vip_alias && c.lb_running.frontend;
                let lab = self.cp.vip_listening();
                self.row(step, "VIP listening (check)", Observed::Listening(twin), Observed::Listening(lab), Evidence::Real);
                if lab {
                    Ok(())
                } else {
                    Err(Refused("nothing listens on the VIP".to_string()))
                }
            }
            Check::BackendsUp => self.observe_backends(step, when, &c)?,
            Check::ViaVip => self.observe_via_vip(step, when, &c)?,
            Check::ApiserverReady(node) if self.t.target_masters().contains(node) => self.observe_apiserver(step, when, &c, node)?,
            _ => return Ok(None),
        }))
    }

    /// The downtime row: the twin's model seconds beside the probe's wall-clock milliseconds.
    pub(super) fn downtime_row(&mut self, probe: &ProbeRecord) -> VipDowntime {
        let twin = self.twin_vip.clone();
        let unexplained: Vec<String> = probe
            .outages
            .iter()
            .filter(|o| o.lasted_ms > DETECTION_TOLERANCE_MS && !o.steps.iter().any(|s| twin.steps.contains(s)))
            .map(|o| format!("{} ms in {}", o.lasted_ms, o.steps.join(", ")))
            .collect();
        let unseen: Vec<String> = twin.steps.iter().filter(|s| !probe.outages.iter().any(|o| o.steps.contains(s))).cloned().collect();
        // The twin's downtime falls where it predicts it, by definition: its list is empty.
        let twin_value = Observed::Downtime { served: twin.seen_ok, unpredicted: Vec::new() };
        let twin_cell = match (twin.seen_ok, twin.steps.is_empty()) {
            (false, _) => twin_value.into(),
            (true, true) => twin_value.with("0 s on the model clock"),
            (true, false) => twin_value.with(format!("{} s on the model clock in {}", twin.down_s, twin.steps.join(", "))),
        };
        let lab_value = Observed::Downtime { served: probe.ever_ready, unpredicted: unexplained.clone() };
        let lab_cell = if !probe.ever_ready {
            lab_value.with(format!("{} requests", probe.requests))
        } else {
            let windows: Vec<String> = probe
                .outages
                .iter()
                .map(|o| format!("{} ms in {}{}", o.lasted_ms, o.steps.join(", "), if o.partial { ", partial" } else { "" }))
                .collect();
            let mut text = format!("{} ms on the wall clock, {} requests", probe.downtime_ms, probe.requests);
            if !windows.is_empty() {
                text.push_str(&format!(": {}", windows.join("; ")));
            }
            if !unseen.is_empty() {
                text.push_str(&format!("; no outage seen in {}, shorter than the {PROBE_INTERVAL_MS} ms probe", unseen.join(", ")));
            }
            lab_value.with(text)
        };
        self.row("end", "client downtime through the VIP", twin_cell, lab_cell, Evidence::Real);
        VipDowntime {
            twin_down_s: twin.down_s,
            twin_steps: twin.steps,
            measured_ms: probe.downtime_ms,
            unexplained,
            tolerance_ms: DETECTION_TOLERANCE_MS,
        }
    }
}
