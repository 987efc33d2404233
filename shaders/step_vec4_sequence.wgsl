// The whole-sequence entries of step_vec4.wgsl (its plain builds): every step of a (layer,
// direction) in one workgroup, the plan's per-step parameters in a storage array at binding 7
// or 16, in the order the steps run, and a storage barrier between steps. For steps small
// enough that one workgroup computes them faster than a CPU adapter dispatches them: within
// one workgroup the barrier is portable, across workgroups nothing orders the steps.

@group(0) @binding(7) var<storage, read> fwd_steps: array<StepParams>;
@group(0) @binding(16) var<storage, read> bwd_steps: array<StepBackParams>;

// Invocations of the sequence kernels' one workgroup.
const SEQ_WG: u32 = 16u;

// Blocks of (4 units, NB rows) in a step, and the first unit and row of block v.
fn block_count(hidden: u32, batch: u32) -> u32 {
    return (hidden / 4u) * ((batch + NB - 1u) / NB);
}

fn block_unit(v: u32, hidden: u32) -> u32 {
    return (v % (hidden / 4u)) * 4u;
}

fn block_row(v: u32, hidden: u32) -> u32 {
    return (v / (hidden / 4u)) * NB;
}


@compute @workgroup_size(16, 1, 1)
fn rnn_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            rnn_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn lstm_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            lstm_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn gru_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            gru_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn rnn_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            rnn_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn lstm_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            lstm_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn gru_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            gru_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}
