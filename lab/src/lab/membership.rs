//! The etcd operations a rehearsal performs on a lab: membership changes, starts and restarts,
//! forced new clusters, and quorum probes, each answered by real etcd.

use super::*;
use crate::etcd::{Real, Refused};

impl Lab {
    /// `etcdctl member list` through the running voters.
    pub fn members(&self) -> Result<Real<Vec<EtcdMember>>, LabError> {
        self.ctl(None).member_list()
    }

    fn find_member(&self, host: &LabHost) -> Result<Real<Option<EtcdMember>>, LabError> {
        Ok(self.ctl(Some(&host.name)).member_list()?.map(|members| members.into_iter().find(|m| m.peer_urls.contains(&host.peer_url()))))
    }

    /// Writes through the running voters until one commits or [`QUORUM_SETTLE_MS`] have passed:
    /// a write during a leader election can time out although a quorum is up, so one failed
    /// write is not yet "no quorum".
    pub fn quorum_probe(&self) -> Result<QuorumProbe, LabError> {
        let start = Instant::now();
        let ctl = self.ctl(None);
        let mut first_refusal_ms = None;
        loop {
            let answer = ctl.put(PROBE_KEY, "probe", PROBE_TIMEOUT_MS)?;
            let elapsed_ms = start.elapsed().as_millis() as u64;
            match answer {
                Ok(()) => return Ok(QuorumProbe { holds: true, elapsed_ms, first_refusal_ms, refused: None }),
                Err(refused) => {
                    first_refusal_ms.get_or_insert(elapsed_ms);
                    if elapsed_ms >= QUORUM_SETTLE_MS || ctl.endpoints().is_empty() {
                        return Ok(QuorumProbe { holds: false, elapsed_ms, first_refusal_ms, refused: Some(refused.0) });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        }
    }

    /// `etcdctl member add` for `node`, as a voter or a learner.
    ///
    /// etcd 3.4 (strict reconfiguration check) refuses a member add with "unhealthy cluster" until
    /// every member has been connected for 5 s; kubeadm retries, and so does the lab, for at most
    /// [`ADD_TIMEOUT_MS`]. Any other refusal is final.
    pub fn member_add(&mut self, node: NodeIx, membership: Membership) -> Result<Real<()>, LabError> {
        let host = self.host(node)?.clone();
        let start = Instant::now();
        let answer = loop {
            let answer = self.ctl(Some(&host.name)).member_add(&host.name, &host.peer_url(), membership)?;
            match &answer {
                Err(refused) if refused.0.contains(UNHEALTHY) && start.elapsed() < Duration::from_millis(ADD_TIMEOUT_MS) => {
                    std::thread::sleep(Duration::from_millis(RETRY_MS * 2));
                }
                _ => break answer,
            }
        };
        if answer.is_ok() && membership == Membership::Learner {
            self.state.learners.insert(host.name.clone());
            self.save()?;
        }
        Ok(answer)
    }

    /// Starts `node`'s etcd to join the cluster (`--initial-cluster-state=existing`, the
    /// membership read from the running members). A voter has joined once it answers; a learner
    /// once it knows a leader (it cannot sync without one). A member that does not join in
    /// [`JOIN_TIMEOUT_MS`] is stopped again and the start counts as refused.
    pub fn member_start(&mut self, node: NodeIx) -> Result<Real<()>, LabError> {
        let host = self.host(node)?.clone();
        if self.etcd_pid(&host).is_some() {
            return Ok(Ok(()));
        }
        let members = match self.ctl(Some(&host.name)).member_list()? {
            Ok(members) => members,
            Err(refused) => return Ok(Err(Refused(format!("cannot read the membership to join: {refused}")))),
        };
        let me = members.iter().find(|m| m.peer_urls.contains(&host.peer_url()));
        let learner = me.map(|m| m.is_learner).unwrap_or(false);
        let mut initial: Vec<String> = members
            .iter()
            .filter_map(|m| {
                let peer = m.peer_urls.first()?;
                let name = self.state.layout.by_peer_url(peer).map(|h| h.name.clone()).unwrap_or_else(|| m.hex_id());
                Some(format!("{name}={peer}"))
            })
            .collect();
        if me.is_none() {
            initial.push(format!("{}={}", host.name, host.peer_url()));
        }
        self.wipe(&host)?;
        if learner {
            self.state.learners.insert(host.name.clone());
        }
        self.spawn_etcd(&host, initial.join(","), ClusterState::Existing, false)?;
        let start = Instant::now();
        let ctl = self.ctl_of(&host);
        loop {
            if self.etcd_pid(&host).is_none() {
                let why = process::log_tail(&self.log_path(&host), 1);
                self.state.etcd.remove(&host.name);
                self.save()?;
                return Ok(Err(Refused(format!("etcd of {} exited: {why}", host.name))));
            }
            if let Ok(leader) = ctl.leader()? {
                if leader != 0 || !learner {
                    return Ok(Ok(()));
                }
            }
            if start.elapsed() >= Duration::from_millis(JOIN_TIMEOUT_MS) {
                self.signal_etcd(&host, Signal::Kill)?;
                let what = if learner { "found no leader to sync from" } else { "did not answer" };
                return Ok(Err(Refused(format!("etcd of {} {what} within {JOIN_TIMEOUT_MS} ms", host.name))));
            }
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        }
    }

    /// `etcdctl member promote`, retried while the learner catches up, for at most
    /// [`PROMOTE_TIMEOUT_MS`]. Not a learner (a voter, or no member): nothing to do.
    pub fn member_promote(&mut self, node: NodeIx) -> Result<Real<()>, LabError> {
        let host = self.host(node)?.clone();
        let member = match self.find_member(&host)? {
            Ok(Some(m)) if m.is_learner => m,
            Ok(_) => return Ok(Ok(())),
            Err(refused) => return Ok(Err(refused)),
        };
        let start = Instant::now();
        loop {
            match self.ctl(Some(&host.name)).member_promote(&member)? {
                Ok(()) => {
                    self.state.learners.remove(&host.name);
                    self.save()?;
                    return Ok(Ok(()));
                }
                Err(refused) if start.elapsed() >= Duration::from_millis(PROMOTE_TIMEOUT_MS) => return Ok(Err(refused)),
                Err(_) => std::thread::sleep(Duration::from_millis(RETRY_MS)),
            }
        }
    }

    /// `etcdctl member remove`, run through the other members. Not a member: nothing to do. A
    /// removed member's etcd stops itself; the lab makes sure it did.
    pub fn member_remove(&mut self, node: NodeIx) -> Result<Real<()>, LabError> {
        let host = self.host(node)?.clone();
        let member = match self.find_member(&host)? {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(Ok(())),
            Err(refused) => return Ok(Err(refused)),
        };
        let answer = self.ctl(Some(&host.name)).member_remove(&member)?;
        if answer.is_ok() {
            self.state.learners.remove(&host.name);
            if let Some(pid) = self.etcd_pid(&host) {
                let child = self.children.iter_mut().find(|c| c.id() == pid);
                process::wait_gone(pid, child, Duration::from_millis(REMOVED_EXIT_MS));
                self.signal_etcd(&host, Signal::Kill)?;
            }
            self.save()?;
        }
        Ok(answer)
    }

    /// What `kubeadm reset` does to etcd: remove its own member when the cluster takes it (a
    /// refusal is only a warning there), stop the member, wipe its data. Returns the removal's
    /// answer.
    pub fn kubeadm_reset(&mut self, node: NodeIx) -> Result<Real<()>, LabError> {
        let removal = self.member_remove(node)?;
        let host = self.host(node)?.clone();
        self.signal_etcd(&host, Signal::Kill)?;
        self.wipe(&host)?;
        Ok(removal)
    }

    /// `etcd --force-new-cluster` on `node`: stop it, restart it from its data as a one-member
    /// cluster, wait until it takes writes.
    pub fn force_new_cluster(&mut self, node: NodeIx) -> Result<Real<()>, LabError> {
        let host = self.host(node)?.clone();
        self.signal_etcd(&host, Signal::Term)?;
        if !self.data_dir(&host).join("member").is_dir() {
            return Ok(Err(Refused(format!("{} has no etcd data to force a new cluster from", host.name))));
        }
        let initial = format!("{}={}", host.name, host.peer_url());
        self.spawn_etcd(&host, initial, ClusterState::Existing, true)?;
        self.state.learners.clear();
        match self.wait_writable(&host) {
            Ok(()) => Ok(Ok(())),
            Err(LabError::Timeout { what, timeout_ms }) => Ok(Err(Refused(format!("{what}: not within {timeout_ms} ms")))),
            Err(LabError::Exited { log_tail, .. }) => Ok(Err(Refused(format!("etcd exited: {log_tail}")))),
            Err(other) => Err(other),
        }
    }

    /// Starts `node`'s etcd again from its data directory (a host that boots runs its static
    /// pods). No data: nothing starts. Returns whether it started.
    pub fn restart(&mut self, node: NodeIx) -> Result<Real<bool>, LabError> {
        let host = self.host(node)?.clone();
        if self.etcd_pid(&host).is_some() || !self.data_dir(&host).join("member").is_dir() {
            return Ok(Ok(false));
        }
        // With a data directory, etcd ignores the initial-cluster flags.
        let initial = format!("{}={}", host.name, host.peer_url());
        self.spawn_etcd(&host, initial, ClusterState::Existing, false)?;
        let start = Instant::now();
        let ctl = self.ctl_of(&host);
        loop {
            if self.etcd_pid(&host).is_none() {
                return Ok(Err(Refused(format!("etcd of {} exited: {}", host.name, process::log_tail(&self.log_path(&host), 1)))));
            }
            if ctl.leader()?.is_ok() {
                return Ok(Ok(true));
            }
            if start.elapsed() >= Duration::from_millis(JOIN_TIMEOUT_MS) {
                return Ok(Err(Refused(format!("etcd of {} did not answer within {JOIN_TIMEOUT_MS} ms", host.name))));
            }
            std::thread::sleep(Duration::from_millis(RETRY_MS));
        }
    }
}
