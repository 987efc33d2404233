// The README's library section: `tests/readme.rs` keeps the two equal, and the crate docs
// run it as a doctest (`cargo test --doc`).
use recur::nn::{SeqInput, SeqModel, SeqModelConfig};
use recur::train::{Batch, Targets, TrainConfig, TrainMode, Trainer};
use recur::{
    rng::Rng, CellKind, Gpu, HostTensor, LoadOptions, ParamLayout, Rnn, RnnConfig, RnnStream,
};

fn main() -> recur::Result<()> {
    let gpu = Gpu::new()?; // the adapter wgpu finds (RECUR_BACKEND / RECUR_ADAPTER choose)

    // An LSTM from flat parameters (Rnn::load reads a PyTorch state_dict instead).
    let cfg = RnnConfig::new(CellKind::Lstm, 8, 16).layers(2);
    let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.05; ParamLayout::new(&cfg).total])?;
    let x = gpu.upload(&HostTensor::new(vec![10, 4, 8], vec![0.5; 10 * 4 * 8])?)?; // (T, B, I)
    let out = rnn.forward(&gpu, &x, None, None)?; // one submission
    let y: HostTensor = gpu.download(&out.y)?; // (T, B, H), shape kept
    assert_eq!(y.shape, [10, 4, 16]);

    // The same input streamed a step at a time: the state stays on the device.
    let mut stream = RnnStream::new(&gpu, &rnn, 4)?;
    let step = gpu.upload(&HostTensor::new(vec![1, 4, 8], vec![0.5; 4 * 8])?)?;
    for _ in 0..10 {
        stream.push(&gpu, &rnn, &step)?; // one submission, no readback
    }
    assert_eq!(gpu.download(stream.h())?, gpu.download(&out.hn)?); // chunked = whole

    // Train a sequence regressor (GRU, head on the last step) on independent batches.
    let cfg = SeqModelConfig::new(None, RnnConfig::new(CellKind::Gru, 8, 16), 1).last_step();
    let model = SeqModel::init(&gpu, cfg, &mut Rng::new(0))?;
    let mut trainer = Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Independent)?;
    let target = gpu.upload(&HostTensor::new(vec![4, 1], vec![1.0; 4])?)?; // (B, out)
    for _ in 0..20 {
        let batch = Batch {
            input: SeqInput::Dense(&x),
            targets: Targets::Dense(&target),
        };
        trainer.step(&gpu, &[batch])?; // forward, loss, backward, Adam: one submission
    }
    let metrics = trainer.flush_metrics(&gpu)?;
    println!(
        "loss {} -> {}",
        metrics[0].loss,
        metrics[metrics.len() - 1].loss
    );

    // Save the model alone, in PyTorch's names (rnn.weight_ih_l0, head.weight, ...), and
    // load it back for inference.
    let path =
        std::env::temp_dir().join(format!("recur-readme-{}.safetensors", std::process::id()));
    trainer.model.save(&gpu, &path)?;
    let model = SeqModel::load(&gpu, &path, &LoadOptions::new())?;
    let pred = model.forward(&gpu, SeqInput::Dense(&x), None, None)?;
    println!("prediction {:?}", gpu.download(&pred.out)?.data);
    std::fs::remove_file(&path).ok();
    Ok(())
}
