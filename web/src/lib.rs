//! recur in the browser: WebGPU through wgpu, compiled to wasm32. The page (index.html)
//! trains a character language model live with the library's own trainer
//! ([`recur::train::TextTrainer`], what `recur train` runs), reads its metrics without
//! blocking, samples from it, and writes and reads the checkpoints `recur` writes and reads.
//!
//! Nothing here blocks: every readback is a `map_async` future the page's event loop
//! completes, and a training step awaits the oldest step in flight rather than waiting.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use recur::kernels::sample::Sampling;
use recur::rnn::GradientFlow;
use recur::train::text::BUILT_IN_TEXT;
use recur::train::{CharModelShape, Checkpoint, Clip, OptimizerConfig, TextTrainer, TrainConfig};
use recur::{CellKind, Gpu};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn js(e: recur::Error) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn msg(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// What the page may choose, and the limits it is held to (sizes a browser tab trains in
/// seconds to minutes; the library itself has no such limits).
const LIMITS: [(&str, usize, usize); 4] = [
    ("hidden size", 8, 512),
    ("layers", 1, 3),
    ("sequence length", 2, 256),
    ("batch", 1, 256),
];

fn within(what: &str, v: usize) -> Result<usize, JsValue> {
    let (_, lo, hi) = LIMITS
        .iter()
        .find(|(name, _, _)| *name == what)
        .copied()
        .unwrap_or((what, 1, usize::MAX));
    if v < lo || v > hi {
        return Err(msg(&format!(
            "{what} must be between {lo} and {hi}, not {v}"
        )));
    }
    Ok(v)
}

/// The built-in training text: recur's own sources (what `recur train` trains on without
/// `--data`).
#[wasm_bindgen]
pub fn built_in_text() -> String {
    BUILT_IN_TEXT.to_string()
}

/// One WebGPU device and the model being trained on it.
struct State {
    gpu: Gpu,
    lm: Option<TextTrainer>,
    /// The gradient flow of the last probed step, with that step's number.
    flow: Option<(u64, GradientFlow)>,
}

/// The page's handle: the device and the trainer, shared with the futures it returns. Calls
/// that return a promise must not overlap (the page runs one at a time); one that finds the
/// session busy rejects with "busy" instead of waiting.
///
/// The `RefCell` borrow is the session's lock and is held across awaits on purpose: every
/// access is a `try_borrow`, so an overlapping call is refused, never a panic.
#[wasm_bindgen]
pub struct Session {
    state: Rc<RefCell<State>>,
}

/// Opens the WebGPU device; rejects with a message when the browser has no adapter.
#[wasm_bindgen]
pub async fn open() -> Result<Session, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js)?;
    Ok(Session {
        state: Rc::new(RefCell::new(State {
            gpu,
            lm: None,
            flow: None,
        })),
    })
}

/// Runs `f` on the state in a promise; "busy" when another call holds it.
fn with_state<F, Fut>(state: &Rc<RefCell<State>>, f: F) -> Promise
where
    F: FnOnce(Rc<RefCell<State>>) -> Fut + 'static,
    Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let state = state.clone();
    future_to_promise(async move { f(state).await })
}

fn info_of(gpu: &Gpu, lm: &TextTrainer) -> String {
    let m = &lm.trainer.model.cfg.rnn;
    let st = lm.state();
    serde_json::json!({
        "adapter": adapter_of(gpu),
        "cell": m.cell.to_string(),
        "hidden": m.hidden_size,
        "layers": m.num_layers,
        "embed": m.input_size,
        "seq_len": st.seq_len,
        "batch": st.batch,
        "vocab": lm.vocab.len(),
        "entropy": lm.unigram_entropy(),
        "step": lm.trainer.step_count(),
        "steps_per_epoch": lm.steps_per_epoch(),
        "chars_per_step": lm.tokens_per_step(),
        "lr": lm.trainer.config().optimizer.lr(),
        "params": lm.trainer.model.groups().iter().map(|g| g.params.numel()).sum::<usize>(),
    })
    .to_string()
}

fn adapter_of(gpu: &Gpu) -> String {
    format!("{} ({:?})", gpu.info().name, gpu.info().backend)
}

#[wasm_bindgen]
#[allow(clippy::await_holding_refcell_ref)] // the borrow is the lock: see `Session`
impl Session {
    /// The WebGPU adapter's name.
    pub fn adapter(&self) -> Result<String, JsValue> {
        let st = self.state.try_borrow().map_err(|_| msg("busy"))?;
        Ok(adapter_of(&st.gpu))
    }

    /// Chooses the kernel family for later steps: `true` for the variants without workgroup
    /// memory, faster on a CPU adapter (SwiftShader), which WebGPU does not always report
    /// as one ([`Gpu::set_direct_kernels`]). Results agree either way.
    pub fn set_direct_kernels(&self, direct: bool) -> Result<(), JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| msg("busy"))?;
        st.gpu.set_direct_kernels(direct);
        Ok(())
    }

    /// Whether the kernels without workgroup memory are in use.
    pub fn direct_kernels(&self) -> Result<bool, JsValue> {
        let st = self.state.try_borrow().map_err(|_| msg("busy"))?;
        Ok(st.gpu.prefers_direct_kernels())
    }

    /// Starts a fresh model on `text` (the built-in text when `None`): `cell` (lstm, gru,
    /// rnn), hidden size, layers, window length, batch, Adam learning rate and seed, with
    /// `recur train`'s recipe otherwise (embedding width, clipping at norm 1). Returns the
    /// model's description as JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        text: Option<String>,
        cell: &str,
        hidden: usize,
        layers: usize,
        seq_len: usize,
        batch: usize,
        lr: f64,
        seed: u64,
        log_every: usize,
    ) -> Result<String, JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| msg("busy"))?;
        let cell = CellKind::parse(cell).ok_or_else(|| msg("cell must be lstm, gru or rnn"))?;
        let shape = CharModelShape::with_hidden(
            cell,
            within("hidden size", hidden)?,
            within("layers", layers)?,
        );
        if !(lr > 0.0 && lr <= 0.1) {
            return Err(msg("the learning rate must be in (0, 0.1]"));
        }
        let cfg = TrainConfig {
            optimizer: OptimizerConfig::adam().with_lr(lr),
            clip: Clip::Norm(1.0),
            log_every: log_every.clamp(1, 100),
            max_in_flight: 2,
        };
        let text = text.as_deref().unwrap_or(BUILT_IN_TEXT);
        st.lm = None;
        st.flow = None;
        let lm = TextTrainer::new(
            &st.gpu,
            text,
            shape,
            cfg,
            within("batch", batch)?,
            within("sequence length", seq_len)?,
            seed,
        )
        .map_err(js)?;
        let info = info_of(&st.gpu, &lm);
        st.lm = Some(lm);
        Ok(info)
    }

    /// Continues a `recur train` checkpoint (its bytes) on `text` (the built-in text when
    /// `None`), whose characters must all be in the checkpoint's vocabulary. Returns the
    /// model's description as JSON.
    pub fn load(&self, checkpoint: &[u8], text: Option<String>) -> Result<String, JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| msg("busy"))?;
        let ckpt = Checkpoint::from_bytes(checkpoint, "checkpoint").map_err(js)?;
        let text = text.as_deref().unwrap_or(BUILT_IN_TEXT);
        let lm = TextTrainer::resume(&st.gpu, text, &ckpt).map_err(|e| match e {
            recur::Error::UnknownChar { ch, index } => msg(&format!(
                "the text has {ch:?} (at character {index}), which this checkpoint's \
                 vocabulary lacks: load it with the text it was trained on"
            )),
            e => js(e),
        })?;
        let info = info_of(&st.gpu, &lm);
        st.lm = Some(lm);
        st.flow = None;
        Ok(info)
    }

    /// The model's description as JSON (`null` before [`Session::start`]).
    pub fn info(&self) -> Result<String, JsValue> {
        let st = self.state.try_borrow().map_err(|_| msg("busy"))?;
        Ok(st
            .lm
            .as_ref()
            .map_or("null".into(), |lm| info_of(&st.gpu, lm)))
    }

    /// Changes the learning rate for the next steps.
    pub fn set_lr(&self, lr: f64) -> Result<(), JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| msg("busy"))?;
        if !(lr > 0.0 && lr <= 0.1) {
            return Err(msg("the learning rate must be in (0, 0.1]"));
        }
        match st.lm.as_mut() {
            Some(lm) => lm.trainer.set_lr(lr).map_err(js),
            None => Err(msg("no model")),
        }
    }

    /// Submits `steps` optimizer steps; resolves when the last is queued (at most two are in
    /// flight: each step awaits the oldest, so the page keeps running).
    pub fn train(&self, steps: u32) -> Promise {
        with_state(&self.state, move |state| async move {
            let mut st = state.try_borrow_mut().map_err(|_| msg("busy"))?;
            let State { gpu, lm, .. } = &mut *st;
            let lm = lm.as_mut().ok_or_else(|| msg("no model"))?;
            for _ in 0..steps {
                lm.step_async(gpu).await.map_err(js)?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// One optimizer step that also measures the gradient flow over its window
    /// ([`TextTrainer::step_with_gradient_flow_async`]: the same training as a plain step;
    /// only this step waits, through `map_async`, for its norms). Resolves when they are
    /// read; [`Session::gradient_flow`] then returns them.
    pub fn train_probed(&self) -> Promise {
        with_state(&self.state, move |state| async move {
            let mut st = state.try_borrow_mut().map_err(|_| msg("busy"))?;
            let State { gpu, lm, flow } = &mut *st;
            let lm = lm.as_mut().ok_or_else(|| msg("no model"))?;
            let f = lm.step_with_gradient_flow_async(gpu).await.map_err(js)?;
            *flow = Some((lm.trainer.step_count(), f));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The gradient flow of the last probed step ([`Session::train_probed`]), `null` before
    /// one: `{step, layers, directions, seq_len, norms}`, where `norms[layer·directions +
    /// direction]` is the array of `‖∂L/∂h_t‖` for t = 1..seq_len of the window (time
    /// order whatever the direction).
    pub fn gradient_flow(&self) -> Result<JsValue, JsValue> {
        let st = self.state.try_borrow().map_err(|_| msg("busy"))?;
        let Some((step, f)) = st.flow.as_ref() else {
            return Ok(JsValue::NULL);
        };
        let norms: Vec<Vec<f32>> = (0..f.num_layers)
            .flat_map(|l| (0..f.num_directions).map(move |d| (l, d)))
            .map(|(l, d)| f.norms(l, d).to_vec())
            .collect();
        let json = serde_json::json!({
            "step": step,
            "layers": f.num_layers,
            "directions": f.num_directions,
            "seq_len": f.seq_len,
            "norms": norms,
        });
        js_sys::JSON::parse(&json.to_string())
    }

    /// Without waiting: the metrics that reached the page since the last call, flat as
    /// `[step, loss, grad_norm, step, loss, grad_norm, ...]`. A non-finite loss or norm is
    /// an error naming the step (the run diverged).
    pub fn metrics(&self) -> Result<Vec<f64>, JsValue> {
        let mut st = self.state.try_borrow_mut().map_err(|_| msg("busy"))?;
        let State { gpu, lm, .. } = &mut *st;
        let lm = lm.as_mut().ok_or_else(|| msg("no model"))?;
        let m = lm.trainer.poll_metrics(gpu).map_err(js)?;
        flat(&m)
    }

    /// Every metric not returned yet, the steps still in the device ring included (resolves
    /// to the same flat array as [`Session::metrics`]).
    pub fn flush(&self) -> Promise {
        with_state(&self.state, move |state| async move {
            let mut st = state.try_borrow_mut().map_err(|_| msg("busy"))?;
            let State { gpu, lm, .. } = &mut *st;
            let lm = lm.as_mut().ok_or_else(|| msg("no model"))?;
            let m = lm.trainer.flush_metrics_async(gpu).await.map_err(js)?;
            Ok(js_sys::Float64Array::from(flat(&m)?.as_slice()).into())
        })
    }

    /// `length` characters sampled after `prompt` from the model as trained so far
    /// (resolves to the prompt and the sample).
    pub fn sample(&self, prompt: String, length: usize, temperature: f32, seed: u64) -> Promise {
        with_state(&self.state, move |state| async move {
            let st = state.try_borrow().map_err(|_| msg("busy"))?;
            let lm = st.lm.as_ref().ok_or_else(|| msg("no model"))?;
            let sampling = Sampling {
                temperature,
                top_k: 0,
                seed,
            };
            let text = lm
                .generate_async(&st.gpu, &prompt, length, &sampling)
                .await
                .map_err(js)?;
            Ok(JsValue::from_str(&format!("{prompt}{text}")))
        })
    }

    /// The checkpoint `recur train` would write (safetensors bytes, resolves to a
    /// `Uint8Array`); refused when the model holds a NaN or infinity.
    pub fn checkpoint(&self) -> Promise {
        with_state(&self.state, move |state| async move {
            let mut st = state.try_borrow_mut().map_err(|_| msg("busy"))?;
            let State { gpu, lm, .. } = &mut *st;
            let lm = lm.as_mut().ok_or_else(|| msg("no model"))?;
            let ckpt = lm.checkpoint_async(gpu).await.map_err(js)?;
            let bytes = ckpt.to_checked_bytes("checkpoint").map_err(js)?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}

fn flat(m: &[recur::train::StepMetrics]) -> Result<Vec<f64>, JsValue> {
    let mut out = Vec::with_capacity(m.len() * 3);
    for s in m {
        s.check_finite().map_err(js)?;
        out.extend([s.step as f64, f64::from(s.loss), f64::from(s.grad_norm)]);
    }
    Ok(out)
}
