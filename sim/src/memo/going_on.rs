//! What the exploration's go-forwards work out once: the plan going on without machines, and
//! the rest of it run from a step boundary, kept by each shard and shared between them.

use super::{Fingerprint, RankingsMade};
use plan_model::cluster::Cluster;
use plan_model::topology::Topology;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// A ranking's go-forward reads what this shard, or another before it, worked out.
pub(super) struct GoingOnKept<'a> {
    pub(super) made: Option<Arc<RankingsMade>>,
    pub(super) plans: &'a mut FxHashMap<plan_model::topology::NodeSet, Option<Arc<plan_model::plan::Plan>>>,
    pub(super) rests: &'a mut FxHashMap<Fingerprint, Arc<crate::search::Continuation>>,
}

impl crate::search::GoingOn for GoingOnKept<'_> {
    fn plan(
        &mut self,
        t: &Topology,
        plan: &plan_model::plan::Plan,
        gone: plan_model::topology::NodeSet,
    ) -> Option<Arc<plan_model::plan::Plan>> {
        if let Some(kept) = self.plans.get(&gone) {
            return kept.clone();
        }
        let made = self.made.as_ref().map(|made| made.plan(gone, || crate::search::going_on(t, plan, gone)));
        let kept = made.unwrap_or_else(|| crate::search::going_on(t, plan, gone));
        self.plans.insert(gone, kept.clone());
        kept
    }

    /// The rest from each step boundary on is kept by the state there and the step: the
    /// go-forwards of different halts meet at boundaries in the same states (four of every
    /// five boundaries their rests pass at depth 2 on the homelab), and each step from such a
    /// state is run once.
    fn rest(
        &mut self,
        t: &Topology,
        plan_without: &plan_model::plan::Plan,
        from: usize,
        state: &Cluster,
    ) -> Arc<crate::search::Continuation> {
        let mut walked: Vec<(Fingerprint, crate::search::StepRun)> = Vec::new();
        let mut at = *state;
        let mut kept = None;
        for step in from..plan_without.steps.len() {
            let key = Fingerprint::of(&(&at, step));
            if let Some(rest) = self.kept(key) {
                kept = Some(rest);
                break;
            }
            let run = crate::search::StepRun::of(t, plan_without, step, &at);
            at = *run.end();
            let goes_on = run.goes_past_step();
            walked.push((key, run));
            if !goes_on {
                break;
            }
        }
        for (key, run) in walked.into_iter().rev() {
            let rest = Arc::new(match kept {
                Some(next) => run.then(next),
                None => run.last(),
            });
            kept = Some(self.keep(key, rest));
        }
        kept.unwrap_or_else(|| Arc::new(crate::search::Continuation::at_end(*state)))
    }
}

impl GoingOnKept<'_> {
    /// The rest from a boundary kept under `key`, by this shard or another.
    fn kept(&mut self, key: Fingerprint) -> Option<Arc<crate::search::Continuation>> {
        if let Some(kept) = self.rests.get(&key) {
            return Some(kept.clone());
        }
        let made = self.made.as_ref()?.rest(key)?;
        self.rests.insert(key, made.clone());
        Some(made)
    }

    /// Keeps `rest` under `key`, and gives the rest kept there (another shard's, where it made
    /// it first: the same).
    fn keep(&mut self, key: Fingerprint, rest: Arc<crate::search::Continuation>) -> Arc<crate::search::Continuation> {
        let rest = match &self.made {
            Some(made) => made.keep_rest(key, rest),
            None => rest,
        };
        self.rests.insert(key, rest.clone());
        rest
    }
}

/// What every shard's go-forwards worked out.
#[derive(Default)]
pub(super) struct GoingOnMade {
    plans: Mutex<FxHashMap<plan_model::topology::NodeSet, Option<Arc<plan_model::plan::Plan>>>>,
    rests: Mutex<FxHashMap<Fingerprint, Arc<crate::search::Continuation>>>,
}

impl RankingsMade {
    /// The plan without `gone`, worked out by `work` only where no shard did before: worked out
    /// holding the plans, so two shards that need it at once do not both work it out (each
    /// takes some 1.7 million instructions; the rests are not held meanwhile).
    fn plan(
        &self,
        gone: plan_model::topology::NodeSet,
        work: impl FnOnce() -> Option<Arc<plan_model::plan::Plan>>,
    ) -> Option<Arc<plan_model::plan::Plan>> {
        let mut plans = self.1.plans.lock().expect("no shard panics holding the plans");
        plans.entry(gone).or_insert_with(work).clone()
    }

    /// The rest from a boundary another shard kept under `key`.
    fn rest(&self, key: Fingerprint) -> Option<Arc<crate::search::Continuation>> {
        self.1.rests.lock().expect("no shard panics holding the rests").get(&key).cloned()
    }

    /// Keeps `rest` under `key` for every shard, unless one kept it first: the one kept.
    fn keep_rest(&self, key: Fingerprint, rest: Arc<crate::search::Continuation>) -> Arc<crate::search::Continuation> {
        self.1.rests.lock().expect("no shard panics holding the rests").entry(key).or_insert(rest).clone()
    }
}
