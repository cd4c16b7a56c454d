//! The keys of the placements a shard made ([`super::Shard`]'s `seen`): millions of them per
//! shard at depth 3, far more than the caches hold, each looked up once per placement (and once
//! more when the states visited are counted).

/// A set of 64-bit placement keys, by open addressing with linear probing. The keys are hashes
/// already: a key's first slot is read off its bits (times a constant, the top bits kept), and
/// the look-ups of a batch can be started together ([`Keys::touch`]), so their memory is on its
/// way before the first is asked. As a hash set's look-ups, each was a wait on memory: 14.7 % of
/// the samples at depth 3 on the homelab (`perf record`); 6.8 % with this set, the reads ahead
/// included.
#[derive(Debug)]
pub(crate) struct Keys {
    /// A power of two of slots, each empty ([`EMPTY`]) or holding a key.
    slots: Vec<u64>,
    /// How far a key's product is shifted right to give its first slot: 64 less the slots' log2.
    shift: u32,
    /// The keys held in the slots.
    held: usize,
    /// Whether the key [`EMPTY`] itself is in the set (it cannot be held in a slot).
    empty_key: bool,
}

/// An empty slot.
const EMPTY: u64 = 0;

/// Fibonacci hashing's multiplier: spreads any key's bits to the top of the product.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl Keys {
    /// An empty set with room for `keys` keys before it grows.
    pub(crate) fn with_capacity(keys: usize) -> Keys {
        let slots = (keys.max(8) * 4 / 3).next_power_of_two();
        Keys { slots: vec![EMPTY; slots], shift: 64 - slots.trailing_zeros(), held: 0, empty_key: false }
    }

    fn first_slot(&self, key: u64) -> usize {
        (key.wrapping_mul(SPREAD) >> self.shift) as usize
    }

    /// Adds `key`; whether it was not in the set already.
    pub(crate) fn insert(&mut self, key: u64) -> bool {
        if key == EMPTY {
            return !std::mem::replace(&mut self.empty_key, true);
        }
        // At most three quarters of the slots held: a probe ends within a few slots.
        if (self.held + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        match self.probe(key) {
            Ok(_) => false,
            Err(empty) => {
                self.slots[empty] = key;
                self.held += 1;
                true
            }
        }
    }

    /// Whether `key` is in the set.
    pub(crate) fn contains(&self, key: &u64) -> bool {
        if *key == EMPTY {
            return self.empty_key;
        }
        self.probe(*key).is_ok()
    }

    /// The slot holding `key` (not [`EMPTY`]), or else the empty slot its probe ends at.
    #[inline]
    fn probe(&self, key: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.first_slot(key);
        loop {
            match self.slots[i] {
                EMPTY => return Err(i),
                held if held == key => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Reads the first slot of each of `keys`, so the look-ups that follow find them in the
    /// caches: the reads do not depend on one another, so the processor has them under way at
    /// once rather than one after the other. Nothing changes.
    pub(crate) fn touch(&self, keys: impl Iterator<Item = u64>) {
        let mut any = EMPTY;
        for key in keys {
            any |= self.slots[self.first_slot(key)];
        }
        std::hint::black_box(any);
    }

    /// How many keys the set holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held + usize::from(self.empty_key)
    }

    /// Every key, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.empty_key.then_some(EMPTY).into_iter().chain(self.slots.iter().copied().filter(|s| *s != EMPTY))
    }

    /// The keys held in the `part`-th of `parts` runs of slots, as near equal as the slots allow
    /// (the key [`EMPTY`] with the first): every key is in one part, so parts can be gone through
    /// on threads of their own.
    pub(crate) fn part(&self, part: usize, parts: usize) -> impl Iterator<Item = u64> + '_ {
        debug_assert!(part < parts, "part {part} of {parts}");
        let len = self.slots.len();
        let slots = &self.slots[len * part / parts..len * (part + 1) / parts];
        (part == 0 && self.empty_key).then_some(EMPTY).into_iter().chain(slots.iter().copied().filter(|s| *s != EMPTY))
    }

    /// Twice the slots, every key placed again.
    fn grow(&mut self) {
        let slots = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots]);
        self.shift -= 1;
        self.held = 0;
        for key in old.into_iter().filter(|s| *s != EMPTY) {
            self.insert(key);
        }
    }
}

#[cfg(test)]
impl FromIterator<u64> for Keys {
    fn from_iter<I: IntoIterator<Item = u64>>(keys: I) -> Keys {
        let mut set = Keys::with_capacity(8);
        for key in keys {
            set.insert(key);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashSet;

    /// The set answers as a hash set does, through growth, with keys that meet in their first
    /// slot (many small keys, few bits apart), the empty slot's value among them.
    #[test]
    fn the_keys_answer_as_a_hash_set_does() {
        let mut draws = crate::testing::Draws::seeded(0x2545_f491_4f6c_dd1d);
        let mut next = move |spread: u64| draws.below(spread);
        for spread in [3, 1_000, 1 << 20, u64::MAX] {
            let (mut keys, mut reference) = (Keys::with_capacity(4), FxHashSet::default());
            for round in 0..50_000 {
                let key = next(spread);
                assert_eq!(keys.insert(key), reference.insert(key), "insert {key} at {round}");
                let asked = next(spread);
                assert_eq!(keys.contains(&asked), reference.contains(&asked), "contains {asked}");
                keys.touch([key, asked].into_iter());
            }
            assert_eq!(keys.len(), reference.len());
            let mut held: Vec<u64> = keys.iter().collect();
            held.sort_unstable();
            let mut expected: Vec<u64> = reference.into_iter().collect();
            expected.sort_unstable();
            assert_eq!(held, expected, "spread {spread}");
            for parts in [1, 2, 3, 7] {
                let mut in_parts: Vec<u64> = (0..parts).flat_map(|part| keys.part(part, parts)).collect();
                in_parts.sort_unstable();
                assert_eq!(in_parts, held, "spread {spread}, {parts} parts");
            }
        }
    }
}
