// Shared by the kernels for CPU adapters whose subgroups are their SIMD rows of 8 lanes
// (matmul_subgroup.wgsl, step_vec4_product_sg.wgsl; prepended by the shader registry): a
// subgroup's lanes own the same 8 rows of a product, each lane loads one row's operand and
// lanes8 hands all 8 to every lane (subgroupBroadcast, a register shuffle where a load would
// be a loop over the lanes). The 8 rows are written out as statements on constant indices:
// written as loops, the accumulators leave the registers (5x slower on lavapipe).

// Lanes of a subgroup.
const LANES: u32 = 8u;

// Lane i's v, for i = 0..7.
fn lanes8(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u),
        subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
        subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

// acc[r] += av[r][0] * b0 + av[r][1] * b1 + av[r][2] * b2 + av[r][3] * b3 for the 8 rows r
// (av[r]: 4 k of row r, e.g. lanes8 of each lane's row).
fn rows_kb(av: array<vec4<f32>, 8>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
           acc_in: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    var acc = acc_in;
    acc[0] = kb(av[0], b0, b1, b2, b3, acc[0]);
    acc[1] = kb(av[1], b0, b1, b2, b3, acc[1]);
    acc[2] = kb(av[2], b0, b1, b2, b3, acc[2]);
    acc[3] = kb(av[3], b0, b1, b2, b3, acc[3]);
    acc[4] = kb(av[4], b0, b1, b2, b3, acc[4]);
    acc[5] = kb(av[5], b0, b1, b2, b3, acc[5]);
    acc[6] = kb(av[6], b0, b1, b2, b3, acc[6]);
    acc[7] = kb(av[7], b0, b1, b2, b3, acc[7]);
    return acc;
}

fn kb(av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
      acc: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2,
        fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc))));
}

// acc[r] += (dot(av[r], b0), dot(av[r], b1), dot(av[r], b2), dot(av[r], b3)), av as in
// rows_kb.
fn rows_dot(av: array<vec4<f32>, 8>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
            acc_in: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    var acc = acc_in;
    acc[0] += dots(av[0], b0, b1, b2, b3);
    acc[1] += dots(av[1], b0, b1, b2, b3);
    acc[2] += dots(av[2], b0, b1, b2, b3);
    acc[3] += dots(av[3], b0, b1, b2, b3);
    acc[4] += dots(av[4], b0, b1, b2, b3);
    acc[5] += dots(av[5], b0, b1, b2, b3);
    acc[6] += dots(av[6], b0, b1, b2, b3);
    acc[7] += dots(av[7], b0, b1, b2, b3);
    return acc;
}

fn dots(av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
}
