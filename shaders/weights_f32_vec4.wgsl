// The forward step kernels' parameters (binding 1) in f32 as vec4s, for step_vec4.wgsl
// (prepended by the shader registry; weights_f16_vec4.wgsl is the other build). `param4(q)`
// is elements 4q .. 4q+3 of the flat parameters.

@group(0) @binding(1) var<storage, read> params: array<vec4<f32>>;

fn param4(q: u32) -> vec4<f32> {
    return params[q];
}
