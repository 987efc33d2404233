//! The shape plumbing that exporters write around the RNN nodes, evaluated on the host:
//! `Transpose`, `Reshape`, `Squeeze`, `Unsqueeze`, `Concat`, `Slice`, `Shape`, `Gather`,
//! `Expand`, `Constant` and `Identity`, each as the ONNX operator set (1 to 23) defines it
//! (attributes of the older sets, inputs of the newer). Every index and size comes from the
//! file and is checked: a bad one is [`crate::Error::Format`], never a panic.

use super::proto::NodeProto;
use super::value::{from_proto, numel, Array, Value};
use super::{attr, malformed, unsupported};
use crate::error::Result;

/// The operators evaluated here.
pub const HOST_OPS: [&str; 11] = [
    "Transpose",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Slice",
    "Shape",
    "Gather",
    "Expand",
    "Constant",
    "Identity",
];

/// Evaluates `$e` with `$a` bound to the array of either element type, and wraps the result
/// in the same variant.
macro_rules! each {
    ($v:expr, $a:ident => $e:expr) => {
        match $v {
            Value::F32($a) => Value::F32($e),
            Value::I64($a) => Value::I64($e),
        }
    };
}

/// Evaluates the host node `n` on `ins` (its inputs, `None` where the name is empty).
pub(crate) fn eval(path: &str, n: &NodeProto, ins: &[Option<&Value>]) -> Result<Vec<Value>> {
    let op = n.op_type();
    let what = format!("{op} node {:?}", n.name());
    let input = |i: usize| -> Result<&Value> {
        ins.get(i)
            .copied()
            .flatten()
            .ok_or_else(|| malformed(path, format!("{what} lacks its input {i}")))
    };
    let ints_input = |i: usize| -> Result<Option<Vec<i64>>> {
        match ins.get(i).copied().flatten() {
            Some(v) => Ok(Some(
                v.as_i64(path, &format!("{what} input {i}"))?.data.clone(),
            )),
            None => Ok(None),
        }
    };
    // Axes and index lists come from an attribute (older sets) or an input (newer ones).
    let list = |name: &str, i: usize| -> Result<Option<Vec<i64>>> {
        match attr(n, name) {
            Some(a) => Ok(Some(a.ints.clone())),
            None => ints_input(i),
        }
    };
    let out = match op {
        "Identity" => input(0)?.clone(),
        "Constant" => constant(path, n, &what)?,
        "Shape" => {
            let s = input(0)?.shape();
            let r = s.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clampi(attr(n, "start").map_or(0, |a| a.i()));
            let end = clampi(attr(n, "end").map_or(r, |a| a.i()));
            let dims: Vec<i64> = s
                .get(start..end.max(start))
                .unwrap_or(&[])
                .iter()
                .map(|&d| d as i64)
                .collect();
            Value::I64(Array {
                shape: vec![dims.len()],
                data: dims,
            })
        }
        "Transpose" => {
            let x = input(0)?;
            let r = x.shape().len();
            let perm: Vec<usize> = match attr(n, "perm") {
                Some(a) => a
                    .ints
                    .iter()
                    .map(|&p| usize::try_from(p).unwrap_or(usize::MAX))
                    .collect(),
                None => (0..r).rev().collect(),
            };
            let mut seen = vec![false; r];
            for &p in &perm {
                match seen.get_mut(p) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        return Err(malformed(
                            path,
                            format!("{what}: perm {perm:?} for rank {r}"),
                        ))
                    }
                }
            }
            if perm.len() != r {
                return Err(malformed(
                    path,
                    format!("{what}: perm {perm:?} for rank {r}"),
                ));
            }
            each!(x, a => transpose(a, &perm))
        }
        "Reshape" => {
            let x = input(0)?;
            let spec = ints_input(1)?
                .or_else(|| attr(n, "shape").map(|a| a.ints.clone()))
                .ok_or_else(|| malformed(path, format!("{what} has no shape")))?;
            let allowzero = attr(n, "allowzero").is_some_and(|a| a.i() != 0);
            let shape = reshape_dims(path, &what, x.shape(), &spec, allowzero)?;
            each!(x, a => Array { shape: shape.clone(), data: a.data.clone() })
        }
        "Squeeze" => {
            let x = input(0)?;
            let s = x.shape();
            let axes = match list("axes", 1)? {
                Some(ax) => norm_axes(path, &what, &ax, s.len())?,
                None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
            };
            if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
                return Err(malformed(
                    path,
                    format!("{what}: axis {a} of {s:?} is not 1"),
                ));
            }
            let shape = (0..s.len())
                .filter(|i| !axes.contains(i))
                .map(|i| s[i])
                .collect::<Vec<_>>();
            each!(x, a => Array { shape: shape.clone(), data: a.data.clone() })
        }
        "Unsqueeze" => {
            let x = input(0)?;
            let ax =
                list("axes", 1)?.ok_or_else(|| malformed(path, format!("{what} has no axes")))?;
            let r = x.shape().len() + ax.len();
            let axes = norm_axes(path, &what, &ax, r)?;
            let mut rest = x.shape().iter();
            let shape: Vec<usize> = (0..r)
                .map(|i| {
                    if axes.contains(&i) {
                        1
                    } else {
                        rest.next().copied().unwrap_or(1)
                    }
                })
                .collect();
            each!(x, a => Array { shape: shape.clone(), data: a.data.clone() })
        }
        "Concat" => {
            let axis = attr(n, "axis")
                .map(|a| a.i())
                .ok_or_else(|| malformed(path, format!("{what} has no axis")))?;
            let parts: Vec<&Value> = ins.iter().flatten().copied().collect();
            let first = parts
                .first()
                .ok_or_else(|| malformed(path, format!("{what} has no inputs")))?;
            let ax = norm_axes(path, &what, &[axis], first.shape().len())?[0];
            match first {
                Value::F32(_) => {
                    let arrs = parts
                        .iter()
                        .map(|v| v.as_f32(path, &what))
                        .collect::<Result<Vec<_>>>()?;
                    Value::F32(concat(path, &what, &arrs, ax)?)
                }
                Value::I64(_) => {
                    let arrs = parts
                        .iter()
                        .map(|v| v.as_i64(path, &what))
                        .collect::<Result<Vec<_>>>()?;
                    Value::I64(concat(path, &what, &arrs, ax)?)
                }
            }
        }
        "Gather" => {
            let x = input(0)?;
            let idx = input(1)?.as_i64(path, &format!("{what} indices"))?;
            let s = x.shape();
            let axis = attr(n, "axis").map_or(0, |a| a.i());
            let ax = norm_axes(path, &what, &[axis], s.len())?[0];
            let dim = s[ax] as i64;
            let rows = idx
                .data
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim } else { i };
                    if (0..dim).contains(&j) {
                        Ok(j as usize)
                    } else {
                        Err(malformed(
                            path,
                            format!("{what}: index {i} out of 0..{dim}"),
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let mut shape = s[..ax].to_vec();
            shape.extend_from_slice(&idx.shape);
            shape.extend_from_slice(&s[ax + 1..]);
            numel(path, &what, &shape)?;
            each!(x, a => gather(a, ax, &rows, shape.clone()))
        }
        "Slice" => {
            let x = input(0)?;
            let (starts, ends) = match (attr(n, "starts"), attr(n, "ends")) {
                (Some(s), Some(e)) => (s.ints.clone(), e.ints.clone()),
                _ => (
                    ints_input(1)?.ok_or_else(|| malformed(path, format!("{what}: no starts")))?,
                    ints_input(2)?.ok_or_else(|| malformed(path, format!("{what}: no ends")))?,
                ),
            };
            let r = x.shape().len();
            let axes = list("axes", 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = ints_input(4)?.unwrap_or_else(|| vec![1; starts.len()]);
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err(malformed(
                    path,
                    format!("{what}: starts, ends, axes and steps differ in length"),
                ));
            }
            let axes = norm_axes(path, &what, &axes, r)?;
            // Per axis: (first index, step, count), counted before any list is built so the
            // output's size is checked first.
            let mut ranges: Vec<(i64, i64, usize)> = x.shape().iter().map(|&d| (0, 1, d)).collect();
            for (k, &ax) in axes.iter().enumerate() {
                let d = x.shape()[ax] as i64;
                let step = steps[k];
                if step == 0 {
                    return Err(malformed(path, format!("{what}: step 0")));
                }
                let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (s, e) = (fix(starts[k]), fix(ends[k]));
                // As onnxruntime: start clamped to [0, d] (step > 0) or [0, d-1] (step < 0),
                // end to [0, d] or [-1, d-1].
                let (first, count) = if step > 0 {
                    let (s, e) = (s.clamp(0, d), e.clamp(0, d));
                    (s, if e > s { ceil_div(e - s, step) } else { 0 })
                } else if d == 0 {
                    (0, 0)
                } else {
                    let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
                    (
                        s,
                        if s > e {
                            ceil_div(s - e, step.saturating_neg())
                        } else {
                            0
                        },
                    )
                };
                ranges[ax] = (first, step, count as usize);
            }
            let out_shape: Vec<usize> = ranges.iter().map(|r| r.2).collect();
            numel(path, &what, &out_shape)?;
            let take: Vec<Vec<usize>> = ranges
                .iter()
                .map(|&(first, step, count)| {
                    (0..count as i64)
                        .map(|j| (first + j * step) as usize)
                        .collect()
                })
                .collect();
            each!(x, a => select(a, &take))
        }
        "Expand" => {
            let x = input(0)?;
            let spec =
                ints_input(1)?.ok_or_else(|| malformed(path, format!("{what} has no shape")))?;
            let s = x.shape();
            let r = s.len().max(spec.len());
            let mut shape = vec![0usize; r];
            for (i, out) in shape.iter_mut().enumerate() {
                let a = if i + s.len() >= r {
                    s[i + s.len() - r]
                } else {
                    1
                };
                let b = if i + spec.len() >= r {
                    spec[i + spec.len() - r]
                } else {
                    1
                };
                let b = usize::try_from(b)
                    .map_err(|_| malformed(path, format!("{what}: shape {spec:?}")))?;
                *out = match (a, b) {
                    (a, b) if a == b || b == 1 => a,
                    (1, b) => b,
                    _ => {
                        return Err(malformed(
                            path,
                            format!("{what}: {s:?} does not broadcast to {spec:?}"),
                        ))
                    }
                };
            }
            if numel(path, &what, &shape)? == 0 {
                return Ok(vec![match x {
                    Value::F32(_) => Value::F32(Array {
                        shape,
                        data: Vec::new(),
                    }),
                    Value::I64(_) => Value::I64(Array {
                        shape,
                        data: Vec::new(),
                    }),
                }]);
            }
            let take: Vec<Vec<usize>> = shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let src = if i + s.len() >= r {
                        s[i + s.len() - r]
                    } else {
                        1
                    };
                    (0..d).map(|j| if src == 1 { 0 } else { j }).collect()
                })
                .collect();
            each!(x, a => {
                let a = Array { shape: [vec![1; r - s.len()], a.shape.clone()].concat(), data: a.data.clone() };
                select(&a, &take)
            })
        }
        other => return Err(unsupported(path, format!("operator {other}"))),
    };
    Ok(vec![out])
}

/// A `Constant`'s value, from whichever attribute holds it.
fn constant(path: &str, n: &NodeProto, what: &str) -> Result<Value> {
    let a = n
        .attribute
        .first()
        .ok_or_else(|| malformed(path, format!("{what} has no value")))?;
    Ok(match a.name() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| malformed(path, format!("{what}: value is not a tensor")))?;
            from_proto(path, what, t)?
        }
        "value_float" => Value::F32(Array {
            shape: vec![],
            data: vec![a.f()],
        }),
        "value_floats" => Value::F32(Array {
            shape: vec![a.floats.len()],
            data: a.floats.clone(),
        }),
        "value_int" => Value::I64(Array {
            shape: vec![],
            data: vec![a.i()],
        }),
        "value_ints" => Value::I64(Array {
            shape: vec![a.ints.len()],
            data: a.ints.clone(),
        }),
        other => return Err(unsupported(path, format!("{what}: attribute {other}"))),
    })
}

/// `axes` (negative counting from the end) as indices below `rank`, checked.
fn norm_axes(path: &str, what: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let r = rank as i64;
    let out: Vec<usize> = axes
        .iter()
        .map(|&a| {
            let b = if a < 0 { a + r } else { a };
            if (0..r).contains(&b) {
                Ok(b as usize)
            } else {
                Err(malformed(path, format!("{what}: axis {a} for rank {rank}")))
            }
        })
        .collect::<Result<_>>()?;
    // As onnxruntime: an axis given twice is an error.
    if (1..out.len()).any(|i| out[..i].contains(&out[i])) {
        return Err(malformed(
            path,
            format!("{what}: axes {axes:?} repeat an axis"),
        ));
    }
    Ok(out)
}

/// The output shape of `Reshape` (`0` copies the input's dimension unless `allowzero`, one
/// `-1` is inferred).
fn reshape_dims(
    path: &str,
    what: &str,
    s: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>> {
    let total = numel(path, what, s)?;
    let bad = || malformed(path, format!("{what}: cannot reshape {s:?} to {spec:?}"));
    let mut infer = None;
    let mut dims = Vec::with_capacity(spec.len());
    for (i, &d) in spec.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => *s.get(i).ok_or_else(bad)?,
            d => usize::try_from(d).map_err(|_| bad())?,
        });
    }
    let known = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(bad)?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(bad());
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(bad());
    }
    Ok(dims)
}

/// `ceil(n / d)` for positive `n` and `d`.
fn ceil_div(n: i64, d: i64) -> i64 {
    n / d + i64::from(n % d != 0)
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The elements of `a` at the cross product of `take[axis]` (indices checked by the callers).
fn select<T: Copy>(a: &Array<T>, take: &[Vec<usize>]) -> Array<T> {
    let st = strides(&a.shape);
    let shape: Vec<usize> = take.iter().map(Vec::len).collect();
    let mut data = Vec::with_capacity(shape.iter().product());
    let mut idx = vec![0usize; shape.len()];
    if shape.iter().all(|&d| d > 0) {
        loop {
            let off: usize = idx
                .iter()
                .enumerate()
                .map(|(k, &i)| take[k][i] * st[k])
                .sum();
            data.push(a.data[off]);
            let mut k = shape.len();
            loop {
                if k == 0 {
                    return Array { shape, data };
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
    }
    Array { shape, data }
}

/// `a` with its axes permuted (`perm` checked by the caller).
fn transpose<T: Copy>(a: &Array<T>, perm: &[usize]) -> Array<T> {
    let st = strides(&a.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
    let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        data.push(a.data[idx.iter().zip(&pst).map(|(i, s)| i * s).sum::<usize>()]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Array { shape, data }
}

/// `Gather` of `rows` (checked) along `axis`.
fn gather<T: Copy>(a: &Array<T>, axis: usize, rows: &[usize], shape: Vec<usize>) -> Array<T> {
    let outer: usize = a.shape[..axis].iter().product();
    let inner: usize = a.shape[axis + 1..].iter().product();
    let d = a.shape[axis];
    let mut data = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in rows {
            let at = (o * d + r) * inner;
            data.extend_from_slice(&a.data[at..at + inner]);
        }
    }
    Array { shape, data }
}

/// `Concat` along `axis` (inputs of one rank, equal off the axis).
fn concat<T: Copy>(path: &str, what: &str, parts: &[&Array<T>], axis: usize) -> Result<Array<T>> {
    let s0 = &parts[0].shape;
    let mut shape = s0.clone();
    shape[axis] = 0;
    for p in parts {
        let ok =
            p.shape.len() == s0.len() && (0..s0.len()).all(|k| k == axis || p.shape[k] == s0[k]);
        if !ok {
            return Err(malformed(
                path,
                format!(
                    "{what}: shapes {s0:?} and {:?} do not concatenate on axis {axis}",
                    p.shape
                ),
            ));
        }
        shape[axis] = shape[axis]
            .checked_add(p.shape[axis])
            .ok_or_else(|| malformed(path, format!("{what}: concatenated length overflows")))?;
    }
    numel(path, what, &shape)?;
    let outer: usize = s0[..axis].iter().product();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for p in parts {
            let w: usize = p.shape[axis..].iter().product();
            data.extend_from_slice(&p.data[o * w..(o + 1) * w]);
        }
    }
    Ok(Array { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_transpose_and_select_move_elements() {
        let a = Array {
            shape: vec![2, 3],
            data: vec![0, 1, 2, 3, 4, 5],
        };
        assert_eq!(transpose(&a, &[1, 0]).data, vec![0, 3, 1, 4, 2, 5]);
        let s = select(&a, &[vec![1], vec![2, 0]]);
        assert_eq!((s.shape, s.data), (vec![1, 2], vec![5, 3]));
        assert_eq!(
            reshape_dims("m", "r", &[2, 3], &[0, -1], false).unwrap(),
            vec![2, 3]
        );
        assert!(reshape_dims("m", "r", &[2, 3], &[4, -1], false).is_err());
        assert!(reshape_dims("m", "r", &[2, 3], &[i64::MAX, i64::MAX], false).is_err());
    }
}
