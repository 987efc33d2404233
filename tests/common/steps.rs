//! The harness of tests/step_kernels.rs and tests/step_kernels_vec4.rs: each fused step
//! kernel, forward and backward, against the f64 reference cells (`recur::reference::cells`),
//! one dispatch at a time or a whole sequence in one, in a kernel family chosen here, not by
//! the adapter, so that every family runs on a software adapter too.
//!
//! Shapes: B in {1, 3, 5, 17} (one row, odd, past one 16-row tile), H in {1, 7, 8, 20} (odd,
//! a vec4 multiple, past one tile); small batch only where B <= 4, vec4 only where H % 4 == 0.
//! Every offset is non-zero (W_hh and b_hh inside a flat buffer of other values, a later time
//! step, state slots out of order, y and dy at the reverse direction's columns, the second
//! carry slot): a kernel that ignores one reads other values.
//!
//! Each output buffer is compared whole: the elements the step writes to the reference
//! (‖gpu − ref‖ / ‖ref‖ < 1e-5 forward, 1e-4 backward), every other element bit for bit
//! unchanged (no write past a row, none into acts without SAVE). Each case then checks that
//! the reference fed a wrong input (no b_hh, a negated h_prev; no carry, no HAS_NEXT product)
//! does not match, so the comparison can fail.
//!
//! The backward kernels leave dh_prev's path through W_hh to the next step (HAS_NEXT) or to a
//! GEMM after the loop: they carry only the rest (the GRU's `dh*z`, zero for RNN and LSTM),
//! which is the reference's `dh_prev` with a zero W_hh.

use recur::kernels::step::{
    self, flags, BackwardBuffers, ForwardBuffers, StepBackParams, StepFamily, StepParams,
    SMALL_BATCH,
};
use recur::kernels::{step_resident, step_vec4};
use recur::reference::cells::{self, StepGrads, StepOut};
use recur::rng::Rng;
use recur::{CellKind, Gpu, Recorder, Tensor};

use crate::common::{assert_close, f64s, gpu, rel_err};

const CELLS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Lstm,
    CellKind::Gru,
];
const BATCHES: [usize; 4] = [1, 3, 5, 17];
const HIDDENS: [usize; 4] = [1, 7, 8, 20];
const FWD_TOL: f64 = 1e-5;
const BWD_TOL: f64 = 1e-4;

/// How [`run_forward`] and [`run_backward`] record their steps (tests/step_kernels.rs uses
/// `Steps` only).
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// One dispatch a step.
    Steps,
    /// The vec4 whole-sequence entry (`step_vec4::encode_sequence_forward`).
    Sequence,
    /// W_hh resident (`step_resident::encode_resident_forward`), the batch split over this
    /// many workgroups.
    Resident(usize),
}

/// One (cell, family, B, H).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub cell: CellKind,
    pub family: StepFamily,
    pub b: usize,
    pub h: usize,
}

impl Shape {
    fn gh(self) -> usize {
        self.cell.gates() * self.h
    }

    fn relu(self) -> bool {
        self.cell == CellKind::RnnRelu
    }

    fn has_acts(self) -> bool {
        matches!(self.cell, CellKind::Lstm | CellKind::Gru)
    }

    /// Other parameters before and after W_hh and b_hh: 4 for vec4 (aligned offsets), else 3
    /// (odd offsets).
    fn gap(self) -> usize {
        3 + usize::from(self.family.is_vec4())
    }

    fn whh_off(self) -> usize {
        self.gap() + 4
    }

    fn bhh_off(self) -> usize {
        self.whh_off() + self.gh() * self.h + self.gap()
    }

    fn params_len(self) -> usize {
        (self.bhh_off() + self.gh() + 5).next_multiple_of(4)
    }

    fn label(self, dir: &str, how: Dispatch) -> String {
        let (cell, f, b, h) = (self.cell.name(), self.family, self.b, self.h);
        let whole = match how {
            Dispatch::Steps => "",
            Dispatch::Sequence => " whole sequence",
            Dispatch::Resident(_) => " resident",
        };
        format!("{cell} {dir} {f:?} B={b} H={h}{whole}")
    }
}

/// Whether `family` runs (B, H): small batch needs B <= 4, vec4 H % 4 == 0.
fn runs(family: StepFamily, b: usize, h: usize) -> bool {
    match family {
        StepFamily::SmallBatch => b <= SMALL_BATCH,
        StepFamily::Vec4 { .. } => h.is_multiple_of(4),
        _ => true,
    }
}

pub fn shapes(family: StepFamily) -> impl Iterator<Item = Shape> {
    CELLS.into_iter().flat_map(move |cell| {
        BATCHES.into_iter().flat_map(move |b| {
            HIDDENS
                .into_iter()
                .filter(move |&h| runs(family, b, h))
                .map(move |h| Shape { cell, family, b, h })
        })
    })
}

/// A buffer the kernel may write: its contents before the dispatch, the f64 mirror the
/// reference fills in, and which elements the reference wrote.
#[derive(Clone)]
struct Mirror {
    name: &'static str,
    before: Vec<f32>,
    want: Vec<f64>,
    written: Vec<bool>,
}

impl Mirror {
    fn new(name: &'static str, before: &[f32]) -> Self {
        Mirror {
            name,
            before: before.to_vec(),
            want: f64s(before),
            written: vec![false; before.len()],
        }
    }

    fn get(&self, off: usize, len: usize) -> Vec<f64> {
        self.want[off..off + len].to_vec()
    }

    /// Rows of `width` values at `off`, `stride` apart.
    fn set_rows(&mut self, off: usize, stride: usize, width: usize, vals: &[f64]) {
        for (r, row) in vals.chunks(width).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                self.want[off + r * stride + j] = v;
                self.written[off + r * stride + j] = true;
            }
        }
    }

    /// The written elements of `got` beside their expected values.
    fn split(&self, got: &[f32]) -> (Vec<f32>, Vec<f64>) {
        (0..got.len())
            .filter(|&i| self.written[i])
            .map(|i| (got[i], self.want[i]))
            .unzip()
    }

    fn check(&self, what: &str, got: &[f32], tol: f64) {
        let (g, w) = self.split(got);
        if !w.is_empty() {
            assert_close(&format!("{what}: {}", self.name), &g, &w, tol);
        }
        for (i, (g, b)) in got.iter().zip(&self.before).enumerate() {
            assert!(
                self.written[i] || g.to_bits() == b.to_bits(),
                "{what}: {}[{i}] is not an output but changed from {b} to {g}",
                self.name
            );
        }
    }

    /// Asserts `got` does not match this (wrong) reference.
    fn check_differs(&self, what: &str, got: &[f32], tol: f64) {
        let (g, w) = self.split(got);
        let err = rel_err(&g, &w);
        assert!(
            err > tol,
            "{what}: {} also matches the reference fed a wrong input (error {err:.2e}): \
             the comparison cannot fail",
            self.name
        );
    }
}

fn u(x: usize) -> u32 {
    u32::try_from(x).unwrap()
}

fn upload(gpu: &Gpu, label: &str, data: &[f32]) -> Tensor {
    gpu.tensor(label, &[data.len()], data).unwrap()
}

fn reference_forward(
    s: Shape,
    gx: &[f64],
    h_prev: &[f64],
    c_prev: &[f64],
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
) -> StepOut {
    let (b, h) = (s.b, s.h);
    match s.cell {
        CellKind::RnnTanh | CellKind::RnnRelu => {
            cells::rnn_step_forward(s.relu(), gx, h_prev, w_hh, b_hh, b, h)
        }
        CellKind::Lstm => cells::lstm_step_forward(gx, h_prev, c_prev, w_hh, b_hh, b, h),
        CellKind::Gru => cells::gru_step_forward(gx, h_prev, w_hh, b_hh, b, h),
    }
}

/// A step: time step t, h_prev/c_prev in state slot `prev`, h_t/c_t in slot `out` (forward
/// writes it, backward reads it); backward only, `next` is the time step processed before
/// (HAS_NEXT), whose gate gradient it takes.
#[derive(Clone, Copy)]
pub struct Step {
    t: usize,
    prev: usize,
    out: usize,
    next: Option<usize>,
}

pub const fn step(t: usize, prev: usize, out: usize, next: Option<usize>) -> Step {
    Step { t, prev, out, next }
}

/// The f16 words of `params` (two a word, low half first, round to nearest even), as the f32
/// bit patterns a tensor upload takes, and the values they hold.
fn packed_f16(params: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let rounded: Vec<f32> = params
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    let words: Vec<u32> = params
        .chunks(2)
        .map(|c| {
            let lo = half::f16::from_f32(c[0]).to_bits() as u32;
            let hi = c
                .get(1)
                .map_or(0, |&v| half::f16::from_f32(v).to_bits() as u32);
            lo | hi << 16
        })
        .collect();
    (bytemuck::cast_slice(&words).to_vec(), rounded)
}

/// Runs `steps` forward over T = `seq` time steps and `slots` state slots: one dispatch a step,
/// or all of them in one (`how`: the vec4 sequence entry or the resident kernel); checks hs,
/// cs, y and acts. With
/// `f16`, the kernels' f16-weight build reads the parameters packed as f16, and the reference
/// takes the same rounded values.
#[allow(clippy::too_many_arguments)]
pub fn run_forward(
    gpu: &Gpu,
    s: Shape,
    (bias, save): (bool, bool),
    f16: bool,
    (seq, slots): (usize, usize),
    steps: &[Step],
    how: Dispatch,
    seed: u64,
) {
    let (b, h, gh) = (s.b, s.h, s.gh());
    let what = format!(
        "{} bias={bias} save={save} f16={f16} {how:?}",
        s.label("forward", how)
    );
    let mut rng = Rng::new(seed);
    let mut params = rng.vec_uniform_f32(s.params_len(), -0.4, 0.4);
    let words = if f16 {
        let (words, rounded) = packed_f16(&params);
        params = rounded;
        words
    } else {
        params.clone()
    };
    // relu: mostly positive pre-activations, so that h is not all zero.
    let lo = if s.relu() { 0.8 } else { -1.0 };
    let gx = rng.vec_uniform_f32(seq * b * gh, lo, 1.5);
    let hs0 = rng.vec_uniform_f32(slots * b * h, -1.0, 1.0);
    let cs0 = rng.vec_uniform_f32(slots * b * h, -1.0, 1.0);
    let y0 = rng.vec_uniform_f32(seq * b * 2 * h, -1.0, 1.0);
    let acts0 = rng.vec_uniform_f32(seq * b * 4 * h, -1.0, 1.0);
    let (tp, tgx) = (upload(gpu, "params", &words), upload(gpu, "gx", &gx));
    let (ths, tcs) = (upload(gpu, "hs", &hs0), upload(gpu, "cs", &cs0));
    let (ty, tacts) = (upload(gpu, "y", &y0), upload(gpu, "acts", &acts0));
    let lstm = s.cell == CellKind::Lstm;
    let bufs = ForwardBuffers {
        params: &tp.buffer,
        f16_weights: f16,
        gx: &tgx.buffer,
        hs: &ths.buffer,
        cs: lstm.then_some(&tcs.buffer),
        y: &ty.buffer,
        acts: s.has_acts().then_some(&tacts.buffer),
    };
    let fl = if save { flags::SAVE } else { 0 }
        | if bias { flags::HAS_BIAS } else { 0 }
        | if s.relu() { flags::RELU } else { 0 };
    let ps: Vec<StepParams> = steps
        .iter()
        .map(|st| StepParams {
            batch: u(b),
            hidden: u(h),
            gx_off: u(st.t * b * gh),
            hprev_off: u(st.prev * b * h),
            hout_off: u(st.out * b * h),
            cprev_off: u(st.prev * b * h),
            cout_off: u(st.out * b * h),
            // The reverse direction's columns of y [T, B, 2H].
            y_off: u(st.t * b * 2 * h + h),
            y_stride: u(2 * h),
            act_off: u(st.t * b * 4 * h),
            whh_off: u(s.whh_off()),
            bhh_off: u(s.bhh_off()),
            flags: fl,
            state: u(h),
            _pad: [0; 2],
        })
        .collect();
    let table = upload(gpu, "steps", step_vec4::steps_table(&ps));
    let mut rec = Recorder::new(gpu);
    match how {
        Dispatch::Sequence => {
            step_vec4::encode_sequence_forward(&mut rec, s.cell, s.family, &bufs, &ps, &table)
                .unwrap()
        }
        Dispatch::Resident(groups) => {
            step_resident::encode_resident_forward(&mut rec, s.cell, &bufs, &ps, &table, groups)
                .unwrap()
        }
        Dispatch::Steps => {
            let bind = step::bind_step_forward(&mut rec, s.cell, s.family, &bufs).unwrap();
            for p in &ps {
                step::encode_step_forward(&mut rec, bind, s.family, p).unwrap();
            }
        }
    }
    rec.run().unwrap();
    let got: Vec<Vec<f32>> = [&ths, &tcs, &ty, &tacts]
        .iter()
        .map(|t| gpu.read(t).unwrap())
        .collect();

    // The reference, or (`wrong`) the reference without b_hh, or with a negated h_prev.
    let simulate = |wrong: bool| {
        let mut m = [
            Mirror::new("hs", &hs0),
            Mirror::new("cs", &cs0),
            Mirror::new("y", &y0),
            Mirror::new("acts", &acts0),
        ];
        let w = f64s(&params[s.whh_off()..s.whh_off() + gh * h]);
        let bv = f64s(&params[s.bhh_off()..s.bhh_off() + gh]);
        for st in steps {
            let x = f64s(&gx[st.t * b * gh..(st.t + 1) * b * gh]);
            let mut hp = m[0].get(st.prev * b * h, b * h);
            if wrong && !bias {
                hp.iter_mut().for_each(|v| *v = -*v);
            }
            let cp = m[1].get(st.prev * b * h, b * h);
            let o = reference_forward(s, &x, &hp, &cp, &w, (bias && !wrong).then_some(&bv));
            m[0].set_rows(st.out * b * h, h, h, &o.h);
            if let Some(c) = &o.c {
                m[1].set_rows(st.out * b * h, h, h, c);
            }
            m[2].set_rows(st.t * b * 2 * h + h, 2 * h, h, &o.h);
            if save && s.has_acts() {
                m[3].set_rows(st.t * b * 4 * h, 4 * h, 4 * h, &o.gates);
            }
        }
        m
    };
    let want = simulate(false);
    let bound = [true, lstm, true, s.has_acts()];
    // Without SAVE, acts has no outputs: every element must stay as it was.
    for ((m, g), bound) in want.iter().zip(&got).zip(bound) {
        if bound {
            m.check(&what, g, FWD_TOL);
        }
    }
    simulate(true)[0].check_differs(&what, &got[0], FWD_TOL);
}

fn reference_backward(
    s: Shape,
    st: Step,
    (acts, hs, cs): (&[f32], &[f32], &[f32]),
    dh: &[f64],
    dc: &[f64],
) -> StepGrads {
    let (b, h) = (s.b, s.h);
    let zero = vec![0.0; s.gh() * h];
    let gates = f64s(&acts[st.t * b * 4 * h..(st.t + 1) * b * 4 * h]);
    let slot = |v: &[f32], i: usize| f64s(&v[i * b * h..(i + 1) * b * h]);
    match s.cell {
        CellKind::RnnTanh | CellKind::RnnRelu => {
            // The kernel reads h_t; the reference takes the pre-activation: atanh(h), or h
            // itself for relu (relu'(0) = 0 either way).
            let mut pre = slot(hs, st.out);
            if !s.relu() {
                pre.iter_mut().for_each(|v| *v = v.atanh());
            }
            cells::rnn_step_backward(s.relu(), &pre, &zero, dh, b, h)
        }
        CellKind::Lstm => cells::lstm_step_backward(
            &gates,
            &slot(cs, st.prev),
            &slot(cs, st.out),
            &zero,
            dh,
            dc,
            b,
            h,
        ),
        CellKind::Gru => cells::gru_step_backward(&gates, &slot(hs, st.prev), &zero, dh, b, h),
    }
}

/// Runs `steps` backward (in that order) over T = `seq` and `slots` state slots, one dispatch
/// a step or all in one (`how`); checks dg_x, dg_h (GRU), carry_h and carry_c (LSTM).
pub fn run_backward(
    gpu: &Gpu,
    s: Shape,
    (seq, slots): (usize, usize),
    steps: &[Step],
    how: Dispatch,
    seed: u64,
) {
    let (b, h, gh) = (s.b, s.h, s.gh());
    let has_next: Vec<bool> = steps.iter().map(|st| st.next.is_some()).collect();
    let what = format!("{} HAS_NEXT={has_next:?}", s.label("backward", how));
    let mut rng = Rng::new(seed);
    let params = rng.vec_uniform_f32(s.params_len(), -0.4, 0.4);
    let dy = rng.vec_uniform_f32(seq * b * 2 * h, -1.0, 1.0);
    // Gates in (0, 1) fit every block (sigmoids, tanh, the GRU's gh_n); h_t in tanh's range,
    // or relu's with every third element zero.
    let acts = rng.vec_uniform_f32(seq * b * 4 * h, 0.05, 0.95);
    let mut hs = rng.vec_uniform_f32(slots * b * h, -0.95, 0.95);
    if s.relu() {
        for (i, v) in hs.iter_mut().enumerate() {
            *v = if i % 3 == 2 { 0.0 } else { v.abs() + 0.05 };
        }
    }
    let cs = rng.vec_uniform_f32(slots * b * h, -1.0, 1.0);
    let dgx0 = rng.vec_uniform_f32(seq * b * gh, -1.0, 1.0);
    let dgh0 = rng.vec_uniform_f32(seq * b * gh, -1.0, 1.0);
    let carry_h0 = rng.vec_uniform_f32(2 * b * h, -1.0, 1.0);
    let carry_c0 = rng.vec_uniform_f32(2 * b * h, -1.0, 1.0);
    let (tp, tdy) = (upload(gpu, "params", &params), upload(gpu, "dy", &dy));
    let (tacts, ths, tcs) = (
        upload(gpu, "acts", &acts),
        upload(gpu, "hs", &hs),
        upload(gpu, "cs", &cs),
    );
    let (tdgx, tdgh) = (upload(gpu, "dgx", &dgx0), upload(gpu, "dgh", &dgh0));
    let (tch, tcc) = (
        upload(gpu, "carry_h", &carry_h0),
        upload(gpu, "carry_c", &carry_c0),
    );
    let (lstm, gru) = (s.cell == CellKind::Lstm, s.cell == CellKind::Gru);
    let bufs = BackwardBuffers {
        params: &tp.buffer,
        dy: &tdy.buffer,
        acts: s.has_acts().then_some(&tacts.buffer),
        hs: &ths.buffer,
        cs: lstm.then_some(&tcs.buffer),
        dgx: &tdgx.buffer,
        dgh: gru.then_some(&tdgh.buffer),
        carry_h: &tch.buffer,
        carry_c: lstm.then_some(&tcc.buffer),
    };
    let carry_off = b * h;
    let ps: Vec<StepBackParams> = steps
        .iter()
        .map(|st| StepBackParams {
            batch: u(b),
            hidden: u(h),
            dy_off: u(st.t * b * 2 * h + h),
            dy_stride: u(2 * h),
            dg_off: u(st.t * b * gh),
            dgn_off: u(st.next.unwrap_or(0) * b * gh),
            act_off: u(st.t * b * 4 * h),
            hprev_off: u(st.prev * b * h),
            hout_off: u(st.out * b * h),
            cprev_off: u(st.prev * b * h),
            cout_off: u(st.out * b * h),
            whh_off: u(s.whh_off()),
            carry_off: u(carry_off),
            flags: if st.next.is_some() {
                flags::HAS_NEXT
            } else {
                0
            } | if s.relu() { flags::RELU } else { 0 },
            grows: u(h),
            _pad: 0,
        })
        .collect();
    let table = upload(gpu, "steps", step_vec4::steps_table(&ps));
    let mut rec = Recorder::new(gpu);
    match how {
        Dispatch::Sequence => {
            step_vec4::encode_sequence_backward(&mut rec, s.cell, s.family, &bufs, &ps, &table)
                .unwrap()
        }
        Dispatch::Resident(groups) => {
            step_resident::encode_resident_backward(&mut rec, s.cell, &bufs, &ps, &table, groups)
                .unwrap()
        }
        Dispatch::Steps => {
            let bind = step::bind_step_backward(&mut rec, s.cell, s.family, &bufs).unwrap();
            for p in &ps {
                step::encode_step_backward(&mut rec, bind, s.family, p).unwrap();
            }
        }
    }
    rec.run().unwrap();
    let got: Vec<Vec<f32>> = [&tdgx, &tdgh, &tch, &tcc]
        .iter()
        .map(|t| gpu.read(t).unwrap())
        .collect();

    // The reference, or (`wrong`) the reference without the HAS_NEXT product (a step with
    // HAS_NEXT) or without the carry (one without).
    let simulate = |wrong: bool| {
        let mut m = [
            Mirror::new("dg_x", &dgx0),
            Mirror::new("dg_h", &dgh0),
            Mirror::new("carry_h", &carry_h0),
            Mirror::new("carry_c", &carry_c0),
        ];
        let w = f64s(&params[s.whh_off()..s.whh_off() + gh * h]);
        for &st in steps {
            // dh = dy[t] + carry_h + dg_next · W_hh (HAS_NEXT)
            let mut dh = m[2].get(carry_off, b * h);
            if wrong && st.next.is_none() {
                dh.iter_mut().for_each(|v| *v = 0.0);
            }
            for r in 0..b {
                for k in 0..h {
                    dh[r * h + k] += f64::from(dy[st.t * b * 2 * h + r * 2 * h + h + k]);
                }
            }
            if let (Some(n), false) = (st.next, wrong) {
                let dgn = m[if gru { 1 } else { 0 }].get(n * b * gh, b * gh);
                for r in 0..b {
                    for k in 0..h {
                        dh[r * h + k] +=
                            (0..gh).map(|g| dgn[r * gh + g] * w[g * h + k]).sum::<f64>();
                    }
                }
            }
            let dc = m[3].get(carry_off, b * h);
            let g = reference_backward(s, st, (&acts, &hs, &cs), &dh, &dc);
            m[0].set_rows(st.t * b * gh, gh, gh, &g.dgx);
            if gru {
                m[1].set_rows(st.t * b * gh, gh, gh, &g.dgh);
            }
            m[2].set_rows(carry_off, h, h, &g.dh_prev);
            if let Some(dc) = &g.dc_prev {
                m[3].set_rows(carry_off, h, h, dc);
            }
        }
        m
    };
    let want = simulate(false);
    let bound = [true, gru, true, lstm];
    for ((m, g), bound) in want.iter().zip(&got).zip(bound) {
        if bound {
            m.check(&what, g, BWD_TOL);
        }
    }
    simulate(true)[0].check_differs(&what, &got[0], BWD_TOL);
}

/// Every single-step case of `family`: forward with and without b_hh and SAVE, backward as
/// the first step (no HAS_NEXT) and a later one.
pub fn single_steps(family: StepFamily) {
    let Some(gpu) = gpu() else { return };
    single_steps_on(&gpu, family);
}

pub fn single_steps_on(gpu: &Gpu, family: StepFamily) {
    let mut seed = 0;
    for s in shapes(family) {
        // T = 2, slots 3: step t = 1 reads slot 2 and writes slot 1.
        let fwd = [step(1, 2, 1, None)];
        for flags in [(false, false), (true, false), (false, true), (true, true)] {
            seed += 1;
            run_forward(gpu, s, flags, false, (2, 3), &fwd, Dispatch::Steps, seed);
        }
        // T = 3: step t = 1 after t = 2 (its gate gradient at dgn_off), slots as forward.
        for next in [None, Some(2)] {
            seed += 1;
            run_backward(
                gpu,
                s,
                (3, 3),
                &[step(1, 2, 1, next)],
                Dispatch::Steps,
                seed,
            );
        }
    }
}
