//! Dense per-item accumulators of neighbour similarities, the inner loops of `fast`, `smart`'s
//! neighbourhood and `enhanced`'s candidates: [`Accumulator`] (sums and each item's strongest
//! source) and [`Sums`] (sums alone).

use super::top_k_similar;

/// Dense per-item accumulator of neighbour similarities, reset through the list of touched entries
/// so that a request neither allocates per catalogue item nor hashes. Remembers, per item, the
/// source item that contributed the most (for "because you liked X"); of equal contributions,
/// the smaller source id (the first one added, as every caller adds its sources in ascending
/// order).
///
/// An addition is the inner loop of `smart`'s neighbourhood and `enhanced`'s candidates (a
/// user's ~60 liked items times 100 neighbours), so it has no branch: the strongest contribution and its source are one integer (similarity bits above,
/// inverted source below), kept with an integer `max`, and a touched item is appended
/// unconditionally and counted only when new. Similarities are positive (item-to-item's are a
/// co-occurrence count over a positive denominator, content keeps only positive ones, and a
/// loaded snapshot with others is refused), so their bits order as the values do, and a zero key
/// means "untouched".
#[derive(Default)]
pub struct Accumulator {
    /// Per item, everything one addition reads and writes, side by side.
    slots: Vec<Slot>,
    /// The touched items in the first `len` entries, with room for one more past the catalogue.
    touched: Vec<u32>,
    len: usize,
}

/// One item's sum and strongest contribution.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// `(similarity bits << 32) | !source`; 0 = untouched.
    best: u64,
    sum: f32,
}

impl Accumulator {
    /// Makes room for `n_items` (keeps what is there: call [`Accumulator::reset`] after use).
    pub fn prepare(&mut self, n_items: usize) {
        if self.slots.len() < n_items {
            self.slots.resize(n_items, Slot::default());
            self.touched.resize(n_items + 1, 0);
        }
    }

    /// Adds every neighbour of `source` with its similarity.
    pub fn add_neighbours(&mut self, source: u32, neighbours: &[(u32, f32)]) {
        let (slots, touched) = (&mut self.slots, &mut self.touched);
        let mut len = self.len;
        for &(item, sim) in neighbours {
            debug_assert!(sim > 0.0, "neighbour similarities are positive");
            let slot = &mut slots[item as usize];
            touched[len] = item;
            len += usize::from(slot.best == 0);
            slot.sum += sim;
            slot.best = slot
                .best
                .max(u64::from(sim.to_bits()) << 32 | u64::from(!source));
        }
        self.len = len;
    }

    /// Items that received anything, in the order they first did.
    pub fn touched(&self) -> &[u32] {
        &self.touched[..self.len]
    }

    pub fn sum(&self, item: u32) -> f32 {
        self.slots.get(item as usize).map_or(0.0, |s| s.sum)
    }

    /// The strongest source of `item`, `u32::MAX` when untouched.
    pub fn source(&self, item: u32) -> u32 {
        match self.slots.get(item as usize) {
            Some(s) if s.best != 0 => !(s.best as u32),
            _ => u32::MAX,
        }
    }

    pub fn contains(&self, item: u32) -> bool {
        self.slots.get(item as usize).is_some_and(|s| s.best != 0)
    }

    /// The largest sum.
    pub fn max(&self) -> f32 {
        self.touched()
            .iter()
            .map(|&i| self.slots[i as usize].sum)
            .fold(0.0, f32::max)
    }

    /// The `k` touched items with the largest sums, best first (ties by index), skipping `skip`.
    pub fn top(&self, k: usize, skip: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let sims = self
            .touched()
            .iter()
            .filter(|&&i| !skip(i))
            .map(|&i| (i, self.slots[i as usize].sum))
            .collect();
        top_k_similar(sims, k)
    }

    pub fn reset(&mut self) {
        for &i in &self.touched[..self.len] {
            self.slots[i as usize] = Slot::default();
        }
        self.len = 0;
    }
}

/// Dense per-item sums of neighbour similarities and the items touched, without sources: `fast`
/// explains only the few items it returns, from their own lists ([`super::reasons`]), so its inner
/// loop keeps one `f32` per item, a quarter of an [`Accumulator`]'s slot, with no `max`. Like
/// there, an addition has no branch, and a zero sum means "untouched" (similarities are positive).
///
/// When a request adds at least as many entries as the catalogue has items (a user with many
/// liked items in a small catalogue: most items get touched anyway), the touched list is not
/// kept ([`Sums::touched`] is `None`): the additions are then a load, an add and a store, and the
/// passes after them run over the whole catalogue in order, which costs less than keeping the
/// list did. In a large catalogue the list is kept, so no pass is as long as the catalogue.
#[derive(Default)]
pub struct Sums {
    sums: Vec<f32>,
    /// The touched items in the first `len` entries, with room for one more past the catalogue.
    touched: Vec<u32>,
    len: usize,
    /// The items of this request (`prepare`'s `n_items`).
    n: usize,
    /// No touched list this request: every item below `n` is a candidate.
    whole: bool,
}

impl Sums {
    /// Makes room for `n_items` (keeps what is there: call [`Sums::reset`] after use), for a
    /// request that will add `adds` entries in all.
    pub fn prepare(&mut self, n_items: usize, adds: usize) {
        if self.sums.len() < n_items {
            self.sums.resize(n_items, 0.0);
            self.touched.resize(n_items + 1, 0);
        }
        self.n = n_items;
        self.whole = adds >= n_items;
    }

    /// Adds every neighbour's similarity.
    pub fn add_neighbours(&mut self, neighbours: &[(u32, f32)]) {
        if self.whole {
            let sums = &mut self.sums[..self.n];
            for &(item, sim) in neighbours {
                debug_assert!(sim > 0.0, "neighbour similarities are positive");
                sums[item as usize] += sim;
            }
            return;
        }
        let (sums, touched) = (&mut self.sums, &mut self.touched);
        let mut len = self.len;
        for &(item, sim) in neighbours {
            debug_assert!(sim > 0.0, "neighbour similarities are positive");
            let sum = &mut sums[item as usize];
            touched[len] = item;
            len += usize::from(*sum == 0.0);
            *sum += sim;
        }
        self.len = len;
    }

    /// Items that received anything, in the order they first did; `None` when the list was not
    /// kept (then any item below `prepare`'s `n_items` may have: see [`Sums::contains`]).
    pub fn touched(&self) -> Option<&[u32]> {
        (!self.whole).then(|| &self.touched[..self.len])
    }

    pub fn sum(&self, item: u32) -> f32 {
        self.sums.get(item as usize).copied().unwrap_or(0.0)
    }

    /// Every item's sum, up to `prepare`'s `n_items`.
    pub fn all(&self) -> &[f32] {
        &self.sums[..self.n]
    }

    /// Every item's sum, to add to directly, when the touched list is not kept (`None`
    /// otherwise): additions must keep a touched item's sum positive and leave the others 0.
    pub fn all_mut(&mut self) -> Option<&mut [f32]> {
        self.whole.then(|| &mut self.sums[..self.n])
    }

    pub fn contains(&self, item: u32) -> bool {
        self.sum(item) > 0.0
    }

    /// The largest sum, in four independent lanes: one running maximum was a chain of dependent
    /// steps over every item. Sums are positive, so the order of taking maxima does not change
    /// the result.
    pub fn max(&self) -> f32 {
        let mut lanes = [0f32; 4];
        let rest = match self.touched() {
            Some(touched) => {
                let (chunks, rest) = touched.as_chunks::<4>();
                for chunk in chunks {
                    for (lane, &i) in lanes.iter_mut().zip(chunk) {
                        *lane = lane.max(self.sums[i as usize]);
                    }
                }
                rest.iter()
                    .map(|&i| self.sums[i as usize])
                    .fold(0.0, f32::max)
            }
            None => {
                // Eight lanes and a plain comparison (sums are never NaN): vector instructions.
                let (chunks, rest) = self.all().as_chunks::<8>();
                let mut wide = [0f32; 8];
                for chunk in chunks {
                    for (lane, &v) in wide.iter_mut().zip(chunk) {
                        *lane = if v > *lane { v } else { *lane };
                    }
                }
                wide.into_iter()
                    .chain(rest.iter().copied())
                    .fold(0.0, f32::max)
            }
        };
        lanes.into_iter().fold(rest, f32::max)
    }

    pub fn reset(&mut self) {
        if self.whole {
            self.sums[..self.n].fill(0.0);
        }
        for &i in &self.touched[..self.len] {
            self.sums[i as usize] = 0.0;
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums, the strongest source (the smaller id on a tie, as a walk in ascending order would
    /// keep the first), the touched order, and a reset that leaves nothing behind.
    #[test]
    fn accumulator_sums_and_keeps_the_strongest_source() {
        let mut acc = Accumulator::default();
        acc.prepare(6);
        acc.add_neighbours(3, &[(1, 0.5), (2, 0.25)]);
        acc.add_neighbours(4, &[(2, 0.75), (5, 0.5), (1, 0.5)]);
        acc.add_neighbours(u32::MAX - 1, &[(5, 0.5), (1, 0.125)]);
        assert_eq!(acc.touched(), [1, 2, 5]);
        assert_eq!((acc.sum(1), acc.sum(2), acc.sum(5)), (1.125, 1.0, 1.0));
        assert_eq!((acc.source(1), acc.source(2), acc.source(5)), (3, 4, 4));
        assert!(!acc.contains(0) && !acc.contains(3) && !acc.contains(99));
        assert_eq!((acc.source(0), acc.sum(99)), (u32::MAX, 0.0));
        assert_eq!(acc.max(), 1.125);
        assert_eq!(acc.top(2, |i| i == 1), [(2, 1.0), (5, 1.0)]);
        acc.reset();
        assert!(acc.touched().is_empty() && !acc.contains(1) && acc.sum(2) == 0.0);
        acc.add_neighbours(7, &[(0, 0.25)]);
        assert_eq!((acc.touched(), acc.source(0)), (&[0][..], 7));
    }

    /// Sums as an [`Accumulator`] adds them, with and without the touched list, and a reset
    /// that leaves nothing.
    #[test]
    fn sums_add_as_the_accumulator_does() {
        let lists: [&[(u32, f32)]; 3] = [
            &[(1, 0.5), (2, 0.25)],
            &[(2, 0.75), (5, 0.5), (1, 0.5)],
            &[(5, 0.5), (1, 0.125), (7, 2.0)],
        ];
        let mut acc = Accumulator::default();
        acc.prepare(8);
        for (source, list) in (0..).zip(lists) {
            acc.add_neighbours(source, list);
        }
        // 8 additions: a list with 9 or more items, none kept with 8 or fewer.
        for (n_items, kept) in [(9, true), (8, false)] {
            let mut sums = Sums::default();
            for _ in 0..2 {
                sums.prepare(n_items, 8);
                for list in lists {
                    sums.add_neighbours(list);
                }
                match sums.touched() {
                    Some(touched) => assert!(kept && touched == acc.touched()),
                    None => assert!(!kept),
                }
                for i in 0..10 {
                    assert_eq!(
                        (sums.sum(i), sums.contains(i)),
                        (acc.sum(i), acc.contains(i))
                    );
                }
                assert_eq!(sums.max(), 2.0);
                sums.reset();
                assert!((0..10).all(|i| !sums.contains(i) && sums.sum(i) == 0.0));
            }
            sums.prepare(n_items, 1);
            sums.add_neighbours(&[(0, 0.25)]);
            assert_eq!((sums.touched(), sums.max()), (Some(&[0][..]), 0.25));
        }
    }
}
