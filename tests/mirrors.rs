//! The Rust mirrors of the WGSL, checked without a GPU (STYLE.md rule 11): every WGSL module of
//! the shader registry is parsed and validated by naga, and its reflection is compared with
//! the Rust side.
//!
//! - Each [`KernelDesc`] of [`kernels::all_kernels`]: the entry point exists, and the bindings
//!   it statically uses are exactly the storage buffers the desc declares, with the same
//!   access, and the uniform at `base` (declared there, and the only uniform it reads). (wgpu only checks this at pipeline creation, on an
//!   adapter, and accepts a layout that declares more than the shader uses.)
//! - Each WGSL entry point has a desc.
//! - Each `#[repr(C)]` parameter struct has the size, field names, field offsets and scalar
//!   kinds of the WGSL struct of the same name (offsets from naga's layouter), in every module
//!   that declares it; each struct a kernel binds has a mirror.
//! - Flag bits and shared constants (tile and workgroup sizes) named in WGSL equal the Rust
//!   ones, and workgroup sizes are the ones the Rust grids assume.

use std::collections::{BTreeMap, HashMap};
use std::mem::{offset_of, size_of};

use naga::{AddressSpace, ScalarKind, StorageAccess, TypeInner};
use recur::kernels::attention::AttentionParams;
use recur::kernels::clip::ClipParams;
use recur::kernels::eager::EwParams;
use recur::kernels::embedding::EmbeddingParams;
use recur::kernels::grad_flow::FlowParams;
use recur::kernels::loss::{CrossEntropyParams, MseParams, ReduceParams};
use recur::kernels::lstm_proj::ProjBackParams;
use recur::kernels::matmul::MatmulParams;
use recur::kernels::optim::OptimParams;
use recur::kernels::pack::PackParams;
use recur::kernels::sample::SampleParams;
use recur::kernels::step::{StepBackParams, StepParams};
use recur::kernels::step_onnx::OnnxStepParams;
use recur::kernels::util::{CopyRowsParams, GatherRowsParams, SumRowsParams, Transpose01Params};
use recur::kernels::{self, Access, KernelDesc, Shader};

struct Parsed {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
}

fn parse(shader: Shader) -> Parsed {
    let src = shader.source();
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{}: {}", shader.file_name(), e.emit_to_string(src)));
    // Only the files that say so may use pack2x16float / unpack2x16float.
    let mut caps = naga::valid::Capabilities::empty();
    if shader.needs_f16_in_f32() {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    // The subgroup builds (and only they) use subgroup operations in compute shaders.
    if shader.needs_subgroups() {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    if shader.needs_subgroups() {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", shader.file_name(), e.emit_to_string(src)));
    Parsed { module, info }
}

/// Every shader of the registry, parsed once.
fn all_parsed() -> HashMap<Shader, Parsed> {
    Shader::ALL.iter().map(|&s| (s, parse(s))).collect()
}

/// How a binding is declared: the uniform, or a storage buffer and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Uniform,
    Storage(Access),
}

/// The bindings of group 0 that entry point `entry` statically uses, by number.
fn used_bindings(p: &Parsed, shader: Shader, entry: &str) -> BTreeMap<u32, Use> {
    let index = p
        .module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .unwrap_or_else(|| panic!("{}: no entry point {entry}", shader.file_name()));
    let fun = p.info.get_entry_point(index);
    let mut used = BTreeMap::new();
    for (handle, var) in p.module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if fun[handle].is_empty() {
            continue;
        }
        assert_eq!(binding.group, 0, "{entry}: {:?} outside group 0", var.name);
        let u = match var.space {
            AddressSpace::Uniform => Use::Uniform,
            AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                Use::Storage(Access::ReadWrite)
            }
            AddressSpace::Storage { .. } => Use::Storage(Access::Read),
            other => panic!("{entry}: binding {} in {other:?}", binding.binding),
        };
        used.insert(binding.binding, u);
    }
    used
}

/// The bindings `desc` declares: the uniform at `base`, storage buffers after it.
fn declared_bindings(desc: &KernelDesc) -> BTreeMap<u32, Use> {
    let mut out = BTreeMap::from([(desc.base, Use::Uniform)]);
    for (i, access) in desc.bindings.iter().enumerate() {
        if let Some(a) = access {
            out.insert(desc.base + 1 + i as u32, Use::Storage(*a));
        }
    }
    out
}

/// Whether `shader` declares a uniform at binding `binding` of group 0.
fn declares_uniform(p: &Parsed, binding: u32) -> bool {
    p.module.global_variables.iter().any(|(_, v)| {
        v.space == AddressSpace::Uniform
            && v.binding
                .as_ref()
                .is_some_and(|b| b.group == 0 && b.binding == binding)
    })
}

#[test]
fn every_kernel_desc_names_an_entry_point_and_exactly_its_bindings() {
    let parsed = all_parsed();
    let mut mismatches = Vec::new();
    for desc in kernels::all_kernels() {
        let p = &parsed[&desc.shader];
        let mut used = used_bindings(p, desc.shader, desc.entry);
        let declared = declared_bindings(&desc);
        // The recorder binds a uniform at `base` for every kernel. An entry may leave it
        // unread (the vec4 sequence entries read their parameters from the step table), but
        // the module must declare it there.
        if !used.contains_key(&desc.base) && declares_uniform(p, desc.base) {
            used.insert(desc.base, Use::Uniform);
        }
        if used != declared {
            mismatches.push(format!(
                "{:?}::{}: WGSL uses {used:?}, the desc declares {declared:?}",
                desc.shader, desc.entry
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_wgsl_entry_point_has_a_kernel_desc() {
    let all = kernels::all_kernels();
    for (shader, p) in all_parsed() {
        for ep in &p.module.entry_points {
            assert!(
                all.iter().any(|d| d.shader == shader && d.entry == ep.name),
                "{:?}::{} has no KernelDesc in kernels::all_kernels()",
                shader,
                ep.name
            );
        }
    }
}

/// Scalar types a mirror's fields may have, with naga's kind.
trait Scalar {
    const KIND: ScalarKind;
}

impl Scalar for u32 {
    const KIND: ScalarKind = ScalarKind::Uint;
}

impl Scalar for f32 {
    const KIND: ScalarKind = ScalarKind::Float;
}

fn kind_of<S, T: Scalar>(_: fn(&S) -> &T) -> ScalarKind {
    T::KIND
}

/// A Rust parameter struct as the test sees it: size and the non-padding fields.
struct Mirror {
    name: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize, ScalarKind)>,
}

/// `mirror!(StepParams { batch, hidden, ... })`: the fields that are not padding (names that
/// start with `_`, which need not match the WGSL's padding names).
macro_rules! mirror {
    ($ty:ident { $($f:ident),* $(,)? }) => {
        Mirror {
            name: stringify!($ty),
            size: size_of::<$ty>(),
            fields: vec![$((stringify!($f), offset_of!($ty, $f), kind_of(|s: &$ty| &s.$f))),*],
        }
    };
}

fn mirrors() -> Vec<Mirror> {
    vec![
        mirror!(MatmulParams {
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
            a_off,
            b_off,
            c_off,
            bias_off,
            flags
        }),
        mirror!(StepParams {
            batch,
            hidden,
            gx_off,
            hprev_off,
            hout_off,
            cprev_off,
            cout_off,
            y_off,
            y_stride,
            act_off,
            whh_off,
            bhh_off,
            flags,
            state
        }),
        mirror!(StepBackParams {
            batch,
            hidden,
            dy_off,
            dy_stride,
            dg_off,
            dgn_off,
            act_off,
            hprev_off,
            hout_off,
            cprev_off,
            cout_off,
            whh_off,
            carry_off,
            flags,
            grows
        }),
        mirror!(OnnxStepParams {
            batch,
            hidden,
            gx_off,
            hprev_off,
            hout_off,
            cprev_off,
            cout_off,
            y_off,
            y_stride,
            whh_off,
            bhh_off,
            peep_off,
            cell,
            flags,
            clip,
            act_f,
            act_g,
            act_h,
            alpha_f,
            alpha_g,
            alpha_h,
            beta_f,
            beta_g,
            beta_h
        }),
        mirror!(SumRowsParams {
            rows,
            cols,
            src_off,
            src_ld,
            dst_off
        }),
        mirror!(Transpose01Params { d0, d1, inner }),
        mirror!(CopyRowsParams {
            rows,
            cols,
            src_off,
            src_ld,
            dst_off,
            dst_ld
        }),
        mirror!(GatherRowsParams { outer, rows, inner }),
        mirror!(PackParams { words }),
        mirror!(ProjBackParams {
            batch,
            hidden,
            proj,
            flags,
            dy_off,
            dy_stride,
            dgn_off,
            dh_off,
            whh_off,
            carry_off
        }),
        mirror!(ClipParams {
            n,
            chunk,
            part_off,
            norm_off,
            x
        }),
        mirror!(EwParams {
            rows,
            cols,
            a_off,
            a_ld,
            b_off,
            b_ld,
            d_off,
            d_ld,
            op
        }),
        mirror!(EmbeddingParams {
            count,
            dim,
            vocab,
            flags,
            starts_off,
            rows_off
        }),
        mirror!(CrossEntropyParams {
            rows,
            vocab,
            logits_off,
            grad_scale
        }),
        mirror!(MseParams {
            n,
            chunk,
            grad_scale
        }),
        mirror!(ReduceParams {
            n,
            dst_off,
            flags,
            scale
        }),
        mirror!(OptimParams {
            n,
            step,
            flags,
            lr,
            a,
            b,
            eps,
            weight_decay,
            step_size,
            bc2_sqrt,
            decay,
            one_minus_a,
            one_minus_b
        }),
        mirror!(AttentionParams {
            s_len,
            batch,
            a_dim,
            d_dim,
            flags,
            q_off,
            alpha_off,
            ctx_off
        }),
        mirror!(SampleParams {
            vocab,
            logits_off,
            top_k,
            out_index,
            seed_lo,
            seed_hi,
            step,
            flags,
            inv_temp
        }),
        mirror!(FlowParams {
            batch,
            width,
            seq,
            flags,
            dy_off,
            dy_ld,
            out_off
        }),
    ]
}

/// Compares one WGSL struct with its mirror; returns what differs.
fn compare(
    module: &naga::Module,
    span: u32,
    members: &[naga::StructMember],
    m: &Mirror,
) -> Vec<String> {
    let mut diffs = Vec::new();
    if span as usize != m.size {
        diffs.push(format!("size: WGSL {span}, Rust {}", m.size));
    }
    let wgsl: Vec<(&str, usize, Option<ScalarKind>)> = members
        .iter()
        .filter_map(|mem| {
            let name = mem.name.as_deref().unwrap_or("");
            if name.starts_with('_') {
                return None;
            }
            let kind = match module.types[mem.ty].inner {
                TypeInner::Scalar(s) if s.width == 4 => Some(s.kind),
                _ => None,
            };
            Some((name, mem.offset as usize, kind))
        })
        .collect();
    let rust: Vec<(&str, usize, Option<ScalarKind>)> = m
        .fields
        .iter()
        .map(|&(name, off, kind)| (name, off, Some(kind)))
        .collect();
    if wgsl != rust {
        diffs.push(format!(
            "fields (name, offset, kind):\n  WGSL {wgsl:?}\n  Rust {rust:?}"
        ));
    }
    diffs
}

#[test]
fn parameter_structs_have_the_layout_of_their_wgsl_mirrors() {
    let mirrors = mirrors();
    let mut found: HashMap<&str, usize> = HashMap::new();
    let mut diffs = Vec::new();
    for (shader, p) in all_parsed() {
        for (_, ty) in p.module.types.iter() {
            let (Some(name), TypeInner::Struct { members, span }) = (&ty.name, &ty.inner) else {
                continue;
            };
            let Some(m) = mirrors.iter().find(|m| m.name == name) else {
                continue;
            };
            *found.entry(m.name).or_default() += 1;
            for d in compare(&p.module, *span, members, m) {
                diffs.push(format!("{shader:?} {name}: {d}"));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    for m in &mirrors {
        assert!(found.contains_key(m.name), "no WGSL struct {}", m.name);
    }
}

/// The struct a global variable holds, directly or as the element of a runtime array.
fn struct_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<(String, u32)> {
    match &module.types[ty].inner {
        TypeInner::Struct { span, .. } => Some((module.types[ty].name.clone()?, *span)),
        TypeInner::Array { base, stride, .. } => {
            let (name, _) = struct_name(module, *base)?;
            Some((name, *stride))
        }
        _ => None,
    }
}

#[test]
fn every_bound_struct_has_a_rust_mirror() {
    let mirrors = mirrors();
    for (shader, p) in all_parsed() {
        for (_, var) in p.module.global_variables.iter() {
            if var.binding.is_none() {
                continue;
            }
            let Some((name, stride)) = struct_name(&p.module, var.ty) else {
                continue;
            };
            let m = mirrors
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{shader:?}: struct {name} is bound but has no mirror"));
            // A runtime array of structs (the vec4 sequence kernels' step tables) is read
            // with the Rust struct's size as its stride (`step_vec4::steps_table`).
            assert_eq!(stride as usize, m.size, "{shader:?}: {:?} stride", var.name);
        }
    }
}

/// The value of the WGSL `const NAME: u32` of `shader`.
fn const_u32(p: &Parsed, shader: Shader, name: &str) -> u32 {
    let c = p
        .module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{}: no const {name}", shader.file_name()))
        .1;
    match p.module.global_expressions[c.init] {
        naga::Expression::Literal(naga::Literal::U32(v)) => v,
        ref e => panic!("{}: const {name} is {e:?}, not a u32", shader.file_name()),
    }
}

#[test]
fn flag_bits_are_named_once_and_equal_in_wgsl_and_rust() {
    use kernels::{attention, embedding, grad_flow, loss, matmul, optim, sample, step};
    let parsed = all_parsed();
    let step_flags = [
        ("SAVE", step::flags::SAVE),
        ("HAS_NEXT", step::flags::HAS_NEXT),
        ("HAS_BIAS", step::flags::HAS_BIAS),
        ("RELU", step::flags::RELU),
        ("PROJ", step::flags::PROJ),
    ];
    let mut table: Vec<(Shader, &str, u32)> = Vec::new();
    for s in [
        Shader::Rnn,
        Shader::Lstm,
        Shader::Gru,
        Shader::StepVec4,
        Shader::StepVec4Row,
        Shader::StepOnnx,
    ] {
        table.extend(step_flags.iter().map(|&(n, v)| (s, n, v)));
    }
    {
        use kernels::step_onnx::{self as so, ActivationKind as A};
        let acts = [
            ("ACT_RELU", A::Relu),
            ("ACT_TANH", A::Tanh),
            ("ACT_SIGMOID", A::Sigmoid),
            ("ACT_AFFINE", A::Affine),
            ("ACT_LEAKY_RELU", A::LeakyRelu),
            ("ACT_THRESHOLDED_RELU", A::ThresholdedRelu),
            ("ACT_SCALED_TANH", A::ScaledTanh),
            ("ACT_HARD_SIGMOID", A::HardSigmoid),
            ("ACT_ELU", A::Elu),
            ("ACT_SOFTSIGN", A::Softsign),
            ("ACT_SOFTPLUS", A::Softplus),
        ];
        assert_eq!(acts.len(), A::ALL.len());
        table.extend(acts.map(|(n, a)| (Shader::StepOnnx, n, a as u32)));
        table.extend([
            (Shader::StepOnnx, "HAS_BIAS", so::flags::HAS_BIAS),
            (Shader::StepOnnx, "CLIP", so::flags::CLIP),
            (Shader::StepOnnx, "PEEPHOLE", so::flags::PEEPHOLE),
            (Shader::StepOnnx, "INPUT_FORGET", so::flags::INPUT_FORGET),
            (Shader::StepOnnx, "RESET_BEFORE", so::flags::RESET_BEFORE),
            (Shader::StepOnnx, "CELL_RNN", so::cell::RNN),
            (Shader::StepOnnx, "CELL_LSTM", so::cell::LSTM),
            (Shader::StepOnnx, "CELL_GRU", so::cell::GRU),
            (Shader::StepOnnx, "ONNX_WG", so::WORKGROUP as u32),
        ]);
    }
    table.extend([
        (Shader::Matmul, "TRANS_A", matmul::flags::TRANS_A),
        (Shader::Matmul, "TRANS_B", matmul::flags::TRANS_B),
        (Shader::Matmul, "ACCUMULATE", matmul::flags::ACCUMULATE),
        (Shader::Matmul, "BIAS", matmul::flags::BIAS),
        (Shader::MatmulVec4, "ACCUMULATE", matmul::flags::ACCUMULATE),
        (Shader::MatmulVec4, "BIAS", matmul::flags::BIAS),
        (Shader::Optim, "HAS_MOMENTUM", optim::flags::HAS_MOMENTUM),
        (Shader::Optim, "NESTEROV", optim::flags::NESTEROV),
        (Shader::Optim, "FIRST", optim::flags::FIRST),
        (Shader::Optim, "DECOUPLED", optim::flags::DECOUPLED),
        (
            Shader::Embedding,
            "ACCUMULATE",
            embedding::flags::ACCUMULATE,
        ),
        (Shader::Loss, "ACCUMULATE", loss::flags::ACCUMULATE),
        (Shader::Sample, "GREEDY", sample::flags::GREEDY),
        (Shader::GradFlow, "REVERSE", grad_flow::flags::REVERSE),
        (Shader::GradFlow, "GRU", grad_flow::flags::GRU),
        (
            Shader::Attention,
            "ACCUMULATE",
            attention::flags::ACCUMULATE,
        ),
    ]);
    for (shader, name, rust) in table {
        assert_eq!(
            const_u32(&parsed[&shader], shader, name),
            rust,
            "{}: {name}",
            shader.file_name()
        );
    }
}

/// Matches `flags & <digit>` (a bare flag literal) in a WGSL source.
fn bare_flag_literal(src: &str) -> Option<&str> {
    src.lines().find(|line| {
        let code = line.split("//").next().unwrap_or("");
        code.match_indices("flags &").any(|(i, m)| {
            code[i + m.len()..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

#[test]
fn no_wgsl_tests_a_flag_with_a_bare_literal() {
    for s in Shader::ALL {
        if let Some(line) = bare_flag_literal(s.source()) {
            panic!("{}: name the flag bit: {}", s.file_name(), line.trim());
        }
    }
}

#[test]
fn shared_constants_are_equal_in_wgsl_and_rust() {
    use kernels::{attention, clip, embedding, loss, matmul, optim, step, step_vec4};
    let parsed = all_parsed();
    let c = |s: Shader, name: &str| const_u32(&parsed[&s], s, name) as usize;
    for s in [Shader::Rnn, Shader::Lstm, Shader::Gru] {
        assert_eq!(c(s, "T16"), step::TILE);
        assert_eq!(c(s, "SB_ROWS"), step::SMALL_BATCH);
        assert_eq!(c(s, "SB_UNITS"), step::SMALL_BATCH_UNITS);
    }
    for s in [Shader::StepVec4, Shader::StepVec4Row] {
        assert_eq!(c(s, "SEQ_WG"), step_vec4::SEQUENCE_WORKGROUP);
    }
    assert_eq!(c(Shader::StepVec4, "NB"), 4);
    assert_eq!(c(Shader::StepVec4Row, "NB"), 1);
    assert_eq!(
        (c(Shader::Matmul, "TM"), c(Shader::Matmul, "TN")),
        matmul::TILE
    );
    assert_eq!(c(Shader::Clip, "WG"), clip::CLIP_WG);
    assert_eq!(c(Shader::Embedding, "WG"), embedding::EMBEDDING_WG);
    assert_eq!(c(Shader::Loss, "WG"), loss::LOSS_WG);
    assert_eq!(c(Shader::Optim, "WG"), optim::OPTIM_WG);
    assert_eq!(c(Shader::GradFlow, "SCAN_WG"), kernels::grad_flow::SCAN_WG);
    assert_eq!(c(Shader::GradFlow, "NORM_WG"), kernels::grad_flow::NORM_WG);
    assert_eq!(c(Shader::Attention, "WG"), attention::ATTENTION_WG);
    assert_eq!(c(Shader::Attention, "MAX_S"), attention::MAX_SOURCE);
}

/// The workgroup size the Rust grid of `desc` assumes, where it assumes one.
fn expected_workgroup(desc: &KernelDesc) -> Option<[usize; 3]> {
    use kernels::{attention, clip, embedding, loss, matmul, optim, step, step_vec4};
    let e = desc.entry;
    // Every build of a cell file (f32, f16 weights, subgroups) and of the vec4 file.
    let cell = matches!(
        desc.shader.file_name(),
        "rnn.wgsl" | "lstm.wgsl" | "gru.wgsl"
    );
    let vec4 = desc.shader.file_name() == "step_vec4.wgsl";
    Some(match desc.shader {
        _ if cell && e.ends_with("_direct") => [step::DIRECT_WORKGROUP, 1, 1],
        _ if cell && e.ends_with("_small") => return None,
        _ if cell => [step::TILE, step::TILE, 1],
        _ if vec4 && e.contains("_sequence_") => [step_vec4::SEQUENCE_WORKGROUP, 1, 1],
        _ if vec4 => [step_vec4::WORKGROUP, 1, 1],
        // 16x16 invocations of 4x4 elements of C.
        Shader::Matmul if e == "matmul" => [matmul::TILE.1 / 4, matmul::TILE.0 / 4, 1],
        Shader::Matmul | Shader::MatmulVec4 => [8, 8, 1],
        Shader::Clip => [clip::CLIP_WG, 1, 1],
        Shader::Embedding => [embedding::EMBEDDING_WG, 1, 1],
        Shader::Loss if e != "loss_reduce" => [loss::LOSS_WG, 1, 1],
        Shader::Optim => [optim::OPTIM_WG, 1, 1],
        Shader::StepOnnx => [kernels::step_onnx::WORKGROUP, 1, 1],
        Shader::GradFlow if e == "grad_flow_scan" => [kernels::grad_flow::SCAN_WG, 1, 1],
        Shader::GradFlow => [kernels::grad_flow::NORM_WG, 1, 1],
        Shader::Attention => [attention::ATTENTION_WG, 1, 1],
        _ => return None,
    })
}

#[test]
fn workgroup_sizes_are_the_ones_the_rust_grids_assume() {
    let parsed = all_parsed();
    for desc in kernels::all_kernels() {
        let Some(want) = expected_workgroup(&desc) else {
            continue;
        };
        let ep = parsed[&desc.shader]
            .module
            .entry_points
            .iter()
            .find(|ep| ep.name == desc.entry)
            .expect("checked by every_kernel_desc_names_an_entry_point_and_exactly_its_bindings");
        assert_eq!(
            ep.workgroup_size.map(|x| x as usize),
            want,
            "{:?}::{}",
            desc.shader,
            desc.entry
        );
    }
}
