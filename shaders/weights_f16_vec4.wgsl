// The forward step kernels' parameters (binding 1) stored as f16, four to a vec2<u32> (the
// words of util.wgsl's pack_f16), read into f32: the f16-weight build of step_vec4.wgsl
// (weights_f32_vec4.wgsl is the other). Needs no SHADER_F16 feature; offsets are unchanged.

@group(0) @binding(1) var<storage, read> params: array<vec2<u32>>;

fn param4(q: u32) -> vec4<f32> {
    let w = params[q];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
