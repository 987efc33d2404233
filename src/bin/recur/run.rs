//! `recur run`: the port checker.
//!
//! Every output path is checked before any work, non-finite values are refused in the
//! weights as in the inputs (PyTorch would answer NaN), and the outputs are written together
//! or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use recur::io::{self, CommandFiles, HostTensor};
use recur::rnn::state_dict::config_from_state_dict;
use recur::rnn::Rnn;
use recur::{CellKind, Gpu};

/// Arguments of `recur run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// safetensors file with the RNN's state_dict (f32, f16 or bf16), or an ONNX model
    /// (`.onnx`: one LSTM/GRU/RNN node or a torch export; outputs in the graph's shapes).
    #[arg(long)]
    model: PathBuf,
    /// Input .npy (float32): (T, B, I), or (B, T, I) with --batch-first; for an ONNX model,
    /// the graph's first input in its own shape.
    #[arg(long)]
    input: PathBuf,
    /// Initial hidden state .npy, (D*L, B, H); for an ONNX model, the RNN node's `initial_h`
    /// in ONNX's shape.
    #[arg(long)]
    h0: Option<PathBuf>,
    /// Initial cell state .npy (LSTM), (D*L, B, H); for an ONNX model, `initial_c`.
    #[arg(long)]
    c0: Option<PathBuf>,
    /// Input and output are batch-first.
    #[arg(long)]
    batch_first: bool,
    /// Nonlinearity of a vanilla RNN (else the file's `nonlinearity` metadata, else tanh).
    #[arg(long, value_parser = ["tanh", "relu"])]
    nonlinearity: Option<String>,
    /// Prefix of the RNN's tensors inside a larger state_dict (for example `lstm.`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Where to write the output Y (.npy); for an ONNX model, the graph's first output.
    #[arg(long)]
    output: PathBuf,
    /// Where to write the final hidden state (.npy); for an ONNX model, the second output.
    #[arg(long)]
    hn: Option<PathBuf>,
    /// Where to write the final cell state (.npy, LSTM); for an ONNX model, the third output.
    #[arg(long)]
    cn: Option<PathBuf>,
    /// Per-row lengths (.npy, int32 or int64, one per batch row, each in 1..=T): a padded
    /// batch run as PyTorch's pack_padded_sequence (outputs past a row's length are zero, hn/cn
    /// are each row's state at its last step, gradients of padded positions are zero). For an
    /// ONNX model, its `sequence_lens` (also spelled --sequence-lens).
    #[arg(long, alias = "sequence-lens")]
    pub lengths: Option<PathBuf>,
    /// dL/dY (.npy) for L = sum(Y * DY): runs backward too.
    #[arg(long, requires = "grads")]
    grad_output: Option<PathBuf>,
    /// Where to write the gradients (safetensors): every parameter under its state_dict name,
    /// plus `input`, `h0` and (LSTM) `c0`.
    #[arg(long, requires = "grad_output")]
    grads: Option<PathBuf>,
}

fn read_npy(path: &Path) -> anyhow::Result<HostTensor> {
    Ok(io::read_f32(path)?)
}

/// The `--lengths` file: one length per batch row of `x`, each in `1..=T`.
fn read_lengths(path: &Path, x: &HostTensor, batch_first: bool) -> anyhow::Result<Vec<usize>> {
    let raw = io::read_i64(path)?;
    let (t, b) = match (x.shape.as_slice(), batch_first) {
        ([b, t, _], true) | ([t, b, _], false) => (*t, *b),
        _ => bail!("--input has shape {:?}, not 3-D", x.shape),
    };
    if raw.len() != b {
        bail!(
            "--lengths {}: {} lengths for a batch of {b} rows",
            path.display(),
            raw.len()
        );
    }
    raw.iter()
        .enumerate()
        .map(|(row, &l)| match usize::try_from(l) {
            Ok(l) if (1..=t).contains(&l) => Ok(l),
            _ => Err(anyhow::anyhow!(
                "--lengths {}: length {l} of row {row} is not in 1..={t} (the sequence length)",
                path.display()
            )),
        })
        .collect()
}

/// Every input and output of the command, checked before anything is read.
fn check_paths(a: &RunArgs) -> anyhow::Result<()> {
    let mut files = CommandFiles::new();
    files.input("--model", &a.model).input("--input", &a.input);
    for (flag, p) in [
        ("--h0", &a.h0),
        ("--c0", &a.c0),
        ("--grad-output", &a.grad_output),
        ("--lengths", &a.lengths),
    ] {
        if let Some(p) = p {
            files.input(flag, p);
        }
    }
    files.output("--output", &a.output);
    for (flag, p) in [("--hn", &a.hn), ("--cn", &a.cn), ("--grads", &a.grads)] {
        if let Some(p) = p {
            files.output(flag, p);
        }
    }
    files.check()?;
    Ok(())
}

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    check_paths(a)?;
    if crate::run_onnx::is_onnx(&a.model) {
        if a.batch_first || a.nonlinearity.is_some() || !a.prefix.is_empty() || a.grads.is_some() {
            bail!("--batch-first, --nonlinearity, --prefix and --grad-output/--grads are for safetensors models; an ONNX model carries its own layout");
        }
        return crate::run_onnx::run(&crate::run_onnx::OnnxRun {
            model: &a.model,
            input: &a.input,
            lengths: a.lengths.as_deref(),
            h0: a.h0.as_deref(),
            c0: a.c0.as_deref(),
            output: &a.output,
            hn: a.hn.as_deref(),
            cn: a.cn.as_deref(),
        });
    }
    let (tensors, meta) = io::load(&a.model)?;
    let nonlinearity = a.nonlinearity.as_deref().and_then(CellKind::parse);
    let (mut cfg, flat) = config_from_state_dict(&tensors, &a.prefix, nonlinearity, &meta)
        .with_context(|| format!("{}", a.model.display()))?;
    cfg.batch_first = a.batch_first;
    // The same rule for weights as for inputs: the RNN's tensors must be finite.
    for (name, t) in &tensors {
        let rest = name.strip_prefix(a.prefix.as_str()).unwrap_or("");
        if rest.starts_with("weight_") || rest.starts_with("bias_") {
            io::check_finite(
                &format!("--model {}: tensor {name:?}", a.model.display()),
                &t.data,
            )?;
        }
    }
    if a.cn.is_some() && cfg.cell != CellKind::Lstm {
        bail!(
            "--cn given but the model is a {}, which has no cell state",
            cfg.cell
        );
    }
    if a.c0.is_some() && cfg.cell != CellKind::Lstm {
        bail!(
            "--c0 given but the model is a {}, which has no cell state",
            cfg.cell
        );
    }
    let x = read_npy(&a.input)?;
    let h0 = a.h0.as_deref().map(read_npy).transpose()?;
    let c0 = a.c0.as_deref().map(read_npy).transpose()?;
    let dy = a.grad_output.as_deref().map(read_npy).transpose()?;
    let lengths = match &a.lengths {
        Some(p) => Some(read_lengths(p, &x, a.batch_first)?),
        None => None,
    };
    for (flag, path, t) in [
        ("--input", Some(&a.input), Some(&x)),
        ("--h0", a.h0.as_ref(), h0.as_ref()),
        ("--c0", a.c0.as_ref(), c0.as_ref()),
        ("--grad-output", a.grad_output.as_ref(), dy.as_ref()),
    ] {
        if let (Some(p), Some(t)) = (path, t) {
            io::check_finite(&format!("{flag} {}", p.display()), &t.data)?;
        }
    }

    let gpu = Gpu::new()?;
    let rnn = Rnn::new(&gpu, cfg.clone(), &flat)?;
    let up = |name: &str, t: &HostTensor| gpu.tensor(name, &t.shape, &t.data);
    let tx = up("input", &x).context("--input")?;
    let th0 = h0.as_ref().map(|t| up("h0", t)).transpose()?;
    let tc0 = c0.as_ref().map(|t| up("c0", t)).transpose()?;
    let tdy = dy
        .as_ref()
        .map(|t| up("grad_output", t).context("--grad-output"))
        .transpose()?;
    let (out, grads) = {
        let mut rec = recur::Recorder::new(&gpu);
        let train = tdy.is_some();
        let (h0, c0) = (th0.as_ref(), tc0.as_ref());
        let (o, saved) = match (&lengths, train) {
            (Some(l), true) => rnn
                .record_train_packed(&mut rec, &tx, l, h0, c0)
                .map(|(o, s)| (o, Some(s))),
            (Some(l), false) => rnn
                .record_inference_packed(&mut rec, &tx, l, h0, c0)
                .map(|o| (o, None)),
            (None, true) => rnn
                .record_train(&mut rec, &tx, h0, c0)
                .map(|(o, s)| (o, Some(s))),
            (None, false) => rnn
                .record_inference(&mut rec, &tx, h0, c0)
                .map(|o| (o, None)),
        }
        .context("forward")?;
        let g = match (&tdy, saved) {
            (Some(tdy), Some(saved)) => Some(
                rnn.record_backward(&mut rec, &saved, tdy, None, None, false)
                    .context("backward")?,
            ),
            _ => None,
        };
        rec.run()?;
        (o, g)
    };
    let read = |t: &recur::Tensor| -> anyhow::Result<HostTensor> {
        Ok(HostTensor::new(t.shape.clone(), gpu.read(t)?)?)
    };
    // Everything is computed and serialized before the first file is written.
    let mut results: Vec<(&Path, Vec<u8>)> = vec![(&a.output, io::to_npy_bytes(&read(&out.y)?)?)];
    if let Some(p) = &a.hn {
        results.push((p, io::to_npy_bytes(&read(&out.hn)?)?));
    }
    if let (Some(p), Some(cn)) = (&a.cn, &out.cn) {
        results.push((p, io::to_npy_bytes(&read(cn)?)?));
    }
    if let (Some(path), Some(g)) = (&a.grads, grads) {
        let mut named = rnn.grads_state_dict(&gpu, &a.prefix)?;
        named.push(("input".into(), read(&g.dx)?));
        named.push(("h0".into(), read(&g.dh0)?));
        if let Some(dc0) = &g.dc0 {
            named.push(("c0".into(), read(dc0)?));
        }
        results.push((path, io::to_safetensors_bytes(&named, &BTreeMap::new())?));
    }
    let files: Vec<(&Path, &[u8])> = results.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    io::write_all_atomic(&files)?;
    let (t, b) = if cfg.batch_first {
        (x.shape.get(1), x.shape.first())
    } else {
        (x.shape.first(), x.shape.get(1))
    };
    eprintln!(
        "{} x{} layers{} H={} I={} T={} B={} on {} ({:?}){}",
        cfg.cell,
        cfg.num_layers,
        if cfg.bidirectional {
            " bidirectional"
        } else {
            ""
        },
        cfg.hidden_size,
        cfg.input_size,
        t.copied().unwrap_or(0),
        b.copied().unwrap_or(0),
        gpu.info().name,
        gpu.info().backend,
        if a.grads.is_some() {
            ", with backward"
        } else {
            ""
        },
    );
    Ok(())
}
