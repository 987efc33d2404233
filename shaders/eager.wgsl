// Generic elementwise operations on strided 2-D blocks, one dispatch each: the building
// blocks of the bench's "general tensor library" baseline, which runs an LSTM as a host loop
// of separate matmul and elementwise dispatches per time step. recur's own RNN path does not
// use them.
//
//   d[d_off + r*d_ld + c] = op(a[a_off + r*a_ld + c] (, b[b_off + r*b_ld + c])),  r < rows, c < cols

struct EwParams {
    rows: u32,
    cols: u32,
    a_off: u32,
    a_ld: u32,
    b_off: u32,
    b_ld: u32,
    d_off: u32,
    d_ld: u32,
    // binary: 0 add, 1 mul; unary: 0 sigmoid, 1 tanh, 2 y*(1-y), 3 1-y*y, 4 copy
    op: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: EwParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> d: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn ew_binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= p.rows * p.cols {
        return;
    }
    let r = idx / p.cols;
    let c = idx % p.cols;
    let x = a[p.a_off + r * p.a_ld + c];
    let y = b[p.b_off + r * p.b_ld + c];
    var v: f32;
    if p.op == 0u {
        v = x + y;
    } else {
        v = x * y;
    }
    d[p.d_off + r * p.d_ld + c] = v;
}

@group(0) @binding(8) var<uniform> q: EwParams;
@group(0) @binding(9) var<storage, read> ua: array<f32>;
@group(0) @binding(10) var<storage, read_write> ud: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn ew_unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= q.rows * q.cols {
        return;
    }
    let r = idx / q.cols;
    let c = idx % q.cols;
    let x = ua[q.a_off + r * q.a_ld + c];
    var v: f32;
    switch q.op {
        case 0u: {
            v = 1.0 / (1.0 + exp(-x));
        }
        case 1u: {
            v = tanh(clamp(x, -15.0, 15.0));
        }
        case 2u: {
            v = x * (1.0 - x);
        }
        case 3u: {
            v = 1.0 - x * x;
        }
        default: {
            v = x;
        }
    }
    ud[q.d_off + r * q.d_ld + c] = v;
}
