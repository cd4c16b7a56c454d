//! The rehearsal's etcd backup: the plan's "newest etcd snapshot valid" check made on the lab's
//! real backup, and the worst-case recovery, `etcdctl snapshot restore`, carried out for real with
//! the committed data it leaves set beside the twin's `EtcdData`.

use super::{LabOp, Walk};
use crate::error::LabError;
use crate::etcd::{Real, Refused};
use crate::fidelity::{Evidence, Observed};
use crate::lab::{twin_data_note, CommittedData};
use plan_model::action::{Action, Refusal, RefusalKind};
use plan_model::cluster::Cluster;
use plan_model::observe;
use plan_model::topology::NodeIx;

impl Walk<'_> {
    /// `verify: recent etcd backup`: `etcdctl snapshot status` of the lab's backup decides whether
    /// the file is there and sound. Its age is the model's (the lab took it at start-up, the
    /// scenario says hours before): when the twin finds it too old, the lab repeats that.
    pub(super) fn check_backup(&mut self, step: &str, twin: &Result<Cluster, Refusal>) -> Result<Real<()>, LabError> {
        let observation = "etcd backup valid (check)";
        let status = self.lab.backup_status()?;
        let (real, note, evidence) = match (&status, twin) {
            (Ok(s), Ok(_)) => {
                (Ok(()), format!("valid: revision {}, {} keys, etcdctl snapshot status", s.revision, s.total_keys), Evidence::Real)
            }
            // The file is sound; the lab repeats the model's verdict on its age.
            (Ok(s), Err(refusal)) => (
                Err(Refused(refusal.reason.clone())),
                format!("valid at revision {}, but its age is the model's; the lab repeats the model", s.revision),
                Evidence::StandIn,
            ),
            (Err(refused), _) => (Err(refused.clone()), "unusable, etcdctl snapshot status".to_string(), Evidence::Real),
        };
        self.row(step, observation, Observed::answer(twin), Observed::answer(&real).with(note), evidence);
        Ok(real)
    }

    /// `etcdctl snapshot restore` on `x` for real, then what `x`'s member holds beside the twin's
    /// data after the restore.
    pub(super) fn restore(
        &mut self,
        x: NodeIx,
        a: Action,
        twin: Result<Cluster, Refusal>,
        step: &str,
    ) -> Result<Result<(), Refusal>, LabError> {
        let restored = self.perform(LabOp::Restore(x))?;
        let what = a.describe(self.t);
        let lab = match (&restored, self.lab.backup()) {
            (Ok(()), Some(backup)) => Observed::answer(&restored)
                .with(format!("revision {} restored, a new one-member cluster takes writes", backup.status.revision)),
            _ => Observed::answer(&restored).into(),
        };
        self.row(step, what.clone(), Observed::answer(&twin), lab, Evidence::Real);
        let next = match (twin, restored) {
            (Ok(next), Ok(())) => next,
            // Real etcd took what the twin refused: go on from reality (membership follows below).
            (Err(_), Ok(())) => Cluster { clock_s: self.c.clock_s.saturating_add(a.duration_s()), ..self.c },
            (twin, Err(refused)) => {
                let kind = twin.err().map(|r| r.kind).unwrap_or(RefusalKind::Precondition);
                return Ok(Err(Refusal { kind, reason: format!("{what}: {refused}") }));
            }
        };
        self.c = next;
        self.follow_lab(step, &what)?;
        let q = observe::quorum(&self.c);
        self.observe_quorum(step, &format!("after the restore on {}", self.t.name(x)), q)?;
        self.observe_restored_data(step, x)?;
        Ok(Ok(()))
    }

    /// The fidelity row for the restore: a key written before the backup is there, one written
    /// after it is gone, as the twin's `RestoredFromSnapshot` says.
    fn observe_restored_data(&mut self, step: &str, x: NodeIx) -> Result<(), LabError> {
        let seeds = self.lab.state().seed_keys;
        let keys_after = self.lab.backup().map(|b| b.keys_after).unwrap_or(0);
        let twin = self.c.etcd_data;
        let data = |held| Observed::Data { held, seed_keys: seeds, keys_after };
        let lab = match self.lab.committed_data_on(x)? {
            Ok(held) => data(held),
            Err(refused) => Observed::Unanswered(format!("no answer from {}: {refused}", self.t.name(x))),
        };
        let twin_cell = data(CommittedData::expected(twin, seeds, keys_after)).with(twin_data_note(twin));
        self.row(step, "committed data after the restore", twin_cell, lab, Evidence::Real);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_plane::ControlPlane;
    use crate::lab::{check_binaries, Lab};
    use crate::rehearse::vip::TwinVip;
    use crate::rehearse::{Figures, Verdict};
    use plan_model::cluster::EtcdData;
    use plan_model::planner;
    use plan_model::topology::{NodeSet, Topology};
    use plan_model::validate::parse_scenario;
    use plan_sim::recovery;
    use std::time::Instant;

    /// Apart from the integration tests' offsets (30000 and up) and the CLI's defaults.
    fn offset() -> u16 {
        10_000 + (std::process::id() % 500) as u16 * 2
    }

    /// The walk's own restore path, on real etcd: no single fault reaches the worst case, so the
    /// walk is led to it (voter mode, cp-2 added and never started: quorum lost) and the twin's
    /// worst-case actions are carried out as the policy would.
    #[test]
    fn the_walk_restores_the_backup_and_its_rows_agree_with_the_twin() {
        match check_binaries(true) {
            Ok(()) => {}
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("{e}: CI must install etcd and haproxy"),
            Err(e) => return eprintln!("skipping: {e}"),
        }
        let t = Topology::new(&parse_scenario(include_str!("../../../scenarios/legacy-1.28.yaml")).expect("legacy parses"));
        let plan = planner::generate(&t);
        let cp2 = t.new_masters().next().expect("legacy has new masters");
        let mut lab = Lab::private(&t, offset(), false, 10).expect("lab starts");
        let mut cp = ControlPlane::new(&t, lab.layout(), lab.dir()).expect("control plane");
        let mut walk = Walk {
            t: &t,
            plan: &plan,
            lab: &mut lab,
            cp: &mut cp,
            probe: None,
            twin_vip: TwinVip::default(),
            c: Cluster::initial(&t),
            pending: Vec::new(),
            rows: Vec::new(),
            recoveries: Vec::new(),
            figures: Figures::default(),
            last_event: Instant::now(),
            struck: NodeSet::EMPTY,
        };
        'walk: for step in &plan.steps {
            for &a in &step.actions {
                assert_eq!(walk.apply(a, &step.id).expect("the lab runs"), Ok(()), "{} applies on the lab", a.describe(&t));
                if a == Action::EtcdMemberAdd(cp2) {
                    break 'walk;
                }
            }
        }
        let backup_check = walk.rows.iter().find(|r| r.observation() == "etcd backup valid (check)").expect("0.1 checks the backup");
        assert!(backup_check.lab().starts_with("ok (valid: revision"), "{backup_check:?}");
        assert_eq!(backup_check.verdict(), Verdict::Agree, "etcdctl snapshot status read the file: {backup_check:?}");
        for a in recovery::worst_case_actions(&walk.c, &t).expect("cp-1 is up to restore on") {
            // Actions on a host that is down are skipped by the policy; none is down here.
            assert_eq!(walk.apply(a, "2.5").expect("the lab runs"), Ok(()), "{} applies on the lab", a.describe(&t));
        }
        assert!(matches!(walk.c.etcd_data, EtcdData::RestoredFromSnapshot { .. }));
        let restore = walk.rows.iter().find(|r| r.observation().starts_with("etcdctl snapshot restore")).expect("a restore row");
        assert!(restore.lab().starts_with("ok (revision"), "{restore:?}");
        let data = walk.rows.iter().find(|r| r.observation() == "committed data after the restore").expect("a data row");
        assert_eq!(data.lab(), "10 of 10 keys from before the backup, 0 of 3 written after it");
        assert_eq!(data.verdict(), Verdict::Agree, "{data:?}");
        let quorum = walk.rows.iter().find(|r| r.observation() == "quorum after the restore on cp-1").expect("a quorum row");
        assert!(quorum.lab().starts_with("yes"), "{quorum:?}");
        let disagree: Vec<_> = walk.rows.iter().filter(|r| r.verdict().fails()).collect();
        assert!(disagree.is_empty(), "{disagree:#?}");
    }
}
