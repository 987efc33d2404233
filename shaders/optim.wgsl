// Optimizers over one flat parameter buffer: one dispatch per buffer and step, one thread per
// element, with PyTorch's formulas (torch.optim, single-tensor path, maximize=False).
//
// Elements i < n of params (read_write) and grads (read only: the optimizer never changes a
// gradient, as in torch). Scalars derived from the hyperparameters (1 - beta, 1 - dampening,
// 1 - lr * weight_decay) and from the step count (bias corrections) are computed on the host
// in f64 and rounded to f32 once, as torch does with its Python-float scalars; they arrive in
// the uniform with the step count itself.
//
// sgd_step (uniform at 0), state buf = momentum buffer:
//   g = grad + weight_decay * p
//   if HAS_MOMENTUM: buf = FIRST ? g : momentum * buf + (1 - dampening) * g
//                    g = NESTEROV ? g + momentum * buf : buf
//   p = p - lr * g
//
// adam_step (uniform at 8), state m = exp_avg, v = exp_avg_sq, step t >= 1:
//   DECOUPLED (AdamW): p = p * decay, g = grad        (decay = 1 - lr * weight_decay)
//   else (Adam):       g = grad + weight_decay * p
//   m = m + (1 - beta1) * (g - m)              (torch's lerp)
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t).
//
// Elements are spread over (x, y) workgroups when x would pass 65535.

const WG: u32 = 256u;

// Flag bits of OptimParams.flags, as in src/kernels/optim.rs::flags.
const HAS_MOMENTUM: u32 = 1u;
const NESTEROV: u32 = 2u;
const FIRST: u32 = 4u;
const DECOUPLED: u32 = 1u;

struct OptimParams {
    n: u32,
    step: u32,
    // sgd: bit 0 HAS_MOMENTUM, bit 1 NESTEROV, bit 2 FIRST; adam: bit 0 DECOUPLED
    flags: u32,
    _pad0: u32,
    lr: f32,
    // sgd: momentum; adam: beta1
    a: f32,
    // sgd: dampening; adam: beta2
    b: f32,
    // adam: eps
    eps: f32,
    weight_decay: f32,
    // adam: lr / (1 - beta1^t)
    step_size: f32,
    // adam: sqrt(1 - beta2^t)
    bc2_sqrt: f32,
    // adamw: 1 - lr * weight_decay
    decay: f32,
    // sgd: 1 - dampening; adam: 1 - beta1 (each rounded once from f64 on the host, as torch
    // rounds its Python-float scalars)
    one_minus_a: f32,
    // adam: 1 - beta2
    one_minus_b: f32,
    _pad1: u32,
    _pad2: u32,
}

// ---------------------------------------------------------------------------------------
// sgd_step: bindings 0..3

@group(0) @binding(0) var<uniform> sp: OptimParams;
@group(0) @binding(1) var<storage, read_write> s_params: array<f32>;
@group(0) @binding(2) var<storage, read> s_grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_buf: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= sp.n {
        return;
    }
    let p = s_params[i];
    var g = s_grads[i] + sp.weight_decay * p;
    if (sp.flags & HAS_MOMENTUM) != 0u {
        var buf = g;
        if (sp.flags & FIRST) == 0u {
            buf = sp.a * s_buf[i] + sp.one_minus_a * g;
        }
        s_buf[i] = buf;
        if (sp.flags & NESTEROV) != 0u {
            g = g + sp.a * buf;
        } else {
            g = buf;
        }
    }
    s_params[i] = p - sp.lr * g;
}

// ---------------------------------------------------------------------------------------
// adam_step: bindings 8..12

@group(0) @binding(8) var<uniform> ap: OptimParams;
@group(0) @binding(9) var<storage, read_write> a_params: array<f32>;
@group(0) @binding(10) var<storage, read> a_grads: array<f32>;
@group(0) @binding(11) var<storage, read_write> a_m: array<f32>;
@group(0) @binding(12) var<storage, read_write> a_v: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= ap.n {
        return;
    }
    var p = a_params[i];
    var g = a_grads[i];
    if (ap.flags & DECOUPLED) != 0u {
        p = p * ap.decay;
    } else {
        g = g + ap.weight_decay * p;
    }
    let m = a_m[i] + ap.one_minus_a * (g - a_m[i]);
    let v = ap.b * a_v[i] + ap.one_minus_b * g * g;
    a_m[i] = m;
    a_v[i] = v;
    let denom = sqrt(v) / ap.bc2_sqrt + ap.eps;
    a_params[i] = p - ap.step_size * (m / denom);
}
