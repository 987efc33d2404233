// The general forward step of ONNX's RNN, GRU and LSTM cells: everything the fast kernels
// (rnn.wgsl, lstm.wgsl, gru.wgsl) do not compute, in one kernel driven by its uniform. It is
// recorded only for a node that needs it (src/rnn/variant.rs); inference only, no SAVE.
//
// Options (OnnxStepParams, mirrored by src/kernels/step_onnx.rs):
//   cell         CELL_RNN, CELL_LSTM (gates [i | f | g | o]) or CELL_GRU ([r | z | n]),
//                recur's (PyTorch's) gate order: ONNX's is reordered at load time
//   act_f/g/h    ONNX's activation slots (f: gates, g: candidate, h: LSTM output), each an
//                ACT_* code with its alpha and beta
//   CLIP         every pre-activation clamped to [-clip, clip] before its activation
//   PEEPHOLE     LSTM: i and f add P_i*c_prev and P_f*c_prev, o adds P_o*c (peep[peep_off..]
//                holds [P_i | P_o | P_f], ONNX's order)
//   INPUT_FORGET LSTM: f = 1 - i
//   RESET_BEFORE GRU linear_before_reset = 0: n = g(gx_n + W_hn (r*h_prev) + b_hn). The
//                product needs r of every unit first, so a step is two dispatches:
//                onnx_gru_reset_forward writes rh = r*h_prev, then onnx_step_forward reads it.
// The bias b_hh (HAS_BIAS) is added to the recurrent product; gx holds x·W_ihᵀ + b_ih.
// One invocation a (row, unit), index b*H + j (folded over y past 65535 workgroups), scalar
// loops over k: these are rare cells, kept simple rather than fast.
//
//   RNN   h = f(clip(gx + W_hh h_prev + b_hh))
//   LSTM  i = f(clip(pre_i + P_i c_prev)), f = f(clip(pre_f + P_f c_prev)) or 1 - i,
//         g = g(clip(pre_g)), c = f c_prev + i g, o = f(clip(pre_o + P_o c)), h = o h(c)
//   GRU   r = f(clip(pre_r)), z = f(clip(pre_z)), n = g(clip(gx_n + r*(W_hn h_prev + b_hn)))
//         or (RESET_BEFORE) g(clip(gx_n + W_hn (r*h_prev) + b_hn)); h = (1-z) n + z h_prev

struct OnnxStepParams {
    batch: u32,
    hidden: u32,
    gx_off: u32,
    hprev_off: u32,
    hout_off: u32,
    cprev_off: u32,
    cout_off: u32,
    y_off: u32,
    y_stride: u32,
    whh_off: u32,
    bhh_off: u32,
    peep_off: u32,
    cell: u32,
    flags: u32,
    clip: f32,
    act_f: u32,
    act_g: u32,
    act_h: u32,
    alpha_f: f32,
    alpha_g: f32,
    alpha_h: f32,
    beta_f: f32,
    beta_g: f32,
    beta_h: f32,
}

// OnnxStepParams.cell (src/kernels/step_onnx.rs::cell).
const CELL_RNN: u32 = 0u;
const CELL_LSTM: u32 = 1u;
const CELL_GRU: u32 = 2u;

// Flag bits beside HAS_BIAS (step_common.wgsl), as in src/kernels/step_onnx.rs::flags.
const CLIP: u32 = 16u;
const PEEPHOLE: u32 = 32u;
const INPUT_FORGET: u32 = 64u;
const RESET_BEFORE: u32 = 128u;

// Activation codes, as src/kernels/step_onnx.rs::ActivationKind.
const ACT_RELU: u32 = 0u;
const ACT_TANH: u32 = 1u;
const ACT_SIGMOID: u32 = 2u;
const ACT_AFFINE: u32 = 3u;
const ACT_LEAKY_RELU: u32 = 4u;
const ACT_THRESHOLDED_RELU: u32 = 5u;
const ACT_SCALED_TANH: u32 = 6u;
const ACT_HARD_SIGMOID: u32 = 7u;
const ACT_ELU: u32 = 8u;
const ACT_SOFTSIGN: u32 = 9u;
const ACT_SOFTPLUS: u32 = 10u;

// Invocations of a workgroup (src/kernels/step_onnx.rs::WORKGROUP).
const ONNX_WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: OnnxStepParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(4) var<storage, read_write> cs: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
// r * h_prev of the active rows, [B, H] (GRU RESET_BEFORE only).
@group(0) @binding(6) var<storage, read_write> rh: array<f32>;
// Peepholes of every (layer, direction), [L*D, 3H] (LSTM PEEPHOLE only).
@group(0) @binding(7) var<storage, read> peep: array<f32>;

fn activate(code: u32, x: f32, alpha: f32, beta: f32) -> f32 {
    switch code {
        case ACT_RELU: {
            return max(x, 0.0);
        }
        case ACT_TANH: {
            return tanh_c(x);
        }
        case ACT_SIGMOID: {
            return sigmoid(x);
        }
        case ACT_AFFINE: {
            return alpha * x + beta;
        }
        case ACT_LEAKY_RELU: {
            return select(alpha * x, x, x >= 0.0);
        }
        case ACT_THRESHOLDED_RELU: {
            return select(0.0, x, x > alpha);
        }
        case ACT_SCALED_TANH: {
            return alpha * tanh_c(beta * x);
        }
        case ACT_HARD_SIGMOID: {
            return clamp(alpha * x + beta, 0.0, 1.0);
        }
        case ACT_ELU: {
            return select(alpha * (exp(min(x, 0.0)) - 1.0), x, x >= 0.0);
        }
        case ACT_SOFTSIGN: {
            return x / (1.0 + abs(x));
        }
        case ACT_SOFTPLUS: {
            // log(1 + e^x) without overflow.
            return max(x, 0.0) + log(1.0 + exp(-abs(x)));
        }
        default: {
            return x;
        }
    }
}

fn act_f(x: f32) -> f32 {
    return activate(p.act_f, x, p.alpha_f, p.beta_f);
}

fn act_g(x: f32) -> f32 {
    return activate(p.act_g, x, p.alpha_g, p.beta_g);
}

fn act_h(x: f32) -> f32 {
    return activate(p.act_h, x, p.alpha_h, p.beta_h);
}

fn clipped(x: f32) -> f32 {
    if (p.flags & CLIP) != 0u {
        return clamp(x, -p.clip, p.clip);
    }
    return x;
}

// Row `row` of the recurrent weights times h_prev of batch row b (or rh, `reset`), plus b_hh.
fn recurrent(row: u32, b: u32, reset: bool) -> f32 {
    let H = p.hidden;
    let w0 = p.whh_off + row * H;
    var acc = 0.0;
    if reset {
        for (var k = 0u; k < H; k++) {
            acc = fma(rh[b * H + k], params[w0 + k], acc);
        }
    } else {
        let hb = p.hprev_off + b * H;
        for (var k = 0u; k < H; k++) {
            acc = fma(hs[hb + k], params[w0 + k], acc);
        }
    }
    if (p.flags & HAS_BIAS) != 0u {
        acc += params[p.bhh_off + row];
    }
    return acc;
}

// GRU RESET_BEFORE, first half of a step: rh[b, j] = r * h_prev[b, j].
@compute @workgroup_size(64, 1, 1)
fn onnx_gru_reset_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = p.hidden;
    let idx = gid.x + gid.y * nwg.x * ONNX_WG;
    if idx >= p.batch * H {
        return;
    }
    let b = idx / H;
    let j = idx % H;
    let r = act_f(clipped(gx[p.gx_off + b * 3u * H + j] + recurrent(j, b, false)));
    rh[b * H + j] = r * hs[p.hprev_off + b * H + j];
}

@compute @workgroup_size(64, 1, 1)
fn onnx_step_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = p.hidden;
    let idx = gid.x + gid.y * nwg.x * ONNX_WG;
    if idx >= p.batch * H {
        return;
    }
    let b = idx / H;
    let j = idx % H;
    let h_prev = hs[p.hprev_off + b * H + j];
    var h: f32;
    if p.cell == CELL_LSTM {
        let x0 = p.gx_off + b * 4u * H + j;
        let c_prev = cs[p.cprev_off + b * H + j];
        let peephole = (p.flags & PEEPHOLE) != 0u;
        var pi = gx[x0] + recurrent(j, b, false);
        if peephole {
            pi += peep[p.peep_off + j] * c_prev;
        }
        let i = act_f(clipped(pi));
        var f: f32;
        if (p.flags & INPUT_FORGET) != 0u {
            f = 1.0 - i;
        } else {
            var pf = gx[x0 + H] + recurrent(H + j, b, false);
            if peephole {
                pf += peep[p.peep_off + 2u * H + j] * c_prev;
            }
            f = act_f(clipped(pf));
        }
        let g = act_g(clipped(gx[x0 + 2u * H] + recurrent(2u * H + j, b, false)));
        let c = f * c_prev + i * g;
        var po = gx[x0 + 3u * H] + recurrent(3u * H + j, b, false);
        if peephole {
            po += peep[p.peep_off + H + j] * c;
        }
        let o = act_f(clipped(po));
        h = o * act_h(c);
        cs[p.cout_off + b * H + j] = c;
    } else if p.cell == CELL_GRU {
        let x0 = p.gx_off + b * 3u * H + j;
        let z = act_f(clipped(gx[x0 + H] + recurrent(H + j, b, false)));
        var pn: f32;
        if (p.flags & RESET_BEFORE) != 0u {
            pn = gx[x0 + 2u * H] + recurrent(2u * H + j, b, true);
        } else {
            let r = act_f(clipped(gx[x0] + recurrent(j, b, false)));
            pn = gx[x0 + 2u * H] + r * recurrent(2u * H + j, b, false);
        }
        let n = act_g(clipped(pn));
        h = (1.0 - z) * n + z * h_prev;
    } else {
        h = act_f(clipped(gx[p.gx_off + b * H + j] + recurrent(j, b, false)));
    }
    hs[p.hout_off + b * H + j] = h;
    y[p.y_off + b * p.y_stride + j] = h;
}
