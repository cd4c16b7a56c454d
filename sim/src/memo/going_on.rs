//! What the exploration's go-forwards work out once: the plan going on without machines, and
//! the rest of it run from a step boundary, kept by each shard and shared between them.

use super::{Fingerprint, RankingsMade};
use plan_model::cluster::Cluster;
use plan_model::topology::Topology;
use rustc_hash::FxHashMap;
use std::sync::Arc;

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

    fn rest(
        &mut self,
        t: &Topology,
        plan_without: &plan_model::plan::Plan,
        from: usize,
        state: &Cluster,
    ) -> Arc<crate::search::Continuation> {
        let key = Fingerprint::of(&(state, from));
        if let Some(kept) = self.rests.get(&key) {
            return kept.clone();
        }
        let work = || Arc::new(crate::search::go_forward_rest(t, plan_without, from, state));
        let rest = match &self.made {
            Some(made) => made.rest(key, work),
            None => work(),
        };
        self.rests.insert(key, rest.clone());
        rest
    }
}

/// What every shard's go-forwards worked out.
#[derive(Default)]
pub(super) struct GoingOnMade {
    plans: FxHashMap<plan_model::topology::NodeSet, Option<Arc<plan_model::plan::Plan>>>,
    rests: FxHashMap<Fingerprint, Arc<crate::search::Continuation>>,
}

impl RankingsMade {
    /// The plan without `gone`, worked out by `work` only where no shard did before.
    fn plan(
        &self,
        gone: plan_model::topology::NodeSet,
        work: impl FnOnce() -> Option<Arc<plan_model::plan::Plan>>,
    ) -> Option<Arc<plan_model::plan::Plan>> {
        if let Some(made) = self.1.lock().expect("no shard panics holding the plans").plans.get(&gone) {
            return made.clone();
        }
        let plan = work();
        self.1.lock().expect("no shard panics holding the plans").plans.entry(gone).or_insert(plan).clone()
    }

    /// The rest of a plan run, worked out by `work` only where no shard did before.
    fn rest(&self, key: Fingerprint, work: impl FnOnce() -> Arc<crate::search::Continuation>) -> Arc<crate::search::Continuation> {
        if let Some(made) = self.1.lock().expect("no shard panics holding the rests").rests.get(&key) {
            return made.clone();
        }
        let rest = work();
        self.1.lock().expect("no shard panics holding the rests").rests.entry(key).or_insert(rest).clone()
    }
}
