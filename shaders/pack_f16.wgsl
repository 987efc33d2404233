// The f16 copy of the flat parameters that the f16-weight builds of the step kernels read
// (weights_f16.wgsl, weights_f16_vec4.wgsl), made once per recording, never per step:
//   words[w] = f16(src[2w]) | f16(src[2w + 1]) << 16,  w < p.words
// (pack2x16float's order and rounding). Elements past the end of src pack as zero. A file of
// its own: pack2x16float needs the adapter's SHADER_F16_IN_F32 downlevel flag, which the
// other kernels must not.

struct PackParams {
    words: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> words: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn pack_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = gid.x + gid.y * nwg.x * 64u;
    if w >= p.words {
        return;
    }
    let n = arrayLength(&src);
    var v = vec2<f32>(0.0);
    if 2u * w < n {
        v.x = src[2u * w];
    }
    if 2u * w + 1u < n {
        v.y = src[2u * w + 1u];
    }
    words[w] = pack2x16float(v);
}
