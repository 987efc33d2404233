//! ONNX's `LSTM`, `GRU` and `RNN` operators (opset 7 to 22, with `layout` from 14) on recur's
//! [`Rnn`]: the attributes are read and checked at load time, and at run time the node's
//! `W`, `R`, `B` become recur's flat parameters with the gate blocks reordered (ONNX LSTM
//! `[i|o|f|c]` → PyTorch `[i|f|g|o]`, GRU `[z|r|h]` → `[r|z|n]`), the input and states are laid
//! out time-major on the host, one forward runs on the GPU, and `Y`, `Y_h`, `Y_c` come back in
//! ONNX's shapes: `Y` `[T, D, B, H]` (layout 0) or `[B, T, D, H]` (layout 1), `Y_h`/`Y_c`
//! `[D, B, H]` or `[B, D, H]`.
//!
//! `direction = reverse` alone runs forward over each row's sequence reversed on the host (its
//! first `sequence_lens[b]` steps), and its output is reversed back: that is the reverse
//! recurrence exactly. The default cells (and RNN `Relu`) run on recur's fast kernels; a node
//! with other `activations` (any ONNX lists, with `activation_alpha`/`activation_beta` and
//! onnxruntime's defaults), `clip`, LSTM peepholes `P` or `input_forget = 1`, or a GRU with
//! `linear_before_reset = 0` (ONNX's default) becomes a [`CellVariant`] on the general step
//! kernel. An unknown activation or attribute is refused by name.

use super::proto::NodeProto;
use super::value::{numel, Array, Value};
use super::{malformed, unsupported};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::step_onnx::{Activation, ActivationKind};
use crate::rnn::{CellKind, CellVariant, ParamKind, ParamLayout, Rnn, RnnConfig};

/// The RNN operators.
pub const RNN_OPS: [&str; 3] = ["LSTM", "GRU", "RNN"];

/// Which way an ONNX RNN node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `forward`.
    Forward,
    /// `reverse`: run as forward over each row's reversed sequence.
    Reverse,
    /// `bidirectional`.
    Bidirectional,
}

/// An RNN node's attributes, checked.
#[derive(Clone, Debug)]
pub struct CellSpec {
    /// recur's cell.
    pub cell: CellKind,
    /// `hidden_size`.
    pub hidden: usize,
    /// `direction`.
    pub direction: Direction,
    /// `layout = 1`: `X`, `Y`, states batch-major.
    pub batch_major: bool,
    /// What the fast kernels do not compute (activations, clip, peepholes, input_forget,
    /// GRU `linear_before_reset = 0`); the peepholes themselves come from input `P` at run
    /// time.
    pub variant: Option<CellVariant>,
    /// LSTM input `P` is given.
    pub peephole: bool,
}

impl CellSpec {
    /// Number of directions in `W`, `R`, `B`, `Y`.
    pub fn dirs(&self) -> usize {
        if self.direction == Direction::Bidirectional {
            2
        } else {
            1
        }
    }

    /// Reads and checks node `n`'s attributes; what recur cannot compute is
    /// [`crate::Error::Unsupported`] naming the attribute and value.
    pub fn parse(path: &str, n: &NodeProto) -> Result<CellSpec> {
        let op = n.op_type();
        let bad = |what: String| malformed(path, format!("{op} {what}"));
        let mut hidden = None;
        let mut direction = Direction::Forward;
        let mut batch_major = false;
        let mut names: Vec<String> = Vec::new();
        let (mut alphas, mut betas): (&[f32], &[f32]) = (&[], &[]);
        let mut variant = CellVariant::plain(CellKind::RnnTanh);
        // ONNX's default is 0, the reset-before form; PyTorch's GRU is 1.
        let mut lbr = 0;
        for a in &n.attribute {
            match a.name() {
                "hidden_size" => {
                    hidden = Some(
                        usize::try_from(a.i())
                            .ok()
                            .filter(|&h| h > 0 && h <= super::value::MAX_ELEMENTS)
                            .ok_or_else(|| {
                                bad(format!("hidden_size {} is not in 1..=2^27", a.i()))
                            })?,
                    )
                }
                "direction" => {
                    direction = match a.s() {
                        b"forward" => Direction::Forward,
                        b"reverse" => Direction::Reverse,
                        b"bidirectional" => Direction::Bidirectional,
                        s => {
                            return Err(bad(format!("direction {:?}", String::from_utf8_lossy(s))))
                        }
                    }
                }
                "layout" => {
                    batch_major = match a.i() {
                        0 => false,
                        1 => true,
                        v => return Err(bad(format!("layout {v}"))),
                    }
                }
                "activations" => {
                    names = a
                        .strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect()
                }
                "activation_alpha" => alphas = &a.floats,
                "activation_beta" => betas = &a.floats,
                "linear_before_reset" if op == "GRU" => {
                    lbr = a.i();
                    if !(lbr == 0 || lbr == 1) {
                        return Err(bad(format!("linear_before_reset {lbr} (0 or 1)")));
                    }
                }
                "input_forget" if op == "LSTM" => {
                    variant.input_forget = match a.i() {
                        0 => false,
                        1 => true,
                        v => return Err(bad(format!("input_forget {v} (0 or 1)"))),
                    }
                }
                "clip" => {
                    let c = a.f();
                    if !(c.is_finite() && c > 0.0) {
                        return Err(bad(format!("clip {c} (must be positive and finite)")));
                    }
                    variant.clip = Some(c);
                }
                "output_sequence" => {}
                other => return Err(unsupported(path, format!("{op} attribute {other}"))),
            }
        }
        let hidden = hidden.ok_or_else(|| bad("has no hidden_size attribute".into()))?;
        let dirs = if direction == Direction::Bidirectional {
            2
        } else {
            1
        };
        let (cell, slots) = match op {
            "LSTM" => (CellKind::Lstm, 3),
            "GRU" => (CellKind::Gru, 2),
            _ => (CellKind::RnnTanh, 1),
        };
        variant.reset_before = cell == CellKind::Gru && lbr == 0;
        variant.activations =
            activations(&names, alphas, betas, cell, slots, dirs).map_err(|e| {
                unsupported(path, format!("{op} attribute activations = {names:?} {e}"))
            })?;
        let peephole = op == "LSTM" && n.input.get(7).is_some_and(|p| !p.is_empty());
        let (cell, variant) = if peephole || !variant.is_plain(cell) {
            // RNN Relu/Tanh mixes and the rest run on the general kernel.
            if cell == CellKind::RnnTanh && variant.is_plain(CellKind::RnnRelu) {
                (CellKind::RnnRelu, None)
            } else {
                (cell, Some(variant))
            }
        } else {
            (cell, None)
        };
        Ok(CellSpec {
            cell,
            hidden,
            direction,
            batch_major,
            variant,
            peephole,
        })
    }
}

/// The `[f, g, h]` activations of each direction from ONNX's `activations` (`slots` per
/// direction, for each direction or once for both; none: the defaults),
/// `activation_alpha` and `activation_beta` (consumed in order by the functions that take
/// them, onnxruntime's defaults for the rest). The error is the reason, for the message.
fn activations(
    names: &[String],
    alphas: &[f32],
    betas: &[f32],
    cell: CellKind,
    slots: usize,
    dirs: usize,
) -> std::result::Result<Vec<[Activation; 3]>, String> {
    let plain = CellVariant::plain(cell).activations[0];
    if names.is_empty() {
        if !alphas.is_empty() || !betas.is_empty() {
            return Err("is empty but activation_alpha/activation_beta are given".into());
        }
        return Ok(vec![plain]);
    }
    if names.len() != slots * dirs && names.len() != slots {
        return Err(format!(
            "(expected {} names, {slots} per direction)",
            slots * dirs
        ));
    }
    let (mut alphas, mut betas) = (alphas.iter(), betas.iter());
    let mut out = Vec::new();
    for chunk in names.chunks(slots) {
        let mut set = plain;
        for (slot, name) in chunk.iter().enumerate() {
            let kind = ActivationKind::parse(name).ok_or_else(|| {
                format!(
                    "({name:?} is not one of {})",
                    ActivationKind::ALL.map(ActivationKind::name).join(", ")
                )
            })?;
            let mut a = Activation::new(kind);
            if kind.uses_alpha() {
                if let Some(&v) = alphas.next() {
                    a.alpha = v;
                }
            }
            if kind.uses_beta() {
                if let Some(&v) = betas.next() {
                    a.beta = v;
                }
            }
            set[slot] = a;
        }
        out.push(set);
    }
    if alphas.next().is_some() || betas.next().is_some() {
        return Err(
            "(more activation_alpha/activation_beta values than its functions take)".into(),
        );
    }
    Ok(out)
}

/// Reorders the gate blocks (`h` rows each) of one direction's `[G*H, cols]` matrix or
/// `[G*H]` bias from ONNX's order to PyTorch's.
fn reorder(cell: CellKind, src: &[f32], h: usize, dst: &mut [f32]) {
    // PyTorch block k is ONNX block ORDER[k].
    let order: &[usize] = match cell {
        CellKind::Lstm => &[0, 2, 3, 1],
        CellKind::Gru => &[1, 0, 2],
        _ => &[0],
    };
    let block = src.len() / order.len();
    debug_assert_eq!(block % h, 0);
    for (k, &o) in order.iter().enumerate() {
        dst[k * block..(k + 1) * block].copy_from_slice(&src[o * block..(o + 1) * block]);
    }
}

/// Copies `a` (`[T, B, F]` time-major, or `[B, T, F]`) to time-major, reversing each row's
/// first `lens[b]` steps when `rev`.
fn time_major(
    a: &[f32],
    t: usize,
    b: usize,
    f: usize,
    batch_major: bool,
    rev: Option<&[usize]>,
) -> Vec<f32> {
    let mut out = vec![0.0; t * b * f];
    for s in 0..t {
        for r in 0..b {
            let src_t = match rev {
                Some(l) if s < l[r] => l[r] - 1 - s,
                Some(_) => continue,
                None => s,
            };
            let at = if batch_major {
                (r * t + src_t) * f
            } else {
                (src_t * b + r) * f
            };
            out[(s * b + r) * f..(s * b + r + 1) * f].copy_from_slice(&a[at..at + f]);
        }
    }
    out
}

/// Runs node `n` (attributes `spec`) on its inputs; returns `Y`, `Y_h` and, for an LSTM, `Y_c`.
pub(crate) fn run(
    path: &str,
    gpu: &Gpu,
    n: &NodeProto,
    spec: &CellSpec,
    ins: &[Option<&Value>],
) -> Result<Vec<Value>> {
    let op = n.op_type();
    let what = |s: &str| format!("{op} node {:?} input {s}", n.name());
    let get = |i: usize, s: &str| -> Result<Option<&Array<f32>>> {
        ins.get(i)
            .copied()
            .flatten()
            .map(|v| v.as_f32(path, &what(s)))
            .transpose()
    };
    let need = |i: usize, s: &str| -> Result<&Array<f32>> {
        get(i, s)?.ok_or_else(|| malformed(path, format!("{} is missing", what(s))))
    };
    let (x, w, r) = (need(0, "X")?, need(1, "W")?, need(2, "R")?);
    let bias = get(3, "B")?;
    let (h0, c0) = (get(5, "initial_h")?, get(6, "initial_c")?);
    let (h, d, g) = (spec.hidden, spec.dirs(), spec.cell.gates());
    let shape_err = |s: &str, got: &[usize], want: String| {
        malformed(
            path,
            format!("{} has shape {got:?}, expected {want}", what(s)),
        )
    };
    let [s0, s1, i_size] = x.shape[..] else {
        return Err(shape_err("X", &x.shape, "3 dimensions".into()));
    };
    let (t, b) = if spec.batch_major { (s1, s0) } else { (s0, s1) };
    if t == 0 || b == 0 || i_size == 0 {
        return Err(shape_err("X", &x.shape, "no zero dimension".into()));
    }
    if w.shape != [d, g * h, i_size] {
        return Err(shape_err(
            "W",
            &w.shape,
            format!("{:?}", [d, g * h, i_size]),
        ));
    }
    if r.shape != [d, g * h, h] {
        return Err(shape_err("R", &r.shape, format!("{:?}", [d, g * h, h])));
    }
    if let Some(bb) = bias {
        if bb.shape != [d, 2 * g * h] {
            return Err(shape_err("B", &bb.shape, format!("{:?}", [d, 2 * g * h])));
        }
    }
    let state_shape = if spec.batch_major {
        [b, d, h]
    } else {
        [d, b, h]
    };
    for (s, v) in [("initial_h", h0), ("initial_c", c0)] {
        if let Some(v) = v {
            if v.shape != state_shape {
                return Err(shape_err(s, &v.shape, format!("{state_shape:?}")));
            }
        }
    }
    let lens: Option<Vec<usize>> = match ins.get(4).copied().flatten() {
        None => None,
        Some(v) => {
            let l = v.as_i64(path, &what("sequence_lens"))?;
            if l.shape != [b] {
                return Err(shape_err("sequence_lens", &l.shape, format!("[{b}]")));
            }
            Some(
                l.data
                    .iter()
                    .map(|&v| match usize::try_from(v) {
                        Ok(v) if (1..=t).contains(&v) => Ok(v),
                        _ => Err(malformed(
                            path,
                            format!(
                                "{}: length {v} is not in 1..={t} (recur runs no empty row)",
                                what("sequence_lens")
                            ),
                        )),
                    })
                    .collect::<Result<_>>()?,
            )
        }
    };
    numel(path, &what("X"), &[t, b, d * h])?;

    let cfg = RnnConfig::new(spec.cell, i_size, h)
        .bidirectional(d == 2)
        .bias(bias.is_some());
    let layout = ParamLayout::new(&cfg);
    let mut flat = vec![0.0f32; layout.total];
    for dir in 0..d {
        let put = |kind: ParamKind, src: &[f32], flat: &mut [f32]| {
            if let Some(e) = layout.find(0, dir, kind) {
                reorder(spec.cell, src, h, &mut flat[e.range()]);
            }
        };
        let (wl, rl) = (g * h * i_size, g * h * h);
        put(
            ParamKind::WeightIh,
            &w.data[dir * wl..(dir + 1) * wl],
            &mut flat,
        );
        put(
            ParamKind::WeightHh,
            &r.data[dir * rl..(dir + 1) * rl],
            &mut flat,
        );
        if let Some(bb) = bias {
            let at = dir * 2 * g * h;
            put(ParamKind::BiasIh, &bb.data[at..at + g * h], &mut flat);
            put(
                ParamKind::BiasHh,
                &bb.data[at + g * h..at + 2 * g * h],
                &mut flat,
            );
        }
    }
    let rev_lens: Option<Vec<usize>> =
        (spec.direction == Direction::Reverse).then(|| lens.clone().unwrap_or_else(|| vec![t; b]));
    let xs = time_major(&x.data, t, b, i_size, spec.batch_major, rev_lens.as_deref());
    // States to recur's [D, B, H].
    let state = |v: &Array<f32>| -> Vec<f32> {
        if spec.batch_major {
            time_major(&v.data, d, b, h, true, None)
        } else {
            v.data.clone()
        }
    };
    let rnn = Rnn::new(gpu, cfg, &flat)?;
    let rnn = match &spec.variant {
        Some(v) => {
            let mut v = v.clone();
            if spec.peephole {
                let p = need(7, "P")?;
                if p.shape != [d, 3 * h] {
                    return Err(shape_err("P", &p.shape, format!("{:?}", [d, 3 * h])));
                }
                v.peepholes = Some(p.data.clone());
            }
            rnn.with_variant(gpu, v)?
        }
        None => rnn,
    };
    let tx = gpu.tensor("onnx.X", &[t, b, i_size], &xs)?;
    let th0 = h0
        .map(|v| gpu.tensor("onnx.initial_h", &[d, b, h], &state(v)))
        .transpose()?;
    // recur's LSTM takes both states or neither; ONNX defaults a missing one to zeros.
    let th0 = match (th0, c0.is_some() && spec.cell == CellKind::Lstm) {
        (None, true) => Some(gpu.tensor("onnx.initial_h", &[d, b, h], &vec![0.0; d * b * h])?),
        (t, _) => t,
    };
    let tc0 = match (c0, &th0, spec.cell == CellKind::Lstm) {
        (Some(v), _, true) => Some(gpu.tensor("onnx.initial_c", &[d, b, h], &state(v))?),
        (None, Some(_), true) => {
            Some(gpu.tensor("onnx.initial_c", &[d, b, h], &vec![0.0; d * b * h])?)
        }
        _ => None,
    };
    let out = match &lens {
        Some(l) if l.iter().any(|&v| v != t) => {
            rnn.forward_packed(gpu, &tx, l, th0.as_ref(), tc0.as_ref())?
        }
        _ => rnn.forward(gpu, &tx, th0.as_ref(), tc0.as_ref())?,
    };
    // recur's y is [T, B, D*H]; undo the host reversal, then lay out as ONNX's Y.
    let y = gpu.read(&out.y)?;
    let y = match &rev_lens {
        Some(l) => time_major(&y, t, b, h, false, Some(l)),
        None => y,
    };
    let mut onnx_y = vec![0.0f32; y.len()];
    for s in 0..t {
        for r in 0..b {
            for k in 0..d {
                let src = (s * b + r) * d * h + k * h;
                let dst = if spec.batch_major {
                    ((r * t + s) * d + k) * h
                } else {
                    ((s * d + k) * b + r) * h
                };
                onnx_y[dst..dst + h].copy_from_slice(&y[src..src + h]);
            }
        }
    }
    let y_shape = if spec.batch_major {
        vec![b, t, d, h]
    } else {
        vec![t, d, b, h]
    };
    let states = |v: Vec<f32>| -> Value {
        let data = if spec.batch_major {
            // [D, B, H] → [B, D, H].
            let mut o = vec![0.0; v.len()];
            for k in 0..d {
                for r in 0..b {
                    o[(r * d + k) * h..(r * d + k + 1) * h]
                        .copy_from_slice(&v[(k * b + r) * h..(k * b + r + 1) * h]);
                }
            }
            o
        } else {
            v
        };
        Value::F32(Array {
            shape: state_shape.to_vec(),
            data,
        })
    };
    let mut outs = vec![
        Value::F32(Array {
            shape: y_shape,
            data: onnx_y,
        }),
        states(gpu.read(&out.hn)?),
    ];
    if let Some(cn) = &out.cn {
        outs.push(states(gpu.read(cn)?));
    }
    Ok(outs)
}
