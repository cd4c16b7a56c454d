//! The continuations a memory keeps, and a run carried out until it reaches one.

use super::{Fingerprint, Mark, Tail, Walk};
use crate::run::{Cursor, Flow, Injection, Outcome, Point, Run, Track};
use rustc_hash::FxHashMap;

/// The most faults one placement strikes at its point (a pair at the same point at depth 2).
const FAULTS_AT_ONCE_MAX: usize = 4;

/// The continuations a memory keeps, by step boundary, and the boundaries its walks passed.
#[derive(Default)]
pub(super) struct Kept {
    /// Held in place (a tail is a few counts and shared lists): one allocation less to make
    /// and to free per boundary remembered.
    pub(super) tails: FxHashMap<Fingerprint, Tail>,
    /// Boundaries walked with a budget: the placements the walk from there made.
    pub(super) walked: FxHashMap<(Fingerprint, u8), usize>,
}

/// Where a run carried out stopped.
pub(super) enum Stop {
    /// At its end, with its outcome; `rejoined`: back on the no-fault run, whose outcome it is.
    End { outcome: Outcome, rejoined: bool },
    /// At a step boundary whose continuation is kept: that continuation.
    Known(Tail),
}

impl Kept {
    /// Carries `r` out from `entry`, striking `schedule` there, until it ends, rejoins the
    /// no-fault run (`track`) or reaches a boundary whose continuation is kept. Once the
    /// injections struck, every boundary passed is marked in `marks`, and every point passed
    /// recorded for a `walk`. Inlined into [`super::Memo::run`], its one caller, where the run is
    /// a local: kept out of line, the loop costs `plan check` 0.8 % more instructions.
    #[inline]
    pub(super) fn carry_out(
        &self,
        r: &mut Run<'_, '_>,
        entry: &Cursor,
        schedule: &[Injection],
        track: &Track,
        walk: &mut Option<Walk<'_>>,
        marks: &mut Vec<Mark>,
    ) -> Stop {
        let from = Point { step: entry.step as u16, action: entry.action as u16 };
        let steps = r.plan().steps.len();
        // A placement strikes at most a few faults at its point: no allocation for them.
        let mut fired_at = [false; FAULTS_AT_ONCE_MAX];
        let fired = &mut fired_at[..schedule.len()];
        let mut pos = entry.position();
        loop {
            if pos.step >= steps {
                return Stop::End { outcome: Outcome::Completed, rejoined: false };
            }
            let all_fired = fired.iter().all(|f| *f);
            // Back on the no-fault run: its end is known without a look-up (every run at this
            // configuration rejoins here, so a continuation kept for it would say the same).
            if all_fired && r.rejoins(&pos, Some(track)) {
                return Stop::End { outcome: track.outcome.clone(), rejoined: true };
            }
            if all_fired && pos.k == 0 {
                let key = Fingerprint::of(&r.cursor_ref(&pos));
                // A walk is cut only past the injection's step: a re-run of that step comes back
                // to the injection's point, where no further fault is placed.
                let walkable = pos.step > from.step as usize;
                if let Some(tail) = self.known(key, walk.as_mut(), walkable) {
                    return Stop::Known(tail);
                }
                let snapshots = walk.as_ref().map_or(0, |w| w.snapshots.len());
                marks.push(r.mark(pos.step, key, snapshots));
            }
            if all_fired {
                if let Some(w) = walk.as_mut() {
                    w.snapshots.push(Cursor::of(r, &pos));
                }
            }
            if let Flow::Stop(outcome) = r.iterate(&mut pos, schedule, fired) {
                return Stop::End { outcome, rejoined: false };
            }
        }
    }

    /// The continuation kept for the boundary `key`, where one is kept and, for a `walk`, the
    /// boundary was walked with the same budget (only past the injection's step: `walkable`);
    /// the walk then counts the placements made from there as skipped.
    #[inline]
    fn known(&self, key: Fingerprint, walk: Option<&mut Walk<'_>>, walkable: bool) -> Option<Tail> {
        let skipped = match &walk {
            None => Some(0),
            Some(w) if walkable => self.walked.get(&(key, w.budget)).copied(),
            Some(_) => None,
        };
        if let (Some(tail), Some(skipped)) = (self.tails.get(&key), skipped) {
            if let Some(w) = walk {
                w.skipped += skipped;
            }
            return Some(tail.clone());
        }
        None
    }
}
