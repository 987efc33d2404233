//! `recur run --model M.onnx`: an ONNX model (one LSTM/GRU/RNN node, or a torch export's
//! chain) on `.npy` inputs, outputs in the graph's own shapes.
//!
//! `--input` feeds the graph's first input; `--sequence-lens`, `--h0` and `--c0` feed the
//! graph inputs wired to the first RNN node's `sequence_lens`, `initial_h` and `initial_c`;
//! `--output`, `--hn` and `--cn` receive the graph's first, second and third outputs (`Y`,
//! `Y_h`, `Y_c` for a single node). Paths are checked by `run` before this is called.

use std::path::Path;

use anyhow::{bail, Context};
use recur::io::{self, HostTensor};
use recur::onnx::{Array, OnnxModel, Value};
use recur::Gpu;

/// The files of an ONNX run.
pub struct OnnxRun<'a> {
    pub model: &'a Path,
    pub input: &'a Path,
    pub lengths: Option<&'a Path>,
    pub h0: Option<&'a Path>,
    pub c0: Option<&'a Path>,
    pub output: &'a Path,
    pub hn: Option<&'a Path>,
    pub cn: Option<&'a Path>,
}

/// Whether `path` is an ONNX file: a `.onnx` name, or a protobuf start (ONNX files begin
/// with field 1, `ir_version`, tag byte 0x08) that is not a safetensors header (8-byte length
/// then `{`).
pub fn is_onnx(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return true;
    }
    let mut head = [0u8; 9];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    n == 9 && head[0] == 0x08 && head[8] != b'{'
}

pub fn run(a: &OnnxRun) -> anyhow::Result<()> {
    let model = OnnxModel::load(a.model)?;
    let x = io::read_f32(a.input)?;
    io::check_finite(&format!("--input {}", a.input.display()), &x.data)?;
    let first = model
        .inputs()
        .first()
        .with_context(|| format!("--model {}: the graph has no input", a.model.display()))?;
    let mut feeds: Vec<(&str, Value)> = vec![(first.as_str(), Value::from(x))];
    for (flag, path, slot, what) in [
        ("--sequence-lens", a.lengths, 4, "sequence_lens"),
        ("--h0", a.h0, 5, "initial_h"),
        ("--c0", a.c0, 6, "initial_c"),
    ] {
        let Some(p) = path else { continue };
        let Some(name) = model.rnn_input(slot) else {
            bail!(
                "{flag} given but no graph input of {} feeds its RNN node's {what}",
                a.model.display()
            );
        };
        let v = if slot == 4 {
            let l = io::read_i64(p)?;
            Value::I64(Array {
                shape: vec![l.len()],
                data: l,
            })
        } else {
            let t = io::read_f32(p)?;
            io::check_finite(&format!("{flag} {}", p.display()), &t.data)?;
            Value::from(t)
        };
        feeds.push((name, v));
    }
    let gpu = Gpu::new()?;
    let outs = model.run(&gpu, &feeds)?;
    let mut results: Vec<(&Path, Vec<u8>)> = Vec::new();
    for (k, (flag, path)) in [("--output", Some(a.output)), ("--hn", a.hn), ("--cn", a.cn)]
        .into_iter()
        .enumerate()
    {
        let Some(p) = path else { continue };
        let Some(v) = outs.get(k) else {
            bail!(
                "{flag} given but {} has {} output(s)",
                a.model.display(),
                outs.len()
            );
        };
        let t = HostTensor::try_from(v.clone())?;
        results.push((p, io::to_npy_bytes(&t)?));
    }
    let files: Vec<(&Path, &[u8])> = results.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    io::write_all_atomic(&files)?;
    eprintln!(
        "{}: {} RNN node(s), outputs {:?} on {} ({:?})",
        a.model.display(),
        model.cells().len(),
        model.outputs(),
        gpu.info().name,
        gpu.info().backend
    );
    Ok(())
}
