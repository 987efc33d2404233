//! The dynamo exporter's `nn.RNN`: `torch.onnx.export(..., dynamo=True)` (torch 2.15) writes
//! no `RNN` node for it but the unrolled loop of torch's decomposition, per (layer,
//! direction):
//!
//! ```text
//! P  = MatMul(X, W_ihᵀ) [+ b_ih]                 (X: [T, B, I])
//! P' = P, or Slice(P, -1, -big, axis 0, step -1)  (reverse: flipped in time)
//! x_k = Squeeze(Slice(P', k, k+1, axis 0), 0)     (k = 0..T)
//! s_k = act(Add(MatMul(s_{k-1}, W_hhᵀ) [+ b_hh], x_k))   act = Tanh | Relu
//! s_0 = act(Add(C, x_0)), C = b_hh broadcast to [1, B, H] (h0 = 0 folded), or as s_k from
//!       an initial state h0 ([1, B, H])
//! Y  = Concat(s_0..s_{T-1}, axis 0)   (reverse: s_{T-1}..s_0)
//! ```
//!
//! [`lift`] finds each such chain and replaces it by one ONNX `RNN` node (forward or reverse)
//! plus a `Squeeze` of its `Y` to the chain's `[T, B, H]`, its `Y_h` named as the last state:
//! the rest of the graph (the directions' Concat, the states' stack, batch-first Transposes)
//! is shape plumbing recur already evaluates. The match is exact — every slice index, weight
//! and bias checked, and no value of the chain read outside it except `Y` and the last
//! state — or nothing is changed (and the `MatMul` is then refused by name). T and B are
//! read from the data at run time, so the lifted graph takes any sequence length and batch
//! (the exported one had both baked in).

use std::collections::{HashMap, HashSet};

use super::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use super::value::{Array, Value};

/// A value's producer, by output name.
type Producers<'a> = HashMap<&'a str, usize>;

/// One chain found in the graph.
struct Chain {
    /// Node indices the lift removes.
    nodes: Vec<usize>,
    /// The layer input X and the initial state (if any).
    x: String,
    h0: Option<String>,
    w_ih_t: String,
    b_ih: Option<String>,
    w_hh_t: String,
    b_hh: Option<String>,
    relu: bool,
    reverse: bool,
    /// The Concat's output (Y, `[T, B, H]`), if the graph reads it.
    y: Option<String>,
    /// The last state's name (`[1, B, H]`).
    last: String,
}

fn node<'a>(
    nodes: &'a [NodeProto],
    prod: &Producers,
    name: &str,
    op: &str,
) -> Option<(usize, &'a NodeProto)> {
    let &k = prod.get(name)?;
    (nodes[k].op_type() == op).then_some((k, &nodes[k]))
}

fn ints(inits: &HashMap<String, Value>, name: &str) -> Option<Vec<i64>> {
    match inits.get(name)? {
        Value::I64(a) => Some(a.data.clone()),
        Value::F32(_) => None,
    }
}

fn floats<'a>(inits: &'a HashMap<String, Value>, name: &str) -> Option<&'a Array<f32>> {
    match inits.get(name)? {
        Value::F32(a) => Some(a),
        Value::I64(_) => None,
    }
}

/// `MatMul(a, W) [+ b]` ending at `name`, W and b initializers: (node indices, a, W, b).
fn linear(
    nodes: &[NodeProto],
    prod: &Producers,
    inits: &HashMap<String, Value>,
    name: &str,
) -> Option<(Vec<usize>, String, String, Option<String>)> {
    let (mm_name, bias, add) = match node(nodes, prod, name, "Add") {
        Some((k, add)) => {
            let [a, b] = &add.input[..] else { return None };
            let (mm, bias) = if inits.contains_key(b) {
                (a, b)
            } else {
                (b, a)
            };
            (mm.clone(), Some(bias.clone()), Some(k))
        }
        None => (name.to_string(), None, None),
    };
    let (k, mm) = node(nodes, prod, &mm_name, "MatMul")?;
    let [a, w] = &mm.input[..] else { return None };
    floats(inits, w).filter(|w| w.shape.len() == 2)?;
    if let Some(b) = &bias {
        floats(inits, b).filter(|b| b.shape.len() == 1)?;
    }
    let mut ks = vec![k];
    ks.extend(add);
    Some((ks, a.clone(), w.clone(), bias))
}

/// `x_k` = `Squeeze(Slice(P', k, k+1, axis 0), 0)`: (node indices, P', k).
fn time_slice(
    nodes: &[NodeProto],
    prod: &Producers,
    inits: &HashMap<String, Value>,
    name: &str,
) -> Option<(Vec<usize>, String, i64)> {
    let (sq, squeeze) = node(nodes, prod, name, "Squeeze")?;
    if ints(inits, squeeze.input.get(1)?)? != [0] {
        return None;
    }
    let (sl, slice) = node(nodes, prod, &squeeze.input[0], "Slice")?;
    let start = ints(inits, slice.input.get(1)?)?;
    let end = ints(inits, slice.input.get(2)?)?;
    let axes = ints(inits, slice.input.get(3)?)?;
    let steps_ok = match slice.input.get(4) {
        None => true,
        Some(s) => ints(inits, s)? == [1],
    };
    match (&start[..], &end[..], &axes[..]) {
        ([s], [e], [0]) if *e == s + 1 && steps_ok => {
            Some((vec![sq, sl], slice.input[0].clone(), *s))
        }
        _ => None,
    }
}

/// Whether `name` is `Slice(P, -1, <= -T, axis 0, step -1)`: Some((node, P)).
fn flip(
    nodes: &[NodeProto],
    prod: &Producers,
    inits: &HashMap<String, Value>,
    name: &str,
) -> Option<(usize, String)> {
    let (k, s) = node(nodes, prod, name, "Slice")?;
    let start = ints(inits, s.input.get(1)?)?;
    let end = ints(inits, s.input.get(2)?)?;
    let axes = ints(inits, s.input.get(3)?)?;
    let steps = ints(inits, s.input.get(4)?)?;
    match (&start[..], &end[..], &axes[..], &steps[..]) {
        ([-1], [e], [0], [-1]) if *e <= i64::from(i32::MIN) => Some((k, s.input[0].clone())),
        _ => None,
    }
}

/// The chain whose step activations are `acts` (in step order).
fn chain(
    nodes: &[NodeProto],
    prod: &Producers,
    inits: &HashMap<String, Value>,
    acts: &[usize],
) -> Option<Chain> {
    let relu = nodes[acts[0]].op_type() == "Relu";
    let mut ks: Vec<usize> = acts.to_vec();
    let (mut w_hh_t, mut b_hh, mut h0, mut p_src, mut const_c) = (None, None, None, None, None);
    for (k, &a) in acts.iter().enumerate() {
        if nodes[a].op_type() != nodes[acts[0]].op_type() {
            return None;
        }
        let (add_k, add) = node(nodes, prod, nodes[a].input.first()?, "Add")?;
        ks.push(add_k);
        let [u, v] = &add.input[..] else { return None };
        // Which operand is the time slice.
        let (xs, rec) = match time_slice(nodes, prod, inits, v) {
            Some(t) => (t, u),
            None => (time_slice(nodes, prod, inits, u)?, v),
        };
        if xs.2 != k as i64 {
            return None;
        }
        ks.extend(&xs.0);
        if *p_src.get_or_insert_with(|| xs.1.clone()) != xs.1 {
            return None;
        }
        if k == 0 && inits.contains_key(rec) {
            const_c = Some(rec.clone());
            continue;
        }
        let (lk, prev, w, b) = linear(nodes, prod, inits, rec)?;
        ks.extend(lk);
        match k {
            0 => h0 = Some(prev),
            _ if prev != nodes[acts[k - 1]].output[0] => return None,
            _ => {}
        }
        if *w_hh_t.get_or_insert_with(|| w.clone()) != w
            || *b_hh.get_or_insert_with(|| b.clone()) != b
        {
            return None;
        }
    }
    let p_src = p_src?;
    let (reverse, p) = match flip(nodes, prod, inits, &p_src) {
        Some((k, p)) => {
            ks.push(k);
            (true, p)
        }
        None => (false, p_src),
    };
    let (lk, x, w_ih_t, b_ih) = linear(nodes, prod, inits, &p)?;
    ks.extend(lk);
    // T = 1 with a zero state has no recurrent product to read W_hh from.
    let w_hh_t = w_hh_t?;
    let b_hh = b_hh.flatten();
    // Shapes that make an RNN: W_ihᵀ [I, H], W_hhᵀ [H, H], biases [H].
    let h = floats(inits, &w_hh_t)?.shape[0];
    let sized = |b: &Option<String>| {
        b.as_ref()
            .is_none_or(|b| floats(inits, b).is_some_and(|a| a.shape == [h]))
    };
    if h == 0
        || floats(inits, &w_hh_t)?.shape != [h, h]
        || floats(inits, &w_ih_t)?.shape[1] != h
        || !sized(&b_ih)
        || !sized(&b_hh)
    {
        return None;
    }
    if let Some(c) = const_c {
        // C must be b_hh broadcast (zero without a bias): h0 = 0.
        let c = floats(inits, &c)?;
        let want = b_hh.as_ref().map(|b| floats(inits, b)).unwrap_or(None);
        if c.shape.len() != 3 || c.shape[0] != 1 || c.shape[2] != h {
            return None;
        }
        let ok = c.data.chunks(h).all(|row| match want {
            Some(b) => row == &b.data[..],
            None => row.iter().all(|&v| v == 0.0),
        });
        if !ok {
            return None;
        }
    }
    let last = nodes[*acts.last()?].output.first()?.clone();
    Some(Chain {
        nodes: ks,
        x,
        h0,
        w_ih_t,
        b_ih,
        w_hh_t,
        b_hh,
        relu,
        reverse,
        y: None,
        last,
    })
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn transposed(a: &Array<f32>) -> Array<f32> {
    let (r, c) = (a.shape[0], a.shape[1]);
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = a.data[i * c + j];
        }
    }
    Array {
        shape: vec![1, c, r],
        data,
    }
}

/// Replaces each unrolled `nn.RNN` chain of `nodes` by an `RNN` node (see the module comment),
/// adding its weights to `inits`. Returns whether anything changed.
pub(crate) fn lift(nodes: &mut Vec<NodeProto>, inits: &mut HashMap<String, Value>) -> bool {
    if !nodes.iter().any(|n| n.op_type() == "MatMul") {
        return false;
    }
    let prod: Producers = nodes
        .iter()
        .enumerate()
        .flat_map(|(k, n)| n.output.iter().map(move |o| (o.as_str(), k)))
        .collect();
    // Each step's predecessor: the act whose output feeds its recurrent MatMul.
    let is_act = |k: usize| {
        let n = &nodes[k];
        matches!(n.op_type(), "Tanh" | "Relu") && n.input.len() == 1 && n.output.len() == 1
    };
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut has_prev = HashSet::new();
    for k in (0..nodes.len()).filter(|&k| is_act(k)) {
        let Some((_, add)) = nodes[k]
            .input
            .first()
            .and_then(|i| node(nodes, &prod, i, "Add"))
        else {
            continue;
        };
        for operand in &add.input {
            if let Some((_, prev, _, _)) = linear(nodes, &prod, inits, operand) {
                if let Some(&p) = prod.get(prev.as_str()) {
                    if is_act(p) {
                        next.insert(p, k);
                        has_prev.insert(k);
                    }
                }
            }
        }
    }
    let mut chains = Vec::new();
    for start in (0..nodes.len()).filter(|&k| is_act(k) && !has_prev.contains(&k)) {
        let mut acts = vec![start];
        while let Some(&n) = next.get(acts.last().unwrap_or(&start)) {
            if acts.contains(&n) {
                break;
            }
            acts.push(n);
        }
        let Some(mut c) = chain(nodes, &prod, inits, &acts) else {
            continue;
        };
        // Y: a Concat on axis 0 of exactly the states, in time order.
        let outs: Vec<&str> = acts.iter().map(|&a| nodes[a].output[0].as_str()).collect();
        let mut order: Vec<&str> = outs.clone();
        if c.reverse {
            order.reverse();
        }
        if let Some((k, n)) = nodes.iter().enumerate().find(|(_, n)| {
            n.op_type() == "Concat"
                && n.input.iter().map(String::as_str).eq(order.iter().copied())
                && n.attribute.iter().any(|a| a.name() == "axis" && a.i() == 0)
        }) {
            c.nodes.push(k);
            c.y = n.output.first().cloned();
        }
        chains.push(c);
    }
    let mut removed: HashSet<usize> = HashSet::new();
    let mut lifted = Vec::new();
    for c in chains {
        // Nothing inside the chain may be read outside it, except Y and the last state.
        let inside: HashSet<usize> = c.nodes.iter().copied().collect();
        if inside.iter().any(|k| removed.contains(k)) {
            continue;
        }
        let private: HashSet<&str> = inside
            .iter()
            .flat_map(|&k| nodes[k].output.iter().map(String::as_str))
            .filter(|o| Some(*o) != c.y.as_deref() && *o != c.last)
            .collect();
        let leaks = nodes.iter().enumerate().any(|(k, n)| {
            !inside.contains(&k) && n.input.iter().any(|i| private.contains(i.as_str()))
        });
        if leaks {
            continue;
        }
        removed.extend(&inside);
        lifted.push(c);
    }
    if lifted.is_empty() {
        return false;
    }
    let mut new_nodes: Vec<(usize, Vec<NodeProto>)> = Vec::new();
    for (j, c) in lifted.iter().enumerate() {
        let (Some(w_ih_t), Some(w_hh_t)) = (floats(inits, &c.w_ih_t), floats(inits, &c.w_hh_t))
        else {
            continue;
        };
        let h = w_hh_t.shape[1];
        let (w, r) = (transposed(w_ih_t), transposed(w_hh_t));
        let bias = |b: &Option<String>| {
            b.as_ref()
                .and_then(|b| floats(inits, b))
                .map_or(vec![0.0; h], |a| a.data.clone())
        };
        let has_bias = c.b_ih.is_some() || c.b_hh.is_some();
        let mut b = bias(&c.b_ih);
        b.extend(bias(&c.b_hh));
        let name = |s: &str| format!("recur.lifted{j}.{s}");
        inits.insert(name("W"), Value::F32(w));
        inits.insert(name("R"), Value::F32(r));
        if has_bias {
            let b = Array {
                shape: vec![1, 2 * h],
                data: b,
            };
            inits.insert(name("B"), Value::F32(b));
        }
        inits.insert(
            name("axes"),
            Value::I64(Array {
                shape: vec![1],
                data: vec![1],
            }),
        );
        let y_full = name("Y");
        let rnn = NodeProto {
            input: vec![
                c.x.clone(),
                name("W"),
                name("R"),
                if has_bias { name("B") } else { String::new() },
                String::new(),
                c.h0.clone().unwrap_or_default(),
            ],
            output: vec![y_full.clone(), c.last.clone()],
            name: Some(name("RNN")),
            op_type: Some("RNN".into()),
            attribute: vec![
                attr_int("hidden_size", h as i64),
                attr_str("direction", if c.reverse { "reverse" } else { "forward" }),
                AttributeProto {
                    name: Some("activations".into()),
                    r#type: Some(AttributeType::Strings as i32),
                    strings: vec![if c.relu {
                        b"Relu".to_vec()
                    } else {
                        b"Tanh".to_vec()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut group = vec![rnn];
        if let Some(y) = &c.y {
            group.push(NodeProto {
                input: vec![y_full, name("axes")],
                output: vec![y.clone()],
                name: Some(name("Squeeze")),
                op_type: Some("Squeeze".into()),
                ..Default::default()
            });
        }
        // Before the first node left that reads what the group defines (its inputs come
        // before the chain, so before that node too).
        let defined: HashSet<&str> = group
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .collect();
        let at = (0..nodes.len())
            .find(|k| {
                !removed.contains(k) && nodes[*k].input.iter().any(|i| defined.contains(i.as_str()))
            })
            .unwrap_or(nodes.len());
        new_nodes.push((at, group));
    }
    let mut out = Vec::with_capacity(nodes.len());
    for (k, n) in nodes.drain(..).enumerate() {
        for (_, g) in new_nodes.iter_mut().filter(|(at, _)| *at == k) {
            out.append(g);
        }
        if !removed.contains(&k) {
            out.push(n);
        }
    }
    for (_, g) in new_nodes.iter_mut() {
        out.append(g);
    }
    *nodes = out;
    true
}
