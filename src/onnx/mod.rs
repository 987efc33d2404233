//! ONNX models whose graph is one `LSTM`, `GRU` or `RNN` node, or the chain that
//! `torch.onnx.export` writes for a stacked / bidirectional / batch-first `nn.LSTM`, `nn.GRU`
//! or `nn.RNN` (the TorchScript exporter; the dynamo exporter, which writes `LSTM`/`GRU`
//! nodes and unrolls `nn.RNN` into a `MatMul`/`Add`/`Tanh|Relu` chain per step: `unrolled.rs`
//! lifts each such chain back into one `RNN` node at load time, or leaves the `MatMul`s to be
//! refused).
//!
//! The file is decoded by prost ([`proto`] is its generated code for ONNX's `onnx.proto`);
//! the graph is checked at load time (every operator known, every value defined before it is
//! used, the RNN attributes supported) and evaluated in order at run time: the shape plumbing
//! around the RNN nodes ([`ops::HOST_OPS`]) on the host, each RNN node as one recur forward on
//! the GPU ([`cell`]). A malformed file is [`Error::Format`] (truncated, mutated, shapes
//! that do not fit the data: every size is checked before anything is allocated); what recur
//! cannot run is [`Error::Unsupported`], naming the operator or the attribute and its value.
//!
//! ```no_run
//! # fn main() -> recur::Result<()> {
//! use recur::onnx::{OnnxModel, Value};
//! let gpu = recur::Gpu::new()?;
//! let model = OnnxModel::load(std::path::Path::new("lstm.onnx"))?;
//! let x = recur::HostTensor::new(vec![5, 2, 3], vec![0.1; 30])?; // X: [T, B, I]
//! let outputs = model.run(&gpu, &[(model.inputs()[0].as_str(), Value::from(x))])?;
//! # Ok(())
//! # }
//! ```

pub mod cell;
pub mod ops;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto;
mod unrolled;
pub mod value;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;

use self::cell::{CellSpec, RNN_OPS};
use self::ops::HOST_OPS;
use self::proto::{AttributeProto, NodeProto};
pub use self::value::{Array, Value};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Largest ONNX file read (protobuf's own limit is 2 GiB; weights of an RNN this size are far
/// beyond any adapter's buffers anyway).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

/// [`Error::Format`] for the file `path`.
pub(crate) fn malformed(path: &str, reason: String) -> Error {
    Error::Format {
        path: path.to_string(),
        reason,
    }
}

/// [`Error::Unsupported`] for the file `path`.
pub(crate) fn unsupported(path: &str, what: String) -> Error {
    Error::Unsupported {
        path: path.to_string(),
        what,
    }
}

/// Node `n`'s attribute `name`.
pub(crate) fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

/// A loaded, checked ONNX model.
#[derive(Debug)]
pub struct OnnxModel {
    path: String,
    nodes: Vec<NodeProto>,
    /// Checked attributes of each RNN node, by node index.
    cells: HashMap<usize, CellSpec>,
    initializers: HashMap<String, Value>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl OnnxModel {
    /// Reads and checks the ONNX file at `path` (at most [`MAX_ONNX_BYTES`]).
    pub fn load(path: &Path) -> Result<OnnxModel> {
        let bytes = crate::io::read_file_limited(path, MAX_ONNX_BYTES)?;
        OnnxModel::from_bytes(&bytes, &path.display().to_string())
    }

    /// [`OnnxModel::load`] from bytes in memory; errors name `path`.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<OnnxModel> {
        let model = proto::ModelProto::decode(bytes)
            .map_err(|e| malformed(path, format!("not an ONNX model ({e})")))?;
        let graph = model
            .graph
            .ok_or_else(|| malformed(path, "has no graph".into()))?;
        let mut initializers = HashMap::new();
        for t in &graph.initializer {
            let v = value::from_proto(path, &format!("initializer {:?}", t.name()), t)?;
            initializers.insert(t.name().to_string(), v);
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(unsupported(path, "sparse initializers".into()));
        }
        // The dynamo exporter's unrolled nn.RNN becomes RNN nodes (see unrolled.rs).
        let mut nodes = graph.node;
        unrolled::lift(&mut nodes, &mut initializers);
        // Graph inputs that an initializer also names are defaults; the rest must be fed.
        let inputs: Vec<String> = graph
            .input
            .iter()
            .map(|i| i.name().to_string())
            .filter(|n| !initializers.contains_key(n))
            .collect();
        let mut defined: HashSet<&str> = inputs.iter().map(String::as_str).collect();
        defined.extend(initializers.keys().map(String::as_str));
        let mut cells = HashMap::new();
        for (k, n) in nodes.iter().enumerate() {
            let op = n.op_type();
            if !(n.domain().is_empty() || n.domain() == "ai.onnx") {
                return Err(unsupported(path, format!("operator {}::{op}", n.domain())));
            }
            if RNN_OPS.contains(&op) {
                cells.insert(k, CellSpec::parse(path, n)?);
            } else if !HOST_OPS.contains(&op) {
                return Err(unsupported(
                    path,
                    format!(
                        "operator {op} (node {:?}; recur runs LSTM, GRU and RNN nodes and the shape operators {})",
                        n.name(),
                        HOST_OPS.join(", ")
                    ),
                ));
            }
            if let Some(i) = n
                .input
                .iter()
                .find(|i| !i.is_empty() && !defined.contains(i.as_str()))
            {
                return Err(malformed(
                    path,
                    format!(
                        "{op} node {:?} reads {i:?} before anything defines it",
                        n.name()
                    ),
                ));
            }
            defined.extend(
                n.output
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(String::as_str),
            );
        }
        let outputs: Vec<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
        if let Some(o) = outputs.iter().find(|o| !defined.contains(o.as_str())) {
            return Err(malformed(
                path,
                format!("graph output {o:?} is never defined"),
            ));
        }
        if outputs.is_empty() {
            return Err(malformed(path, "the graph has no outputs".into()));
        }
        Ok(OnnxModel {
            path: path.to_string(),
            nodes,
            cells,
            initializers,
            inputs,
            outputs,
        })
    }

    /// Names of the graph inputs to feed, in the graph's order (initializers excluded).
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Names of the graph outputs, in the graph's order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The attributes of each RNN node, in graph order.
    pub fn cells(&self) -> Vec<&CellSpec> {
        let mut k: Vec<_> = self.cells.iter().collect();
        k.sort_by_key(|(i, _)| **i);
        k.into_iter().map(|(_, c)| c).collect()
    }

    /// The graph input that feeds input `slot` of the first RNN node directly
    /// (ONNX slots: 4 `sequence_lens`, 5 `initial_h`, 6 `initial_c`), if any.
    pub fn rnn_input(&self, slot: usize) -> Option<&str> {
        let k = self.cells.keys().min()?;
        let name = self.nodes[*k].input.get(slot)?;
        self.inputs.iter().find(|i| *i == name).map(String::as_str)
    }

    /// Runs the graph on `feeds` (graph input name, value); returns the graph outputs in order.
    /// A graph input not fed is [`Error::Format`] unless an initializer gives its default.
    pub fn run(&self, gpu: &Gpu, feeds: &[(&str, Value)]) -> Result<Vec<Value>> {
        let path = self.path.as_str();
        let mut env: HashMap<&str, Value> = HashMap::new();
        for (name, v) in feeds {
            if !self.inputs.iter().any(|i| i == name) {
                return Err(malformed(
                    path,
                    format!(
                        "the graph has no input {name:?} (its inputs: {:?})",
                        self.inputs
                    ),
                ));
            }
            if value::numel(path, name, v.shape())? != v.len() {
                return Err(malformed(
                    path,
                    format!(
                        "input {name:?}: shape {:?} and {} elements disagree",
                        v.shape(),
                        v.len()
                    ),
                ));
            }
            env.insert(name, v.clone());
        }
        if let Some(i) = self.inputs.iter().find(|i| !env.contains_key(i.as_str())) {
            return Err(malformed(path, format!("graph input {i:?} was not given")));
        }
        for (k, n) in self.nodes.iter().enumerate() {
            let outs = {
                // An empty name is an omitted optional input; any other name must have a
                // value by now (a node output never produced is an error, not "omitted").
                let ins: Vec<Option<&Value>> = n
                    .input
                    .iter()
                    .map(|i| {
                        if i.is_empty() {
                            return Ok(None);
                        }
                        env.get(i.as_str())
                            .or_else(|| self.initializers.get(i))
                            .map(Some)
                            .ok_or_else(|| {
                                malformed(
                                    path,
                                    format!("{} reads {i:?}, which no node produced", n.op_type()),
                                )
                            })
                    })
                    .collect::<Result<_>>()?;
                match self.cells.get(&k) {
                    Some(spec) => cell::run(path, gpu, n, spec, &ins)?,
                    None => ops::eval(path, n, &ins)?,
                }
            };
            for (name, v) in n.output.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name, v);
                }
            }
        }
        self.outputs
            .iter()
            .map(|o| {
                env.get(o.as_str())
                    .or_else(|| self.initializers.get(o))
                    .cloned()
                    .ok_or_else(|| malformed(path, format!("graph output {o:?} was not computed")))
            })
            .collect()
    }
}
