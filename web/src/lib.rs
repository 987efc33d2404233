//! recur in the browser: WebGPU through wgpu, compiled to wasm32. Exposes the adapter's
//! name and text generation from a `recur train` checkpoint to the page (index.html).

use recur::kernels::sample::Sampling;
use recur::train::text::CharLm;
use recur::train::Checkpoint;
use recur::Gpu;
use wasm_bindgen::prelude::*;

fn js(e: recur::Error) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The name of the WebGPU adapter recur gets.
#[wasm_bindgen]
pub async fn adapter_name() -> Result<String, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js)?;
    Ok(format!("{} ({:?})", gpu.info.name, gpu.info.backend))
}

/// `length` characters after `prompt`, sampled on the GPU from the model in `checkpoint`
/// (the bytes of a `recur train` checkpoint) with `temperature` and `seed`; top-k off.
#[wasm_bindgen]
pub async fn generate(
    checkpoint: Vec<u8>,
    prompt: String,
    length: usize,
    temperature: f32,
    seed: u64,
) -> Result<String, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js)?;
    let ckpt = Checkpoint::from_bytes(&checkpoint, "checkpoint").map_err(js)?;
    let lm = CharLm::from_checkpoint(&gpu, &ckpt).map_err(js)?;
    let sampling = Sampling {
        temperature,
        top_k: 0,
        seed,
    };
    let text = lm
        .generate_async(&gpu, &prompt, length, &sampling)
        .await
        .map_err(js)?;
    Ok(format!("{prompt}{text}"))
}
