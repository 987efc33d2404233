//! The general ONNX step kernel (`shaders/step_onnx.wgsl`) against the f64 reference
//! (`recur::reference::variant`), one step at a time (one dispatch; two for the GRU's
//! reset-before step): every activation function in every slot it fills, with non-default
//! alpha and beta, `clip`, LSTM peepholes and `input_forget`, GRU `linear_before_reset` 0 and
//! 1, with and without b_hh.
//!
//! Shapes: B in {1, 3, 17}, H in {1, 7, 20} (odd sizes, not multiples of the 64-invocation
//! workgroup; 17 x 20 = 340 invocations span several workgroups). Offsets are all non-zero:
//! W_hh, b_hh and the peepholes sit inside larger buffers, gx is a later time step, h_prev and
//! h_t are different state slots out of order, y is the reverse direction's columns. Each
//! written buffer is compared where the reference writes (‖gpu − ref‖/‖ref‖ < 1e-5) and bit
//! for bit elsewhere; each case also checks that the reference with the default cell (no
//! variant) does not match, so the comparison can fail.

mod common;

use common::{assert_close, f64s, gpu, rel_err};
use recur::kernels::step_onnx::{
    self, cell, flags, Activation, ActivationKind as A, OnnxBuffers, OnnxStepParams,
};
use recur::reference::matmul;
use recur::reference::variant::{general_step_forward, GeneralCell};
use recur::rng::Rng;
use recur::rnn::{CellVariant, ParamKind};
use recur::{CellKind, Error, Gpu, ParamLayout, Recorder, Rnn, RnnConfig, Tensor};

const TOL: f64 = 1e-5;
const SHAPES: [(usize, usize); 4] = [(1, 1), (3, 7), (17, 20), (2, 20)];

/// One cell configuration.
#[derive(Clone, Copy, Debug)]
struct Case {
    cell: CellKind,
    acts: [Activation; 3],
    clip: Option<f32>,
    input_forget: bool,
    reset_before: bool,
    peephole: bool,
    bias: bool,
}

fn act(kind: A, alpha: f32, beta: f32) -> Activation {
    Activation { kind, alpha, beta }
}

fn plain(cell: CellKind) -> [Activation; 3] {
    let p = Activation::plain;
    match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => [p(A::Tanh), p(A::Tanh), p(A::Tanh)],
        _ => [p(A::Sigmoid), p(A::Tanh), p(A::Tanh)],
    }
}

fn case(cell: CellKind) -> Case {
    Case {
        cell,
        acts: plain(cell),
        clip: None,
        input_forget: false,
        reset_before: false,
        peephole: false,
        bias: true,
    }
}

/// Every activation with parameters that matter (alpha, beta away from their defaults).
fn every_activation() -> Vec<Activation> {
    A::ALL
        .into_iter()
        .map(|k| match k {
            A::ThresholdedRelu => act(k, 0.15, 0.0),
            A::HardSigmoid => act(k, 0.3, 0.45),
            _ => act(k, 0.7, 1.3),
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Every activation in every slot of each cell.
    for a in every_activation() {
        v.push(Case {
            acts: [a, a, a],
            ..case(CellKind::RnnTanh)
        });
        for slot in 0..3 {
            let mut lstm = case(CellKind::Lstm);
            lstm.acts[slot] = a;
            v.push(lstm);
            if slot < 2 {
                let mut gru = case(CellKind::Gru);
                gru.acts[slot] = a;
                gru.reset_before = slot == 0;
                v.push(gru);
            }
        }
    }
    let lstm = case(CellKind::Lstm);
    let gru = case(CellKind::Gru);
    v.extend([
        Case {
            clip: Some(0.4),
            ..case(CellKind::RnnTanh)
        },
        Case {
            peephole: true,
            ..lstm
        },
        Case {
            peephole: true,
            clip: Some(0.5),
            bias: false,
            ..lstm
        },
        Case {
            input_forget: true,
            ..lstm
        },
        Case {
            input_forget: true,
            peephole: true,
            clip: Some(0.6),
            ..lstm
        },
        Case {
            reset_before: true,
            ..gru
        },
        Case {
            reset_before: true,
            bias: false,
            ..gru
        },
        Case {
            reset_before: true,
            clip: Some(0.3),
            ..gru
        },
        Case {
            clip: Some(0.3),
            ..gru
        },
    ]);
    v
}

fn upload(gpu: &Gpu, label: &str, data: &[f32]) -> Tensor {
    gpu.tensor(label, &[data.len()], data).unwrap()
}

fn u(x: usize) -> u32 {
    u32::try_from(x).unwrap()
}

/// `want` where `written`, `before` elsewhere.
fn check(what: &str, got: &[f32], before: &[f32], want: &[f64], written: &[bool]) {
    let (g, w): (Vec<f32>, Vec<f64>) = (0..got.len())
        .filter(|&i| written[i])
        .map(|i| (got[i], want[i]))
        .unzip();
    assert_close(what, &g, &w, TOL);
    for i in 0..got.len() {
        assert!(
            written[i] || got[i].to_bits() == before[i].to_bits(),
            "{what}[{i}] is not an output but changed from {} to {}",
            before[i],
            got[i]
        );
    }
}

fn run_case(gpu: &Gpu, c: Case, (b, h): (usize, usize), seed: u64) {
    let what = format!("{c:?} B={b} H={h}");
    let g = c.cell.gates();
    let gh = g * h;
    let mut rng = Rng::new(seed);
    // params: 5 others, W_hh [G*H, H], 3 others, b_hh [G*H], 2 others.
    let (whh_off, bhh_off) = (5, 5 + gh * h + 3);
    let params = rng.vec_uniform_f32(bhh_off + gh + 2, -0.5, 0.5);
    // gx [T=3, B, G*H], step t = 1; hs/cs 3 slots, prev = 2, out = 0; y [T, B, 2H].
    let (t, prev, out, seq, slots) = (1, 2, 0, 3, 3);
    let gx = rng.vec_uniform_f32(seq * b * gh, -1.5, 1.5);
    let hs0 = rng.vec_uniform_f32(slots * b * h, -1.0, 1.0);
    let cs0 = rng.vec_uniform_f32(slots * b * h, -1.5, 1.5);
    let y0 = rng.vec_uniform_f32(seq * b * 2 * h, -1.0, 1.0);
    let rh0 = rng.vec_uniform_f32(b * h, -1.0, 1.0);
    // Peepholes of two (layer, direction)s; this one is the second.
    let peep = rng.vec_uniform_f32(2 * 3 * h, -0.8, 0.8);
    let tensors: Vec<Tensor> = [
        ("params", &params),
        ("gx", &gx),
        ("hs", &hs0),
        ("cs", &cs0),
        ("y", &y0),
        ("rh", &rh0),
        ("peep", &peep),
    ]
    .iter()
    .map(|(l, d)| upload(gpu, l, d))
    .collect();
    let bufs = OnnxBuffers {
        params: &tensors[0].buffer,
        gx: &tensors[1].buffer,
        hs: &tensors[2].buffer,
        cs: &tensors[3].buffer,
        y: &tensors[4].buffer,
        rh: &tensors[5].buffer,
        peep: &tensors[6].buffer,
    };
    let fl = |on: bool, bit: u32| if on { bit } else { 0 };
    let p = OnnxStepParams {
        batch: u(b),
        hidden: u(h),
        gx_off: u(t * b * gh),
        hprev_off: u(prev * b * h),
        hout_off: u(out * b * h),
        cprev_off: u(prev * b * h),
        cout_off: u(out * b * h),
        y_off: u(t * b * 2 * h + h),
        y_stride: u(2 * h),
        whh_off: u(whh_off),
        bhh_off: u(bhh_off),
        peep_off: u(3 * h),
        cell: match c.cell {
            CellKind::Lstm => cell::LSTM,
            CellKind::Gru => cell::GRU,
            _ => cell::RNN,
        },
        flags: fl(c.bias, flags::HAS_BIAS)
            | fl(c.clip.is_some(), flags::CLIP)
            | fl(c.peephole, flags::PEEPHOLE)
            | fl(c.input_forget, flags::INPUT_FORGET)
            | fl(c.reset_before, flags::RESET_BEFORE),
        clip: c.clip.unwrap_or(0.0),
        ..Default::default()
    }
    .with_activations(&c.acts);
    let mut rec = Recorder::new(gpu);
    if c.reset_before {
        let bind = step_onnx::bind(&mut rec, &step_onnx::GRU_RESET_FORWARD, &bufs).unwrap();
        step_onnx::encode_gru_reset_forward(&mut rec, bind, &p).unwrap();
    }
    let bind = step_onnx::bind(&mut rec, &step_onnx::STEP_FORWARD, &bufs).unwrap();
    step_onnx::encode_step_forward(&mut rec, bind, &p).unwrap();
    rec.run().unwrap();
    let got: Vec<Vec<f32>> = tensors[2..5].iter().map(|t| gpu.read(t).unwrap()).collect();

    let lstm = c.cell == CellKind::Lstm;
    let peep64 = f64s(&peep[3 * h..6 * h]);
    let reference = |cell: &GeneralCell| {
        general_step_forward(
            cell,
            &f64s(&gx[t * b * gh..(t + 1) * b * gh]),
            &f64s(&hs0[prev * b * h..(prev + 1) * b * h]),
            lstm.then(|| f64s(&cs0[prev * b * h..(prev + 1) * b * h]))
                .as_deref(),
            &f64s(&params[whh_off..whh_off + gh * h]),
            c.bias
                .then(|| f64s(&params[bhh_off..bhh_off + gh]))
                .as_deref(),
            b,
            h,
        )
    };
    let cell = GeneralCell {
        cell: c.cell,
        activations: c.acts,
        clip: c.clip.map(f64::from),
        input_forget: c.input_forget,
        reset_before: c.reset_before,
        peepholes: c.peephole.then_some(&peep64[..]),
    };
    let (hw, cw) = reference(&cell);
    // hs: slot `out` written; cs likewise for the LSTM; y: rows of the reverse columns.
    let mut hs_want = f64s(&hs0);
    let mut hs_written = vec![false; hs0.len()];
    hs_want[out * b * h..(out + 1) * b * h].copy_from_slice(&hw);
    hs_written[out * b * h..(out + 1) * b * h].fill(true);
    check(&format!("{what}: hs"), &got[0], &hs0, &hs_want, &hs_written);
    let mut cs_want = f64s(&cs0);
    let mut cs_written = vec![false; cs0.len()];
    if let Some(cw) = &cw {
        cs_want[out * b * h..(out + 1) * b * h].copy_from_slice(cw);
        cs_written[out * b * h..(out + 1) * b * h].fill(true);
    }
    check(&format!("{what}: cs"), &got[1], &cs0, &cs_want, &cs_written);
    let mut y_want = f64s(&y0);
    let mut y_written = vec![false; y0.len()];
    for r in 0..b {
        let at = t * b * 2 * h + r * 2 * h + h;
        y_want[at..at + h].copy_from_slice(&hw[r * h..(r + 1) * h]);
        y_written[at..at + h].fill(true);
    }
    check(&format!("{what}: y"), &got[2], &y0, &y_want, &y_written);

    // The default cell gives other values (where the case is not the default): the
    // comparison above can fail.
    let default = GeneralCell {
        cell: c.cell,
        activations: plain(c.cell),
        clip: None,
        input_forget: false,
        reset_before: false,
        peepholes: None,
    };
    let is_default = c.acts.map(|a| a.kind) == plain(c.cell).map(|a| a.kind)
        && c.clip.is_none()
        && !c.input_forget
        && !c.reset_before
        && !c.peephole;
    // With one unit, W_hn (r h) = r (W_hn h): the reset-before GRU without b_hn is the default.
    if is_default || h == 1 {
        return;
    }
    let (hd, _) = reference(&default);
    let err = rel_err(&got[0][out * b * h..(out + 1) * b * h], &hd);
    assert!(
        err > TOL,
        "{what}: also matches the default cell (error {err:.2e})"
    );
}

#[test]
fn onnx_steps_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let all = cases();
    for (k, c) in all.iter().enumerate() {
        for (s, &shape) in SHAPES.iter().enumerate() {
            run_case(&gpu, *c, shape, (k * 10 + s) as u64 + 1);
        }
    }
}

/// The stack of `cfg` with `variant` on the reference, one row at a time (batch 1, over the
/// row's own `lens[r]` steps; the reverse direction starts at its last one), zero states in:
/// `y` `[T, B, D*H]` (zero past a row's length), `hn`, `cn` `[L*D, B, H]`.
fn reference_stack(
    cfg: &RnnConfig,
    variant: &CellVariant,
    flat: &[f32],
    x: &[f32],
    (seq, batch): (usize, usize),
    lens: &[usize],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let layout = ParamLayout::new(cfg);
    let (h, d_n, l_n) = (cfg.hidden_size, cfg.num_directions(), cfg.num_layers);
    let gh = cfg.gate_rows();
    let mut y = vec![0.0; seq * batch * d_n * h];
    let mut hn = vec![0.0; l_n * d_n * batch * h];
    let mut cn = hn.clone();
    let peep = variant.peepholes.as_ref().map(|p| f64s(p));
    let get = |l, d, k| layout.find(l, d, k).map(|e| f64s(&flat[e.range()]));
    for (r, &len) in lens.iter().enumerate() {
        // This row's layer input, [len, in].
        let mut input: Vec<f64> = (0..len)
            .flat_map(|t| {
                let at = (t * batch + r) * cfg.input_size;
                f64s(&x[at..at + cfg.input_size])
            })
            .collect();
        for l in 0..l_n {
            let in_w = cfg.layer_input_size(l);
            let mut out = vec![0.0; len * d_n * h];
            for d in 0..d_n {
                let w_ih = get(l, d, ParamKind::WeightIh).unwrap();
                let b_ih = get(l, d, ParamKind::BiasIh);
                let w_hh = get(l, d, ParamKind::WeightHh).unwrap();
                let b_hh = get(l, d, ParamKind::BiasHh);
                let gx = matmul(&input, &w_ih, len, gh, in_w, false, true, b_ih.as_deref());
                let p = peep
                    .as_ref()
                    .map(|p| &p[(l * d_n + d) * 3 * h..(l * d_n + d + 1) * 3 * h]);
                let cell = GeneralCell {
                    cell: cfg.cell,
                    activations: variant.activations[d.min(variant.activations.len() - 1)],
                    clip: variant.clip.map(f64::from),
                    input_forget: variant.input_forget,
                    reset_before: variant.reset_before,
                    peepholes: p,
                };
                let (mut hp, mut cp) = (vec![0.0; h], vec![0.0; h]);
                for s in 0..len {
                    let t = if d == 1 { len - 1 - s } else { s };
                    let lstm = cfg.cell == CellKind::Lstm;
                    let (hv, cv) = general_step_forward(
                        &cell,
                        &gx[t * gh..(t + 1) * gh],
                        &hp,
                        lstm.then_some(&cp[..]),
                        &w_hh,
                        b_hh.as_deref(),
                        1,
                        h,
                    );
                    out[(t * d_n + d) * h..(t * d_n + d + 1) * h].copy_from_slice(&hv);
                    hp = hv;
                    if let Some(cv) = cv {
                        cp = cv;
                    }
                }
                let at = ((l * d_n + d) * batch + r) * h;
                hn[at..at + h].copy_from_slice(&hp);
                cn[at..at + h].copy_from_slice(&cp);
            }
            input = out;
        }
        for t in 0..len {
            let at = (t * batch + r) * d_n * h;
            y[at..at + d_n * h].copy_from_slice(&input[t * d_n * h..(t + 1) * d_n * h]);
        }
    }
    (y, hn, cn)
}

/// Whole stacks with a variant (2 layers, bidirectional, per-direction activations, per-row
/// lengths) against [`reference_stack`]: the plan around the general step (input GEMM, state
/// slots, directions, layers, packed rows, peephole offsets per (layer, direction)).
#[test]
fn variant_stacks_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let (seq, batch, input, h) = (5, 3, 3, 6);
    let lstm_variant = |peep: Vec<f32>| CellVariant {
        activations: vec![
            [
                act(A::HardSigmoid, 0.3, 0.45),
                act(A::Softsign, 0.0, 0.0),
                act(A::Elu, 0.7, 0.0),
            ],
            [
                Activation::plain(A::Sigmoid),
                act(A::ScaledTanh, 0.9, 1.2),
                Activation::plain(A::Tanh),
            ],
        ],
        clip: Some(0.8),
        input_forget: false,
        reset_before: false,
        peepholes: Some(peep),
    };
    let gru_variant = CellVariant {
        reset_before: true,
        ..CellVariant::plain(CellKind::Gru)
    };
    let rnn_variant = CellVariant {
        activations: vec![
            [act(A::LeakyRelu, 0.2, 0.0); 3],
            [Activation::plain(A::Softplus); 3],
        ],
        clip: Some(1.5),
        ..CellVariant::plain(CellKind::RnnTanh)
    };
    for (k, cell) in [CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh]
        .into_iter()
        .enumerate()
    {
        let cfg = RnnConfig::new(cell, input, h).layers(2).bidirectional(true);
        let mut rng = Rng::new(40 + k as u64);
        let flat = rng.vec_uniform_f32(ParamLayout::new(&cfg).total, -0.5, 0.5);
        let variant = match cell {
            CellKind::Lstm => lstm_variant(rng.vec_uniform_f32(2 * 2 * 3 * h, -0.8, 0.8)),
            CellKind::Gru => gru_variant.clone(),
            _ => rnn_variant.clone(),
        };
        let x = rng.vec_uniform_f32(seq * batch * input, -1.5, 1.5);
        let rnn = Rnn::new(&gpu, cfg.clone(), &flat)
            .unwrap()
            .with_variant(&gpu, variant.clone())
            .unwrap();
        assert!(rnn.variant().is_some());
        let tx = gpu.tensor("x", &[seq, batch, input], &x).unwrap();
        for lens in [vec![seq; batch], vec![2, 5, 4]] {
            let out = if lens.iter().all(|&l| l == seq) {
                rnn.forward(&gpu, &tx, None, None).unwrap()
            } else {
                rnn.forward_packed(&gpu, &tx, &lens, None, None).unwrap()
            };
            let (y, hn, cn) = reference_stack(&cfg, &variant, &flat, &x, (seq, batch), &lens);
            let what = format!("{cell} lens {lens:?}");
            assert_close(&format!("{what}: y"), &gpu.read(&out.y).unwrap(), &y, TOL);
            assert_close(
                &format!("{what}: hn"),
                &gpu.read(&out.hn).unwrap(),
                &hn,
                TOL,
            );
            if let Some(c) = &out.cn {
                assert_close(&format!("{what}: cn"), &gpu.read(c).unwrap(), &cn, TOL);
            }
        }
    }
}

/// A variant is inference only and checked against the stack's config.
#[test]
fn variant_stacks_refuse_training_and_mismatched_options() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Gru, 2, 3);
    let flat = vec![0.1; ParamLayout::new(&cfg).total];
    let new = || Rnn::new(&gpu, cfg.clone(), &flat).unwrap();
    let reset = CellVariant {
        reset_before: true,
        ..CellVariant::plain(CellKind::Gru)
    };
    let rnn = new().with_variant(&gpu, reset.clone()).unwrap();
    let x = gpu.tensor("x", &[2, 1, 2], &[0.5; 4]).unwrap();
    let mut rec = Recorder::new(&gpu);
    assert!(matches!(
        rnn.record_train(&mut rec, &x, None, None),
        Err(Error::InvalidConfig(_))
    ));
    // The plain variant keeps the fast kernels.
    let plain = new()
        .with_variant(&gpu, CellVariant::plain(CellKind::Gru))
        .unwrap();
    assert!(plain.variant().is_none());
    for bad in [
        CellVariant {
            peepholes: Some(vec![0.0; 9]),
            ..reset.clone()
        },
        CellVariant {
            input_forget: true,
            ..reset.clone()
        },
        CellVariant {
            clip: Some(-1.0),
            ..reset.clone()
        },
        CellVariant {
            activations: vec![],
            ..reset.clone()
        },
    ] {
        let r = new().with_variant(&gpu, bad.clone());
        assert!(r.is_err(), "{bad:?} accepted");
    }
    let lstm = RnnConfig::new(CellKind::Lstm, 2, 3);
    let r = Rnn::new(
        &gpu,
        lstm.clone(),
        &vec![0.1; ParamLayout::new(&lstm).total],
    )
    .unwrap()
    .with_variant(
        &gpu,
        CellVariant {
            peepholes: Some(vec![0.0; 8]),
            ..CellVariant::plain(CellKind::Lstm)
        },
    );
    assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
}
