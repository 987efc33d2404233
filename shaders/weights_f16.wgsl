// The forward step kernels' parameters (binding 1) stored as f16, two to a u32 word
// (pack2x16float's order: element 2w in the low half, 2w + 1 in the high half), read into f32:
// the f16-weight build of rnn.wgsl, lstm.wgsl and gru.wgsl (weights_f32.wgsl is the other).
// unpack2x16float is core WGSL, so this build needs no SHADER_F16 feature. The buffer is the
// whole flat parameter vector packed by util.wgsl's pack_f16: offsets are unchanged.

@group(0) @binding(1) var<storage, read> params: array<u32>;

fn param(i: u32) -> f32 {
    return unpack2x16float(params[i >> 1u])[i & 1u];
}
