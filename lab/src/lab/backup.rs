//! The lab's etcd backup and the worst-case recovery from it: a real `etcdctl snapshot save` of the
//! "before" cluster (the scenario's nightly backup), keys written after it, and `etcdctl snapshot
//! restore` into a fresh data directory, started as a new one-member cluster.

use super::*;
use crate::etcd::{Real, Refused, RestoreTarget, SnapshotStatus};
use plan_model::cluster::EtcdData;
use plan_model::plan::format_duration;

/// Where the backup lives, inside the lab's directory.
pub const BACKUP_DIR: &str = "backup";
/// The backup file, inside the lab's directory.
pub const BACKUP_FILE: &str = "backup/etcd-snapshot.db";
/// Keys written after the backup: the writes a restore loses.
pub const AFTER_BACKUP_PREFIX: &str = "/plan-lab/after-backup/";
/// How many: enough to tell "lost" from "a few missing".
pub const AFTER_BACKUP_KEYS: u32 = 3;
/// Where a restore moves the member's old data directory (an operator keeps it, and so does the lab).
pub const BEFORE_RESTORE_DIR: &str = "etcd.before-restore";

/// The newest backup as `etcdctl snapshot status` read it right after `snapshot save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub file: PathBuf,
    pub status: SnapshotStatus,
    /// Keys written after it ([`AFTER_BACKUP_PREFIX`]).
    pub keys_after: u32,
}

/// What etcd holds of the lab's committed data: the seed keys (written before the backup) and the
/// keys written after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommittedData {
    pub before_backup: u64,
    pub after_backup: u64,
}

impl CommittedData {
    /// What etcd should hold by the twin's `EtcdData`: intact, every key; restored from the
    /// snapshot, every key from before the backup and none written after it.
    pub fn expected(twin: EtcdData, seed_keys: u32, keys_after: u32) -> CommittedData {
        let after_backup = match twin {
            EtcdData::Intact => keys_after as u64,
            EtcdData::RestoredFromSnapshot { .. } => 0,
        };
        CommittedData { before_backup: seed_keys as u64, after_backup }
    }

    /// Whether etcd holds what the twin's `EtcdData` says ([`CommittedData::expected`]).
    pub fn agrees_with(&self, twin: EtcdData, seed_keys: u32, keys_after: u32) -> bool {
        *self == CommittedData::expected(twin, seed_keys, keys_after)
    }

    /// `10 of 10 keys from before the backup, 3 of 3 written after it`.
    pub fn describe(&self, seed_keys: u32, keys_after: u32) -> String {
        format!("{} of {seed_keys} keys from before the backup, {} of {keys_after} written after it", self.before_backup, self.after_backup)
    }
}

/// The twin's note beside its data: intact, or restored and how many seconds of writes it lost
/// (the lab's loss is counted in keys, so the seconds are shown, not compared).
pub fn twin_data_note(twin: EtcdData) -> String {
    match twin {
        EtcdData::Intact => "intact".to_string(),
        EtcdData::RestoredFromSnapshot { lost_s } => format!("restored from the backup, {} of writes lost", format_duration(lost_s)),
    }
}

impl Lab {
    /// The newest backup, when the lab took one.
    pub fn backup(&self) -> Option<&Backup> {
        self.state.backup.as_ref()
    }

    /// Takes the backup from `host` (`etcdctl snapshot save`), reads it back (`snapshot status`),
    /// then writes [`AFTER_BACKUP_KEYS`] keys it does not hold.
    pub(super) fn take_backup(&mut self, host: &LabHost) -> Result<(), LabError> {
        let file = self.dir.join(BACKUP_FILE);
        let parent = self.dir.join(BACKUP_DIR);
        std::fs::create_dir_all(&parent).map_err(|e| LabError::io(format!("create {}", parent.display()), e))?;
        let refused = |command: &str, r: Refused| LabError::Command { command: command.to_string(), message: r.0 };
        self.ctl_of(host).snapshot_save(&file)?.map_err(|r| refused("etcdctl snapshot save (the backup)", r))?;
        let status = self.offline_ctl().snapshot_status(&file)?.map_err(|r| refused("etcdctl snapshot status (the backup)", r))?;
        let ctl = self.ctl(None);
        for i in 0..AFTER_BACKUP_KEYS {
            let key = format!("{AFTER_BACKUP_PREFIX}{i:04}");
            ctl.put(&key, "committed after the backup", PROBE_TIMEOUT_MS * 3)?.map_err(|r| refused("etcdctl put (after the backup)", r))?;
        }
        self.state.backup = Some(Backup { file, status, keys_after: AFTER_BACKUP_KEYS });
        self.save()
    }

    /// etcdctl for the snapshot file commands, which dial nothing.
    fn offline_ctl(&self) -> Etcdctl {
        Etcdctl::new(&self.etcdctl_bin, Vec::new())
    }

    /// `etcdctl snapshot status` of the backup: the file is there and its hash checks out.
    pub fn backup_status(&self) -> Result<Real<SnapshotStatus>, LabError> {
        let Some(backup) = &self.state.backup else { return Ok(Err(Refused("the lab took no backup".to_string()))) };
        self.offline_ctl().snapshot_status(&backup.file)
    }

    /// What the running voters hold of the committed data (local reads: they answer without quorum).
    pub fn committed_data(&self) -> Result<Real<CommittedData>, LabError> {
        committed(&self.ctl(None))
    }

    /// What `node`'s own member holds of the committed data.
    pub fn committed_data_on(&self, node: NodeIx) -> Result<Real<CommittedData>, LabError> {
        let host = self.host(node)?;
        if self.etcd_pid(host).is_none() {
            return Ok(Err(Refused(format!("etcd of {} is not running", host.name))));
        }
        committed(&self.ctl_of(host))
    }

    /// The worst case: `etcdctl snapshot restore` of the backup on `node`. Its etcd stops, its data
    /// directory is moved aside ([`BEFORE_RESTORE_DIR`]), the backup is restored into a fresh one as
    /// a one-member cluster of `node` alone (a new cluster id: the old members cannot rejoin it),
    /// and etcd starts from it. Returns the backup's status once the member takes writes.
    ///
    /// # Errors
    /// The lab failing underneath; etcd refusing (no backup, a corrupt file, a member that does
    /// not start) is a [`Refused`].
    pub fn snapshot_restore(&mut self, node: NodeIx) -> Result<Real<SnapshotStatus>, LabError> {
        let host = self.host(node)?.clone();
        let Some(backup) = self.state.backup.clone() else { return Ok(Err(Refused("the lab took no backup to restore".to_string()))) };
        let offline = self.offline_ctl();
        let status = match offline.snapshot_status(&backup.file)? {
            Ok(status) => status,
            Err(refused) => return Ok(Err(Refused(format!("the backup {} is unusable: {refused}", backup.file.display())))),
        };
        self.signal_etcd(&host, Signal::Kill)?;
        let data_dir = self.data_dir(&host);
        let aside = data_dir.with_file_name(BEFORE_RESTORE_DIR);
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| LabError::io(format!("remove {}", aside.display()), e))?;
        }
        if data_dir.exists() {
            std::fs::rename(&data_dir, &aside).map_err(|e| LabError::io(format!("move {} aside", data_dir.display()), e))?;
        }
        let target = RestoreTarget {
            name: host.name.clone(),
            peer_url: host.peer_url(),
            data_dir,
            cluster_token: format!("plan-lab-restored-{}", host.name),
        };
        if let Err(refused) = offline.snapshot_restore(&backup.file, &target)? {
            return Ok(Err(refused));
        }
        self.state.learners.clear();
        let initial = format!("{}={}", host.name, host.peer_url());
        self.spawn_etcd(&host, initial, ClusterState::New, false)?;
        match self.wait_writable(&host) {
            Ok(()) => Ok(Ok(status)),
            Err(LabError::Timeout { what, timeout_ms }) => Ok(Err(Refused(format!("{what}: not within {timeout_ms} ms")))),
            Err(LabError::Exited { log_tail, .. }) => Ok(Err(Refused(format!("etcd exited: {log_tail}")))),
            Err(other) => Err(other),
        }
    }
}

fn committed(ctl: &Etcdctl) -> Result<Real<CommittedData>, LabError> {
    let before_backup = match ctl.count_serializable(SEED_PREFIX)? {
        Ok(n) => n,
        Err(refused) => return Ok(Err(refused)),
    };
    Ok(ctl.count_serializable(AFTER_BACKUP_PREFIX)?.map(|after_backup| CommittedData { before_backup, after_backup }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: u32 = 10;

    #[test]
    fn intact_data_agrees_only_with_every_key() {
        let all = CommittedData { before_backup: 10, after_backup: 3 };
        assert!(all.agrees_with(EtcdData::Intact, SEEDS, 3));
        assert!(!CommittedData { after_backup: 0, ..all }.agrees_with(EtcdData::Intact, SEEDS, 3));
        assert!(!CommittedData { before_backup: 9, ..all }.agrees_with(EtcdData::Intact, SEEDS, 3));
    }

    #[test]
    fn a_restore_agrees_only_when_the_keys_after_the_backup_are_gone_and_the_rest_is_there() {
        let restored = EtcdData::RestoredFromSnapshot { lost_s: 86_400 };
        assert!(CommittedData { before_backup: 10, after_backup: 0 }.agrees_with(restored, SEEDS, 3));
        assert!(!CommittedData { before_backup: 10, after_backup: 3 }.agrees_with(restored, SEEDS, 3), "nothing was lost");
        assert!(!CommittedData { before_backup: 0, after_backup: 0 }.agrees_with(restored, SEEDS, 3), "the backup's keys are missing");
    }

    #[test]
    fn the_twin_side_names_the_loss() {
        let restored = EtcdData::RestoredFromSnapshot { lost_s: 90_000 };
        assert_eq!(
            CommittedData::expected(restored, SEEDS, 3).describe(SEEDS, 3),
            "10 of 10 keys from before the backup, 0 of 3 written after it"
        );
        let note = twin_data_note(restored);
        assert!(note.starts_with("restored from the backup, ") && note.ends_with(" of writes lost"), "{note}");
    }
}
