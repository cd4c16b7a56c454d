//! The digital twin: runs a plan and fault schedules over the model, explores every placement.

mod collect;
mod cursor;
pub mod expect;
pub mod explore;
pub mod memo;
pub mod policy;
pub mod recovery;
pub mod run;
pub mod search;
pub mod step;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use plan_model::cluster::Cluster;
    use plan_model::plan::Plan;
    use plan_model::topology::Topology;

    /// Numbers below a bound, the same run of them from the same seed (xorshift; a seed other
    /// than 0, which gives only zeros): the tests' random inputs, made again on every run.
    pub(crate) struct Draws(u64);

    impl Draws {
        pub(crate) fn seeded(seed: u64) -> Draws {
            debug_assert_ne!(seed, 0, "xorshift from 0 stays at 0");
            Draws(seed)
        }

        /// The next number below `bound` (any, for `u64::MAX`).
        pub(crate) fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// A scenario, the plan the planner makes for it, and every third step boundary of its
    /// no-fault run (the step's index and the state there).
    pub(crate) struct PlannedScenario {
        pub(crate) t: Topology,
        pub(crate) plan: Plan,
        pub(crate) boundaries: Vec<(usize, Cluster)>,
    }

    /// The topology of a scenario's text and the plan the planner makes for it.
    pub(crate) fn planned(text: &str) -> (Topology, Plan) {
        let t = Topology::new(&plan_model::validate::parse_scenario(text).expect("the scenario is valid"));
        let plan = plan_model::planner::generate(&t);
        (t, plan)
    }

    /// Three scenarios with other names, sizes and recoveries: the homelab, five masters, the
    /// loopback lab.
    pub(crate) fn three_scenarios() -> Vec<PlannedScenario> {
        let texts = [
            include_str!("../../scenarios/homelab.yaml"),
            include_str!("../../scenarios/five-masters.yaml"),
            include_str!("../../scenarios/loopback.yaml"),
        ];
        texts
            .into_iter()
            .map(|text| {
                let (t, plan) = planned(text);
                let (_, states) = crate::run::Engine::new(&t, &plan, crate::run::Recording::default()).track();
                let boundaries = states.iter().filter(|(p, _)| p.action == 0).step_by(3).map(|(p, c)| (p.step as usize, *c)).collect();
                PlannedScenario { t, plan, boundaries }
            })
            .collect()
    }
}
