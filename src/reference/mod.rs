//! The CPU reference: the same math as the GPU kernels, in f64, written plainly. It is the
//! oracle every kernel is tested against, and its gradients are checked by finite differences
//! (`tests/reference_gradcheck.rs`).
//!
//! Conventions (PyTorch's; the layers of the crate are listed in `src/lib.rs` and the README):
//!
//! ```text
//! Sizes      T = seq_len, B = batch, I = input_size, H = hidden_size,
//!            L = num_layers, D = 2 if bidirectional else 1, G = gates (1 RNN, 4 LSTM, 3 GRU).
//! Layout     everything row-major and time-major:
//!              x  (T, B, I)      y  (T, B, D*H), features [forward H | reverse H]
//!              h0, c0, hn, cn    (L*D, B, H), slot layer*D + direction
//!            cfg.batch_first is IGNORED here: a batch-first caller transposes x and y itself.
//! Params     one flat &[f64] in ParamLayout::new(cfg) order: for each layer, for each
//!            direction: weight_ih [G*H, in_l], weight_hh [G*H, H], then (if cfg.bias)
//!            bias_ih [G*H], bias_hh [G*H]. in_0 = I, in_l = D*H above. Weights are stored
//!            [out, in]: a projection is x · Wᵀ + b.
//! Cells      gx = x_t · W_ihᵀ + b_ih, gh = h_prev · W_hhᵀ + b_hh, blocks of H columns:
//!   RNN      h = tanh(gx + gh) or relu(gx + gh)        (relu'(0) = 0)
//!   LSTM     [i | f | g | o] = σ, σ, tanh, σ of gx + gh
//!            c = f*c_prev + i*g,   h = o*tanh(c)
//!   GRU      [r | z | n]: r = σ(gx_r + gh_r), z = σ(gx_z + gh_z),
//!            n = tanh(gx_n + r*gh_n)   (b_hn stays inside the r product),
//!            h = (1-z)*n + z*h_prev
//! Direction  0 visits t = 0..T-1, 1 visits t = T-1..0 with the *_reverse weights; both
//!            start from their own h0/c0 slot; hn of the reverse direction is its state after
//!            t = 0. Layer l > 0 reads layer l-1's full (T, B, D*H) output.
//! Backward   gradients of L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn). Per step the cell
//!            turns dh_t (= dy[t] slice + carried dh) into dgx_t, dgh_t and the carried
//!            dh_prev (and dc_prev); after the time loop, per (layer, direction):
//!              dW_ih = dGxᵀ · X,  db_ih = Σ dGx,  dW_hh = dGhᵀ · H_prev,  db_hh = Σ dGh,
//!              dX += dGx · W_ih   (dX of layer l is dy of layer l-1).
//! ```
//!
//! Files: [`mod@matmul`] (the one matrix product), [`cells`] (one step of each cell, forward and
//! backward), [`stack`] (layers x directions over a sequence), [`train`] (embedding, linear,
//! losses, optimizers, clipping), [`variant`] (ONNX's general cells, forward only).

pub mod attention;
pub mod cells;
pub mod matmul;
pub mod stack;
pub mod train;
pub mod variant;

pub use cells::{
    gru_step_backward, gru_step_forward, lstm_step_backward, lstm_step_forward, rnn_step_backward,
    rnn_step_forward, sigmoid, StepGrads, StepOut,
};
pub use matmul::{matmul, sum_rows};
pub use stack::{rnn_backward, rnn_forward, DirCache, RefForward, RefGrads};
