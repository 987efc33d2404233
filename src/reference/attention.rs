//! Additive (Bahdanau) attention for one decoder step in f64: the oracle of
//! `shaders/attention.wgsl` ([`crate::kernels::attention`]). Shapes, time-major: keys
//! `(S, B, A)`, query `(B, A)`, `v` `(A)`, values `(S, B, D)`; weights `alpha` `(S, B)`,
//! context `(B, D)`.
//!
//! ```text
//! e[s, b]     = Σ_a v[a] tanh(q[b, a] + K[s, b, a])
//! alpha[., b] = softmax over s of e[., b]
//! ctx[b, d]   = Σ_s alpha[s, b] Hs[s, b, d]
//! ```

/// The sizes: source length S, batch B, attention width A, value width D.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Source length S.
    pub s: usize,
    /// Batch B.
    pub b: usize,
    /// Attention width A.
    pub a: usize,
    /// Value width D.
    pub d: usize,
}

/// The forward's results.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOut {
    /// `(S, B)`.
    pub alpha: Vec<f64>,
    /// `(B, D)`.
    pub ctx: Vec<f64>,
}

/// The gradients of `L = Σ ctx ⊙ dctx`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionGrads {
    /// `(S, B, A)`.
    pub dkeys: Vec<f64>,
    /// `(B, A)`.
    pub dquery: Vec<f64>,
    /// `(A)`.
    pub dv: Vec<f64>,
    /// `(S, B, D)`.
    pub dvalues: Vec<f64>,
}

fn pre(n: Dims, keys: &[f64], query: &[f64], s: usize, b: usize, a: usize) -> f64 {
    query[b * n.a + a] + keys[(s * n.b + b) * n.a + a]
}

/// The forward step.
pub fn attention_forward(
    n: Dims,
    keys: &[f64],
    query: &[f64],
    v: &[f64],
    values: &[f64],
) -> AttentionOut {
    let mut alpha = vec![0.0; n.s * n.b];
    let mut ctx = vec![0.0; n.b * n.d];
    for b in 0..n.b {
        let e: Vec<f64> = (0..n.s)
            .map(|s| {
                (0..n.a)
                    .map(|a| v[a] * pre(n, keys, query, s, b, a).tanh())
                    .sum()
            })
            .collect();
        let m = e.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = e.iter().map(|x| (x - m).exp()).sum();
        for s in 0..n.s {
            alpha[s * n.b + b] = (e[s] - m).exp() / total;
        }
        for d in 0..n.d {
            ctx[b * n.d + d] = (0..n.s)
                .map(|s| alpha[s * n.b + b] * values[(s * n.b + b) * n.d + d])
                .sum();
        }
    }
    AttentionOut { alpha, ctx }
}

/// The backward step for the context's gradient `dctx` `(B, D)`.
pub fn attention_backward(
    n: Dims,
    keys: &[f64],
    query: &[f64],
    v: &[f64],
    values: &[f64],
    dctx: &[f64],
) -> AttentionGrads {
    let alpha = attention_forward(n, keys, query, v, values).alpha;
    let mut g = AttentionGrads {
        dkeys: vec![0.0; n.s * n.b * n.a],
        dquery: vec![0.0; n.b * n.a],
        dv: vec![0.0; n.a],
        dvalues: vec![0.0; n.s * n.b * n.d],
    };
    for b in 0..n.b {
        let al = |s: usize| alpha[s * n.b + b];
        let dalpha: Vec<f64> = (0..n.s)
            .map(|s| {
                (0..n.d)
                    .map(|d| dctx[b * n.d + d] * values[(s * n.b + b) * n.d + d])
                    .sum()
            })
            .collect();
        let dot: f64 = (0..n.s).map(|s| al(s) * dalpha[s]).sum();
        for (s, da) in dalpha.iter().enumerate() {
            let de = al(s) * (da - dot);
            for d in 0..n.d {
                g.dvalues[(s * n.b + b) * n.d + d] = al(s) * dctx[b * n.d + d];
            }
            for (a, va) in v.iter().enumerate() {
                let th = pre(n, keys, query, s, b, a).tanh();
                let gs = de * va * (1.0 - th * th);
                g.dkeys[(s * n.b + b) * n.a + a] = gs;
                g.dquery[b * n.a + a] += gs;
                g.dv[a] += de * th;
            }
        }
    }
    g
}
