// Shared by rnn.wgsl, lstm.wgsl and gru.wgsl (prepended to each in the shader registry,
// src/kernels/mod.rs): the per-step parameter structs, mirrored by
// src/kernels/step.rs::{StepParams, StepBackParams}, and the activations.

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
