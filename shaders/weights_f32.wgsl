// The forward step kernels' parameters (binding 1) in f32, for rnn.wgsl, lstm.wgsl and
// gru.wgsl (prepended by the shader registry, src/gpu/kernel.rs; weights_f16.wgsl is the
// other build). `param(i)` is element i of the flat parameters (state_dict order).

@group(0) @binding(1) var<storage, read> params: array<f32>;

fn param(i: u32) -> f32 {
    return params[i];
}
