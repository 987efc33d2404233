//! The scheduler's plan as data: for one (layer, direction), which state slot each step
//! reads and writes, over which batch rows, where the initial state goes and where the final
//! state is read. Pure arithmetic, unit-tested without a GPU; `forward.rs` and `backward.rs`
//! walk it and record the dispatches.
//!
//! States are kept in slots of `[B, width]`. By time (training, an LSTM projection, per-row
//! lengths): T+1 slots, the forward direction keeps h0 in slot 0 and h_t in slot t+1, the
//! reverse direction h0 in slot T and h_t in slot t, so `H_prev` of all steps is one
//! contiguous block (slots 0..T forward, 1..T+1 reverse) and `dW_hh` is one GEMM. Otherwise
//! two slots, alternating. With per-row lengths (rows sorted longest first, see
//! [`super::lengths`]) step t runs over the first `active[t]` rows only; a reverse-direction
//! group of rows of length L starts at t = L-1, whose step reads slot L, so its h0 goes there;
//! a forward-direction group ends at t = L-1, whose state is in slot L.

use super::lengths::PackedPlan;

/// A block of batch rows in a state slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowBlock {
    /// The slot (or, for [`BackwardPlan::first_steps`], the time step).
    pub slot: usize,
    /// First row.
    pub row: usize,
    /// Rows.
    pub rows: usize,
}

/// One forward step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardStep {
    /// Time index.
    pub t: usize,
    /// Batch rows it runs over (the first ones).
    pub rows: usize,
    /// Slot of h_{t-1} (h_{t+1} reverse).
    pub prev: usize,
    /// Slot h_t goes to.
    pub out: usize,
}

/// The forward plan of one (layer, direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardPlan {
    /// State slots to allocate.
    pub slots: usize,
    /// Steps in the order they run (steps no row reaches are left out).
    pub steps: Vec<ForwardStep>,
    /// Where the initial state's rows go.
    pub initial: Vec<RowBlock>,
    /// Where the final state's rows are read.
    pub last: Vec<RowBlock>,
}

/// One backward step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardStep {
    /// Time index.
    pub t: usize,
    /// Batch rows it runs over (the first ones).
    pub rows: usize,
    /// Slot of the state the forward step read.
    pub prev: usize,
    /// Slot of the state it wrote.
    pub out: usize,
    /// The step processed just before (t+1 forward, t-1 reverse), whose gate gradient feeds
    /// this step's recurrent product; `None` for the first.
    pub next: Option<usize>,
}

/// The backward plan of one (layer, direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackwardPlan {
    /// Steps in the order they run (the forward steps reversed).
    pub steps: Vec<BackwardStep>,
    /// For `dh0 += dG_h(first step) · W_hh`: each block's first step (in `slot`) and rows.
    pub first_steps: Vec<RowBlock>,
}

fn whole(slot: usize, batch: usize) -> Vec<RowBlock> {
    vec![RowBlock {
        slot,
        row: 0,
        rows: batch,
    }]
}

fn groups(lengths: &PackedPlan, slot_of: impl Fn(usize) -> usize) -> Vec<RowBlock> {
    lengths
        .groups
        .iter()
        .map(|&(len, r0, r1)| RowBlock {
            slot: slot_of(len),
            row: r0,
            rows: r1 - r0,
        })
        .collect()
}

/// The forward plan of a direction over `seq` steps of `batch` rows; `by_time` keeps every
/// state (it must be true with `lengths`).
pub fn forward_plan(
    seq: usize,
    batch: usize,
    reverse: bool,
    by_time: bool,
    lengths: Option<&PackedPlan>,
) -> ForwardPlan {
    let slots = if by_time { seq + 1 } else { 2 };
    let mut steps = Vec::with_capacity(seq);
    for s in 0..seq {
        let t = if reverse { seq - 1 - s } else { s };
        let rows = lengths.map_or(batch, |l| l.active[t]);
        if rows == 0 {
            continue;
        }
        let (prev, out) = match (by_time, reverse) {
            (true, false) => (t, t + 1),
            (true, true) => (t + 1, t),
            (false, _) => (s % 2, (s + 1) % 2),
        };
        steps.push(ForwardStep { t, rows, prev, out });
    }
    let first = if by_time && reverse { seq } else { 0 };
    let initial = match lengths {
        Some(l) if reverse => groups(l, |len| len),
        _ => whole(first, batch),
    };
    let last_out = steps.last().map_or(first, |s| s.out);
    let last = match lengths {
        Some(l) if !reverse => groups(l, |len| len),
        _ => whole(last_out, batch),
    };
    ForwardPlan {
        slots,
        steps,
        initial,
        last,
    }
}

/// The backward plan of a direction whose forward ran with states by time.
pub fn backward_plan(
    seq: usize,
    batch: usize,
    reverse: bool,
    lengths: Option<&PackedPlan>,
) -> BackwardPlan {
    let mut steps = Vec::with_capacity(seq);
    for s in 0..seq {
        let t = if reverse { s } else { seq - 1 - s };
        let rows = lengths.map_or(batch, |l| l.active[t]);
        if rows == 0 {
            continue;
        }
        let (prev, out) = if reverse { (t + 1, t) } else { (t, t + 1) };
        // A skipped step (no row reaches it) left zero gate gradients: reading them is right.
        let next = match (s, reverse) {
            (0, _) => None,
            (_, false) => Some(t + 1),
            (_, true) => Some(t - 1),
        };
        steps.push(BackwardStep {
            t,
            rows,
            prev,
            out,
            next,
        });
    }
    let first_steps = match lengths {
        Some(l) if reverse => groups(l, |len| len - 1),
        _ => whole(if reverse { seq - 1 } else { 0 }, batch),
    };
    BackwardPlan { steps, first_steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_alternates_two_slots_and_reads_the_last() {
        let p = forward_plan(3, 4, false, false, None);
        assert_eq!(p.slots, 2);
        let slots: Vec<(usize, usize, usize)> =
            p.steps.iter().map(|s| (s.t, s.prev, s.out)).collect();
        assert_eq!(slots, vec![(0, 0, 1), (1, 1, 0), (2, 0, 1)]);
        assert_eq!(p.initial, whole(0, 4));
        assert_eq!(p.last, whole(1, 4));
        // Reverse: t runs down, slots alternate the same way.
        let r = forward_plan(3, 4, true, false, None);
        assert_eq!(
            r.steps.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        assert_eq!(r.last, whole(1, 4));
    }

    #[test]
    fn by_time_slots_make_h_prev_one_block() {
        let f = forward_plan(3, 2, false, true, None);
        assert_eq!(f.slots, 4);
        assert!(f.steps.iter().all(|s| s.prev == s.t && s.out == s.t + 1));
        assert_eq!(
            (f.initial.clone(), f.last.clone()),
            (whole(0, 2), whole(3, 2))
        );
        let r = forward_plan(3, 2, true, true, None);
        assert!(r.steps.iter().all(|s| s.prev == s.t + 1 && s.out == s.t));
        assert_eq!(
            (r.initial.clone(), r.last.clone()),
            (whole(3, 2), whole(0, 2))
        );
        let b = backward_plan(3, 2, false, None);
        assert_eq!(
            b.steps.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        assert_eq!(
            b.steps.iter().map(|s| s.next).collect::<Vec<_>>(),
            vec![None, Some(2), Some(1)]
        );
        assert_eq!(b.first_steps, whole(0, 2));
        let rb = backward_plan(3, 2, true, None);
        assert_eq!(
            rb.steps.iter().map(|s| s.next).collect::<Vec<_>>(),
            vec![None, Some(0), Some(1)]
        );
        assert_eq!(rb.first_steps, whole(2, 2));
    }

    #[test]
    fn lengths_run_the_rows_still_going_and_place_states_by_group() {
        // Lengths 5, 4, 2, 2 (sorted), T = 6: step 5 has no row.
        let l = PackedPlan::new(&[2, 5, 2, 4], 6, 4).unwrap();
        let f = forward_plan(6, 4, false, true, Some(&l));
        assert_eq!(
            f.steps.iter().map(|s| (s.t, s.rows)).collect::<Vec<_>>(),
            vec![(0, 4), (1, 4), (2, 2), (3, 2), (4, 1)]
        );
        let block = |slot, row, rows| RowBlock { slot, row, rows };
        assert_eq!(f.initial, whole(0, 4));
        assert_eq!(f.last, vec![block(5, 0, 1), block(4, 1, 1), block(2, 2, 2)]);
        let r = forward_plan(6, 4, true, true, Some(&l));
        assert_eq!(r.steps.first().map(|s| s.t), Some(4));
        assert_eq!(
            r.initial,
            vec![block(5, 0, 1), block(4, 1, 1), block(2, 2, 2)]
        );
        assert_eq!(r.last, whole(0, 4));
        let b = backward_plan(6, 4, false, Some(&l));
        // Step 5 is skipped; step 4 still reads step 5's (zero) gate gradient.
        assert_eq!(b.steps[0].t, 4);
        assert_eq!(b.steps[0].next, Some(5));
        let rb = backward_plan(6, 4, true, Some(&l));
        assert_eq!(
            rb.first_steps,
            vec![block(4, 0, 1), block(3, 1, 1), block(1, 2, 2)]
        );
    }
}
