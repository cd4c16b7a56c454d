//! Where a run is, enough to go on from there, and the no-fault run others may rejoin.

use crate::run::{Broken, Engine, Outcome, Point, Run};
use crate::step::Position;
use plan_model::action;
use plan_model::cluster::Cluster;
use plan_model::fault::Fault;
use plan_model::topology::NodeSet;

/// Faults struck that end on their own, with the clock time each ends at. A schedule of the
/// check holds at most `explore::DEPTH_MAX` faults, so they fit inline: no allocation per run
/// (a longer schedule of `plan simulate` spills to the heap). Hashes as the slice it holds.
pub type Pending = smallvec::SmallVec<[(Fault, u32); PENDING_INLINE]>;

/// Pending faults kept inline: as many as a schedule of the check holds.
const PENDING_INLINE: usize = crate::explore::DEPTH_MAX as usize;

/// Where a run is: enough to continue it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub c: Cluster,
    pub pending: Pending,
    pub step: usize,
    pub action: usize,
    pub skip_done: bool,
    pub recoveries: u32,
    /// Nodes faults have taken down so far.
    pub struck: NodeSet,
}

impl Cursor {
    pub fn start(c: Cluster) -> Cursor {
        Cursor { c, pending: Pending::new(), step: 0, action: 0, skip_done: false, recoveries: 0, struck: NodeSet::EMPTY }
    }

    /// Where `run` is at `pos`.
    pub(crate) fn of(run: &Run<'_, '_>, pos: &Position) -> Cursor {
        Cursor {
            c: run.c,
            pending: Pending::from_slice(&run.pending),
            step: pos.step,
            action: pos.k,
            skip_done: pos.skip_done,
            recoveries: pos.recoveries,
            struck: run.struck,
        }
    }

    pub(crate) fn position(&self) -> Position {
        Position { step: self.step, k: self.action, skip_done: self.skip_done, recoveries: self.recoveries }
    }

    pub fn at(c: Cluster, point: Point) -> Cursor {
        Cursor {
            c,
            pending: Pending::new(),
            step: point.step as usize,
            action: point.action as usize,
            skip_done: false,
            recoveries: 0,
            struck: NodeSet::EMPTY,
        }
    }
}

/// A [`Cursor`] borrowed from a run where it stands: it hashes exactly as the cursor would
/// (the same fields in the same order; a slice hashes as the `Vec` it was taken from), without
/// copying the pending faults out.
#[derive(Hash)]
pub(crate) struct CursorRef<'r> {
    pub c: &'r Cluster,
    pub pending: &'r [(Fault, u32)],
    pub step: usize,
    pub action: usize,
    pub skip_done: bool,
    pub recoveries: u32,
    pub struck: NodeSet,
}

impl Run<'_, '_> {
    /// Whether the run, at `pos` with nothing left to strike, is back on the no-fault run: same
    /// fingerprint at the same point, nothing pending, not re-running a step.
    pub(crate) fn rejoins(&self, pos: &Position, track: Option<&Track>) -> bool {
        let Some(track) = track else { return false };
        if !self.pending.is_empty() || pos.skip_done {
            return false;
        }
        // A run off the track differs as a rule in which machines run or which members vote:
        // fields the fingerprint keeps as they are, compared before it is made.
        track.fingerprint_at(pos.step, pos.k).is_some_and(|on_track| {
            on_track.up == self.c.up && on_track.voters == self.c.voters && *on_track == self.c.fingerprint(self.t())
        })
    }

    /// Where the run is at `pos`, borrowed: to fingerprint.
    pub(crate) fn cursor_ref(&self, pos: &Position) -> CursorRef<'_> {
        CursorRef {
            c: &self.c,
            pending: &self.pending,
            step: pos.step,
            action: pos.k,
            skip_done: pos.skip_done,
            recoveries: pos.recoveries,
            struck: self.struck,
        }
    }
}

/// The no-fault run, for runs to rejoin.
#[derive(Debug, Clone)]
pub struct Track {
    /// The fingerprint of its state at every point, by step and action (none where the no-fault
    /// run does not complete): read at every point of every run, by index rather than hashed.
    fingerprints: Vec<Vec<Cluster>>,
    pub outcome: Outcome,
    pub final_unavailable: Vec<Broken>,
    /// The state the no-fault run ends in.
    pub final_state: Cluster,
}

impl Track {
    /// The fingerprint of the no-fault run's state before action `action` of step `step`.
    pub fn fingerprint_at(&self, step: usize, action: usize) -> Option<&Cluster> {
        self.fingerprints.get(step)?.get(action)
    }
}

impl Engine<'_> {
    /// The no-fault run as a track: its fingerprint at every point, its outcome.
    pub fn track(&self) -> (Track, Vec<(Point, Cluster)>) {
        let mut c = Cluster::initial(self.t);
        let mut fingerprints: Vec<Vec<Cluster>> = Vec::new();
        let mut states = Vec::new();
        'steps: for (i, s) in self.plan.steps.iter().enumerate() {
            fingerprints.push(Vec::with_capacity(s.actions.len().max(1)));
            for k in 0..s.actions.len().max(1) {
                let point = Point { step: i as u16, action: k as u16 };
                fingerprints[i].push(c.fingerprint(self.t));
                states.push((point, c));
                let Some(&a) = s.actions.get(k) else { continue };
                match action::apply(&c, self.t, a) {
                    Ok(next) => c = next,
                    Err(_) => break 'steps,
                }
            }
        }
        let result = self.run(&[]);
        let complete = matches!(result.outcome, Outcome::Completed);
        (
            Track {
                fingerprints: if complete { fingerprints } else { Default::default() },
                outcome: result.outcome,
                final_unavailable: result.final_unavailable,
                final_state: result.final_state,
            },
            states,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::Fingerprint;
    use crate::run::{Engine, Recording};
    use plan_model::planner;
    use plan_model::topology::Topology;
    use plan_model::validate::parse_scenario;

    #[test]
    fn a_borrowed_cursor_fingerprints_as_the_cursor() {
        let t = Topology::new(&parse_scenario(include_str!("../../scenarios/homelab.yaml")).expect("the embedded scenario is valid"));
        let plan = planner::generate(&t);
        let engine = Engine::new(&t, &plan, Recording::default());
        let mut c = Cluster::initial(&t);
        c.clock_s = 1234;
        let mut r = Run::start(&engine, &Cursor::at(c, Point { step: 3, action: 1 }), true);
        r.pending.push((Fault::LbDown { lasts_s: 60 }, 1294));
        r.struck = NodeSet(0b101);
        let pos = Position { step: 3, k: 1, skip_done: true, recoveries: 2 };
        assert_eq!(Fingerprint::of(&Cursor::of(&r, &pos)), Fingerprint::of(&r.cursor_ref(&pos)));
    }
}
