//! Models as files: a [`SeqModel`] (or a bare [`Rnn`]) saved alone, as the safetensors file
//! `safetensors.torch.save_file(model.state_dict(), path)` writes for the equivalent PyTorch
//! module, and loaded back from one.
//!
//! | recur | PyTorch module | state_dict names |
//! |---|---|---|
//! | [`SeqModel::embedding`] | `nn.Embedding(V, I)` | `embedding.weight` |
//! | [`SeqModel::rnn`] | `nn.RNN` / `nn.LSTM` / `nn.GRU` | `rnn.weight_ih_l0`, `rnn.bias_hh_l0`, `rnn.weight_ih_l0_reverse`, ... |
//! | [`SeqModel::head`] | `nn.Linear(D*H, out)` | `head.weight`, `head.bias` |
//!
//! So `model.load_state_dict(safetensors.torch.load_file(path))` takes what
//! [`SeqModel::save`] writes, and [`SeqModel::load`] takes what PyTorch writes
//! (`scripts/make_model_fixtures.py` and `tests/model_io.rs` check both ways).
//!
//! A state_dict does not say everything: a vanilla RNN's nonlinearity and whether the head
//! reads every step or the last one are not in the tensors. [`SeqModel::save`] records them
//! in the file's metadata (`nonlinearity`, `readout`); for a file from elsewhere,
//! [`LoadOptions`] says them (the default: tanh, every step). Tensors the model does not have
//! are refused ([`Error::UnexpectedTensor`]), like `load_state_dict(strict=True)`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Embedding, Linear, Module, Readout, SeqModel, SeqModelConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{self, HostTensor};
use crate::rnn::state_dict::{config_from_state_dict, state_dict_metadata};
use crate::rnn::{CellKind, Rnn};

/// Metadata key of a [`SeqModel`]'s [`Readout`] (`every_step` or `last_step`).
pub const READOUT_KEY: &str = "readout";

/// How to read a model file whose tensors do not say everything (see the module
/// documentation). Build it with the methods: `LoadOptions::new().prefix("lstm.")`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Name prefix of the RNN tensors for [`Rnn::load`] (`"lstm."` for a module holding
    /// `self.lstm`; empty for a bare `nn.LSTM`). [`SeqModel::load`] always reads `rnn.`.
    pub prefix: String,
    /// A vanilla RNN's nonlinearity; `None`: the file's `nonlinearity` metadata, else tanh.
    pub nonlinearity: Option<CellKind>,
    /// The stack's input layout for [`Rnn::load`] (a state_dict does not record it).
    pub batch_first: bool,
    /// Which steps a [`SeqModel`]'s head reads; `None`: the file's `readout` metadata, else
    /// every step.
    pub readout: Option<Readout>,
}

impl LoadOptions {
    /// No prefix, nonlinearity and readout from the file (else tanh, every step),
    /// time-major.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`LoadOptions::prefix`].
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Sets [`LoadOptions::nonlinearity`] (`CellKind::RnnTanh` or `CellKind::RnnRelu`; another
    /// kind must agree with the tensors).
    pub fn nonlinearity(mut self, cell: CellKind) -> Self {
        self.nonlinearity = Some(cell);
        self
    }

    /// Sets [`LoadOptions::batch_first`].
    pub fn batch_first(mut self, yes: bool) -> Self {
        self.batch_first = yes;
        self
    }

    /// Sets [`LoadOptions::readout`].
    pub fn readout(mut self, readout: Readout) -> Self {
        self.readout = Some(readout);
        self
    }
}

/// The named tensors of `module`'s parameters (read from the device), each name `prefix` +
/// its PyTorch name, in state_dict order.
pub fn state_dict(
    gpu: &Gpu,
    module: &dyn Module,
    prefix: &str,
) -> Result<Vec<(String, HostTensor)>> {
    let flat = gpu.read(module.group().params)?;
    module
        .slices()
        .into_iter()
        .map(|s| {
            let data = flat
                .get(s.offset..s.offset + s.len())
                .ok_or_else(|| Error::Gpu(format!("{prefix}{} is out of range", s.name)))?
                .to_vec();
            Ok((
                format!("{prefix}{}", s.name),
                HostTensor::new(s.shape, data)?,
            ))
        })
        .collect()
}

impl Rnn {
    /// Loads a stack from a PyTorch state_dict in a safetensors file, as
    /// [`Rnn::load_safetensors`] does, with the prefix, nonlinearity and layout in `opts`.
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::{CellKind, Gpu, LoadOptions, ParamLayout, Rnn, RnnConfig};
    /// let gpu = Gpu::new()?;
    /// let cfg = RnnConfig::new(CellKind::RnnRelu, 3, 4);
    /// let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total])?;
    /// let path = std::env::temp_dir().join(format!("recur-doc-rnn-{}.safetensors", std::process::id()));
    /// rnn.save_safetensors(&gpu, &path, "rnn.")?; // rnn.weight_ih_l0, ...
    /// let back = Rnn::load(&gpu, &path, &LoadOptions::new().prefix("rnn.").batch_first(true))?;
    /// assert_eq!(back.cfg, cfg.batch_first(true)); // relu: from the file's metadata
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(gpu: &Gpu, path: &Path, opts: &LoadOptions) -> Result<Rnn> {
        let (tensors, meta) = io::load(path)?;
        let (cfg, flat) = config_from_state_dict(&tensors, &opts.prefix, opts.nonlinearity, &meta)?;
        Rnn::new(gpu, cfg.batch_first(opts.batch_first), &flat)
    }
}

impl SeqModel {
    /// The model's PyTorch state_dict (read from the device): `embedding.weight`,
    /// `rnn.<name>`, `head.weight`, `head.bias`.
    pub fn state_dict(&self, gpu: &Gpu) -> Result<Vec<(String, HostTensor)>> {
        let mut out = Vec::new();
        for (name, m) in self.modules() {
            out.extend(state_dict(gpu, m, &format!("{name}."))?);
        }
        Ok(out)
    }

    /// The metadata [`SeqModel::save`] writes: the nonlinearity of a vanilla RNN and the
    /// readout.
    pub fn file_metadata(&self) -> BTreeMap<String, String> {
        let mut meta = state_dict_metadata(&self.cfg.rnn);
        meta.insert(READOUT_KEY.into(), self.cfg.readout.name().into());
        meta
    }

    /// Writes the model alone (no optimizer state) to `path` as a safetensors state_dict
    /// that the equivalent PyTorch module loads with `load_state_dict`; atomically, and
    /// [`Error::NonFinite`] rather than a file holding a NaN.
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::nn::{SeqModel, SeqModelConfig};
    /// use recur::{rng::Rng, CellKind, Gpu, LoadOptions, RnnConfig};
    /// let gpu = Gpu::new()?;
    /// let cfg = SeqModelConfig::new(Some(10), RnnConfig::new(CellKind::Lstm, 4, 6), 10);
    /// let model = SeqModel::init(&gpu, cfg, &mut Rng::new(1))?;
    /// let path = std::env::temp_dir().join(format!("recur-doc-model-{}.safetensors", std::process::id()));
    /// model.save(&gpu, &path)?;
    /// let names: Vec<String> = recur::io::load(&path)?.0.into_keys().collect();
    /// assert!(names.contains(&"rnn.weight_ih_l0".to_string()));
    /// assert!(names.contains(&"embedding.weight".to_string()));
    /// let back = SeqModel::load(&gpu, &path, &LoadOptions::new())?;
    /// assert_eq!(back.cfg, model.cfg);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn save(&self, gpu: &Gpu, path: &Path) -> Result<()> {
        let tensors = self.state_dict(gpu)?;
        for (name, t) in &tensors {
            io::check_finite(&format!("model tensor {name:?}"), &t.data)?;
        }
        io::save(path, &tensors, &self.file_metadata())
    }

    /// Reads a model from a state_dict file (see the module documentation): the tensors
    /// decide the sizes, the cell, layers, directions and bias; `opts` or the file's
    /// metadata the nonlinearity and the readout.
    ///
    /// Errors: [`Error::MissingTensor`] (no `head.weight`, say), [`Error::UnexpectedTensor`]
    /// for a tensor the model does not have, [`Error::Shape`] for sizes that do not fit each
    /// other, [`Error::NonFinite`] for a NaN or infinite weight, and the file errors of
    /// [`io::load`].
    pub fn load(gpu: &Gpu, path: &Path, opts: &LoadOptions) -> Result<SeqModel> {
        let (tensors, meta) = io::load(path)?;
        Self::from_state_dict(gpu, &tensors, &meta, opts)
    }

    /// [`SeqModel::load`] from tensors in memory.
    pub fn from_state_dict(
        gpu: &Gpu,
        tensors: &BTreeMap<String, HostTensor>,
        meta: &BTreeMap<String, String>,
        opts: &LoadOptions,
    ) -> Result<SeqModel> {
        for (name, t) in tensors {
            io::check_finite(&format!("model tensor {name:?}"), &t.data)?;
        }
        let (rnn_cfg, rnn_flat) = config_from_state_dict(tensors, "rnn.", opts.nonlinearity, meta)?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| Error::MissingTensor(name.to_string()))
        };
        let matrix = |name: &str, t: &HostTensor| match t.shape[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::Shape {
                what: format!("{name} (a matrix; 0 = any)"),
                expected: vec![0, 0],
                got: t.shape.clone(),
            }),
        };
        let embedding = match tensors.get("embedding.weight") {
            Some(w) => {
                let (v, dim) = matrix("embedding.weight", w)?;
                if dim != rnn_cfg.input_size {
                    return Err(Error::Shape {
                        what: "embedding.weight (its width is the RNN's input size)".into(),
                        expected: vec![v, rnn_cfg.input_size],
                        got: w.shape.clone(),
                    });
                }
                Some(Embedding::new(gpu, v, dim, &w.data)?)
            }
            None => None,
        };
        let w = get("head.weight")?;
        let (out, width) = matrix("head.weight", w)?;
        if width != rnn_cfg.output_size() {
            return Err(Error::Shape {
                what: "head.weight (its width is the RNN's output size D*H)".into(),
                expected: vec![out, rnn_cfg.output_size()],
                got: w.shape.clone(),
            });
        }
        let b = get("head.bias")?;
        if b.shape != [out] {
            return Err(Error::Shape {
                what: "head.bias".into(),
                expected: vec![out],
                got: b.shape.clone(),
            });
        }
        let readout = match (opts.readout, meta.get(READOUT_KEY)) {
            (Some(r), _) => r,
            (None, None) => Readout::EveryStep,
            (None, Some(name)) => Readout::parse(name).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "metadata {READOUT_KEY:?} is {name:?}, expected every_step or last_step"
                ))
            })?,
        };
        let mut cfg =
            SeqModelConfig::new(embedding.as_ref().map(|e| e.num_embeddings), rnn_cfg, out);
        cfg.readout = readout;
        let rnn = Rnn::new(gpu, cfg.rnn.clone(), &rnn_flat)?;
        let mut head_flat = w.data.clone();
        head_flat.extend_from_slice(&b.data);
        let head = Linear::new(gpu, width, out, true, &head_flat)?;
        let model = SeqModel::from_parts(cfg, embedding, rnn, head)?;
        // Strict: every tensor in the file is one of the model's.
        let known: Vec<String> = model
            .modules()
            .into_iter()
            .flat_map(|(layer, m)| {
                m.slices()
                    .into_iter()
                    .map(move |s| format!("{layer}.{}", s.name))
            })
            .collect();
        if let Some(extra) = tensors.keys().find(|k| !known.contains(k)) {
            return Err(Error::UnexpectedTensor(extra.clone()));
        }
        Ok(model)
    }
}
