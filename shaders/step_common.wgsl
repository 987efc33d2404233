// Shared by the step files (prepended to each in the shader registry, src/gpu/kernel.rs): the
// per-step parameter structs, mirrored by src/kernels/step.rs::{StepParams, StepBackParams},
// the activations and the cells' backward arithmetic.

struct StepParams {
    batch: u32,
    hidden: u32,
    gx_off: u32,
    hprev_off: u32,
    hout_off: u32,
    cprev_off: u32,
    cout_off: u32,
    y_off: u32,
    y_stride: u32,
    act_off: u32,
    whh_off: u32,
    bhh_off: u32,
    // bit 0: SAVE activations, bit 1: HAS_BIAS, bit 2: RELU (rnn only), bit 3: PROJ (lstm only)
    flags: u32,
    // width of h_prev and of W_hh's rows: H, or P for an LSTM with a projection
    state: u32,
    _pad0: u32,
    _pad1: u32,
}

struct StepBackParams {
    batch: u32,
    hidden: u32,
    dy_off: u32,
    dy_stride: u32,
    dg_off: u32,
    dgn_off: u32,
    act_off: u32,
    hprev_off: u32,
    hout_off: u32,
    cprev_off: u32,
    cout_off: u32,
    whh_off: u32,
    carry_off: u32,
    // bit 0: HAS_NEXT (dg_next is valid), bit 2: RELU (rnn only), bit 3: PROJ (lstm only)
    flags: u32,
    // lstm PROJ: rows of the recurrent product (P)
    grows: u32,
    _pad0: u32,
}

// Flag bits of StepParams.flags and StepBackParams.flags, as in src/kernels/step.rs::flags
// (asserted equal by tests/mirrors.rs).
const SAVE: u32 = 1u;
const HAS_NEXT: u32 = 1u;
const HAS_BIAS: u32 = 2u;
const RELU: u32 = 4u;
const PROJ: u32 = 8u;

// Side of the square workgroup tile of the tiled step kernels (src/kernels/step.rs::TILE).
const T16: u32 = 16u;
// Values in one tile of workgroup memory: 16 rows padded to 17 against bank conflicts.
const TILE_LEN: u32 = 272u;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// tanh saturates to +-1 in f32 past |x| = 9; clamping keeps exp-based implementations from
// producing inf/inf.
fn tanh_c(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// The cells' backward arithmetic for one unit, shared by the per-unit kernels (rnn.wgsl,
// lstm.wgsl, gru.wgsl) and step_resident_backward.wgsl; step_vec4.wgsl does the same on
// vec4s of units.

// The RNN's pre-activation gradient from dh and the step's output h.
fn rnn_cell_grad(dh: f32, h: f32, relu: bool) -> f32 {
    if relu {
        return select(0.0, dh, h > 0.0);
    }
    return dh * (1.0 - h * h);
}

// The LSTM's gate gradients (i, f, g, o in x, y, z, w) and dc, the cell state's gradient
// (the step before carries dc * f).
struct LstmCellGrad {
    dg: vec4<f32>,
    dc: f32,
}

// From dh, the carried dc_in, the activations (i, f, g, o), c and c_prev.
fn lstm_cell_grad(dh: f32, dc_in: f32, act: vec4<f32>, c: f32, c_prev: f32) -> LstmCellGrad {
    let i = act.x;
    let f = act.y;
    let gg = act.z;
    let o = act.w;
    let tc = tanh_c(c);
    let dc = dc_in + dh * o * (1.0 - tc * tc);
    let dg = vec4<f32>(dc * gg * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                       dc * i * (1.0 - gg * gg), dh * tc * o * (1.0 - o));
    return LstmCellGrad(dg, dc);
}

// The GRU's pre-activation gradients (r, z, n in x, y, z) from dh, the saved (r, z, n,
// W_hn h + b_hn) and h_prev; dg_h's n row is z's times r, and the step before carries dh * z.
fn gru_cell_grad(dh: f32, act: vec4<f32>, h_prev: f32) -> vec3<f32> {
    let r = act.x;
    let z = act.y;
    let n = act.z;
    let ghn = act.w;
    let dn = dh * (1.0 - z);
    let dz = dh * (h_prev - n);
    let dan = dn * (1.0 - n * n);
    let dar = dan * ghn * r * (1.0 - r);
    let daz = dz * z * (1.0 - z);
    return vec3<f32>(dar, daz, dan);
}
