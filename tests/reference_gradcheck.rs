//! Finite-difference checks of every gradient the CPU reference computes: each parameter
//! element, each element of `dx`, `dh0` and `dc0`, for every cell kind, two layers,
//! bidirectional, with and without biases, with `h0`/`c0` given and `dhn`/`dcn` nonzero.
//!
//! The loss is `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)`; the numeric gradient is the central
//! difference `(L(v+eps) - L(v-eps)) / 2eps` in f64.

use recur::reference::{rnn_backward, rnn_forward, RefForward};
use recur::rng::Rng;
use recur::{CellKind, ParamLayout, RnnConfig};

const EPS: f64 = 1e-6;
/// Relative tolerance on each element.
const RTOL: f64 = 1e-6;
/// Absolute floor, for elements whose gradient is near zero: the central difference's
/// rounding error is about `1e-16 * |L| / EPS`, so ~1e-9 here.
const ATOL: f64 = 1e-8;

struct Case {
    cfg: RnnConfig,
    seq_len: usize,
    batch: usize,
    with_h0: bool,
    seed: u64,
}

struct Data {
    params: Vec<f64>,
    x: Vec<f64>,
    h0: Option<Vec<f64>>,
    c0: Option<Vec<f64>>,
    dy: Vec<f64>,
    dhn: Vec<f64>,
    dcn: Option<Vec<f64>>,
}

fn normals(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn make_data(case: &Case) -> Data {
    let cfg = &case.cfg;
    let mut rng = Rng::new(case.seed);
    let layout = ParamLayout::new(cfg);
    // PyTorch's init range, U(-1/sqrt(H), 1/sqrt(H)), scaled up a little so gates saturate
    // now and then.
    let k = 1.5 / (cfg.hidden_size as f64).sqrt();
    let params: Vec<f64> = (0..layout.total).map(|_| rng.uniform(-k, k)).collect();
    let (t, b) = (case.seq_len, case.batch);
    // h is P wide with an LSTM projection, c is always H wide.
    let state = cfg.num_layers * cfg.num_directions() * b * cfg.out_hidden();
    let cstate = cfg.num_layers * cfg.num_directions() * b * cfg.hidden_size;
    let lstm = cfg.cell == CellKind::Lstm;
    let x = normals(&mut rng, t * b * cfg.input_size, 1.0);
    let h0 = case.with_h0.then(|| normals(&mut rng, state, 0.5));
    let c0 = (case.with_h0 && lstm).then(|| normals(&mut rng, cstate, 0.5));
    let dy = normals(&mut rng, t * b * cfg.output_size(), 1.0);
    let dhn = normals(&mut rng, state, 1.0);
    let dcn = lstm.then(|| normals(&mut rng, cstate, 1.0));
    Data {
        params,
        x,
        h0,
        c0,
        dy,
        dhn,
        dcn,
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn forward(case: &Case, d: &Data) -> RefForward {
    rnn_forward(
        &case.cfg,
        &d.params,
        &d.x,
        case.seq_len,
        case.batch,
        d.h0.as_deref(),
        d.c0.as_deref(),
    )
}

fn loss(case: &Case, d: &Data) -> f64 {
    let f = forward(case, d);
    let mut l = dot(&f.y, &d.dy) + dot(&f.hn, &d.dhn);
    if let (Some(cn), Some(dcn)) = (&f.cn, &d.dcn) {
        l += dot(cn, dcn);
    }
    l
}

/// Which input a numeric gradient perturbs.
#[derive(Clone, Copy, Debug)]
enum Target {
    Params,
    X,
    H0,
    C0,
}

fn slot(d: &mut Data, target: Target) -> &mut Vec<f64> {
    match target {
        Target::Params => &mut d.params,
        Target::X => &mut d.x,
        Target::H0 => d.h0.as_mut().unwrap(),
        Target::C0 => d.c0.as_mut().unwrap(),
    }
}

fn numeric(case: &Case, d: &mut Data, target: Target, i: usize) -> f64 {
    let v = slot(d, target)[i];
    slot(d, target)[i] = v + EPS;
    let lp = loss(case, d);
    slot(d, target)[i] = v - EPS;
    let lm = loss(case, d);
    slot(d, target)[i] = v;
    (lp - lm) / (2.0 * EPS)
}

/// Compares `analytic` with central differences element by element; returns the failures.
fn compare(
    case: &Case,
    d: &mut Data,
    target: Target,
    analytic: &[f64],
    names: &dyn Fn(usize) -> String,
    worst: &mut f64,
) -> Vec<String> {
    let mut fails = Vec::new();
    assert_eq!(
        analytic.len(),
        slot(d, target).len(),
        "{target:?} gradient length"
    );
    for (i, &a) in analytic.iter().enumerate() {
        let n = numeric(case, d, target, i);
        let err = (a - n).abs();
        let bound = RTOL * a.abs().max(n.abs()) + ATOL;
        *worst = worst.max(err / (a.abs().max(n.abs()) + ATOL));
        if err.is_nan() || err > bound {
            fails.push(format!(
                "{}: analytic {a:.12e}, numeric {n:.12e}, |diff| {err:.3e} > {bound:.3e}",
                names(i)
            ));
        }
    }
    fails
}

fn check(case: Case) {
    let cfg = &case.cfg;
    let mut d = make_data(&case);
    let f = forward(&case, &d);
    if cfg.cell == CellKind::RnnRelu {
        // keep the relu kinks out of the finite differences' reach
        let closest = f
            .dirs
            .iter()
            .flat_map(|c| c.gates.iter())
            .fold(f64::INFINITY, |m, p| m.min(p.abs()));
        assert!(
            closest > 1e-4,
            "a relu pre-activation is {closest:e} from 0"
        );
        let live = f.y.iter().filter(|&&v| v > 0.0).count();
        assert!(live > f.y.len() / 4, "too few live relu units: {live}");
    }
    let g = rnn_backward(
        cfg,
        &d.params,
        &d.x,
        case.seq_len,
        case.batch,
        d.h0.as_deref(),
        d.c0.as_deref(),
        &f,
        &d.dy,
        Some(&d.dhn),
        d.dcn.as_deref(),
    );
    let layout = ParamLayout::new(cfg);
    assert_eq!(g.dparams.len(), layout.total);
    assert_eq!(g.dc0.is_some(), cfg.cell == CellKind::Lstm);

    let mut fails = Vec::new();
    let mut worst = 0.0f64;
    let pname = |i: usize| {
        let e = layout
            .entries
            .iter()
            .find(|e| e.range().contains(&i))
            .unwrap();
        format!("{}[{}] (flat {i})", e.name, i - e.offset)
    };
    fails.extend(compare(
        &case,
        &mut d,
        Target::Params,
        &g.dparams,
        &pname,
        &mut worst,
    ));
    let xname = |i: usize| format!("x[{i}]");
    fails.extend(compare(&case, &mut d, Target::X, &g.dx, &xname, &mut worst));
    if d.h0.is_none() {
        // None means zeros: the gradients are still defined; check them at explicit zeros
        let state = g.dh0.len();
        d.h0 = Some(vec![0.0; state]);
        if g.dc0.is_some() {
            d.c0 = Some(vec![0.0; state]);
        }
        assert_eq!(
            forward(&case, &d),
            f,
            "explicit zero state differs from None"
        );
    }
    let hname = |i: usize| format!("h0[{i}]");
    fails.extend(compare(
        &case,
        &mut d,
        Target::H0,
        &g.dh0,
        &hname,
        &mut worst,
    ));
    if let Some(dc0) = &g.dc0 {
        let cname = |i: usize| format!("c0[{i}]");
        fails.extend(compare(&case, &mut d, Target::C0, dc0, &cname, &mut worst));
    }
    println!(
        "{} L={} D={} bias={} T={} B={} I={} H={}: {} params, worst relative error {worst:.2e}",
        cfg.cell,
        cfg.num_layers,
        cfg.num_directions(),
        cfg.bias,
        case.seq_len,
        case.batch,
        cfg.input_size,
        cfg.hidden_size,
        layout.total,
    );
    assert!(
        fails.is_empty(),
        "{} gradient mismatches for {}:\n{}",
        fails.len(),
        cfg.cell,
        fails.join("\n")
    );
}

fn case(cell: CellKind, bias: bool, dims: [usize; 4], seed: u64) -> Case {
    let [t, b, i, h] = dims;
    Case {
        cfg: RnnConfig::new(cell, i, h)
            .layers(2)
            .bidirectional(true)
            .bias(bias),
        seq_len: t,
        batch: b,
        with_h0: true,
        seed,
    }
}

#[test]
fn rnn_tanh() {
    check(case(CellKind::RnnTanh, true, [4, 3, 5, 4], 1));
}

#[test]
fn rnn_tanh_no_bias() {
    check(case(CellKind::RnnTanh, false, [3, 2, 3, 5], 2));
}

#[test]
fn rnn_relu() {
    check(case(CellKind::RnnRelu, true, [5, 2, 4, 3], 3));
}

#[test]
fn rnn_relu_no_bias() {
    check(case(CellKind::RnnRelu, false, [3, 3, 5, 5], 4));
}

#[test]
fn lstm() {
    check(case(CellKind::Lstm, true, [5, 3, 3, 5], 5));
}

#[test]
fn lstm_no_bias() {
    check(case(CellKind::Lstm, false, [3, 2, 4, 3], 6));
}

#[test]
fn gru() {
    check(case(CellKind::Gru, true, [4, 2, 5, 3], 7));
}

#[test]
fn gru_no_bias() {
    check(case(CellKind::Gru, false, [3, 3, 3, 4], 8));
}

/// Three layers, one direction, no h0/c0 (zeros): the `None` paths.
#[test]
fn lstm_three_layers_unidirectional_zero_state() {
    check(Case {
        cfg: RnnConfig::new(CellKind::Lstm, 3, 4).layers(3),
        seq_len: 4,
        batch: 2,
        with_h0: false,
        seed: 9,
    });
}

/// Three layers, one direction, no h0 (zeros), GRU.
#[test]
fn gru_three_layers_unidirectional_zero_state() {
    check(Case {
        cfg: RnnConfig::new(CellKind::Gru, 4, 3).layers(3),
        seq_len: 5,
        batch: 3,
        with_h0: false,
        seed: 10,
    });
}

/// LSTM with a projection (proj_size P < H): h = W_hr · (o * tanh(c)), two layers,
/// bidirectional, so layer 1 reads D*P features.
#[test]
fn lstm_projection_bidirectional() {
    check(Case {
        cfg: RnnConfig::new(CellKind::Lstm, 3, 5)
            .layers(2)
            .bidirectional(true)
            .proj_size(3),
        seq_len: 4,
        batch: 2,
        with_h0: true,
        seed: 11,
    });
}
