//! The Rust mirrors of the WGSL, checked without a GPU (STYLE.md rule 11): every WGSL module of
//! the shader registry is parsed and validated by naga, and its reflection is compared with
//! the Rust side.
//!
//! - Each [`KernelDesc`] of [`kernels::all_kernels`]: the entry point exists, and the bindings
//!   it statically uses are exactly the storage buffers the desc declares, with the same
//!   access, and the uniform at `base` (declared there, and the only uniform it reads). (wgpu only checks this at pipeline creation, on an
//!   adapter, and accepts a layout that declares more than the shader uses.)
//! - Each WGSL entry point has a desc.
//! - (The `#[repr(C)]` parameter structs against the WGSL ones: tests/mirror_structs.rs.)
//! - Flag bits and shared constants (tile and workgroup sizes) named in WGSL equal the Rust
//!   ones, and workgroup sizes are the ones the Rust grids assume.

#[path = "common/wgsl.rs"]
mod wgsl;

use std::collections::BTreeMap;

use naga::{AddressSpace, StorageAccess};
use recur::kernels::{self, Access, KernelDesc, Shader};
use wgsl::{all_parsed, const_u32, Parsed};

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
        Shader::StepVec4Subgroup,
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
        (
            Shader::MatmulSubgroup,
            "ACCUMULATE",
            matmul::flags::ACCUMULATE,
        ),
        (Shader::MatmulSubgroup, "BIAS", matmul::flags::BIAS),
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
    assert_eq!(c(Shader::StepVec4Subgroup, "NB"), step_vec4::SUBGROUP_ROWS);
    // One invocation a unit (backward; forward FORWARD_UNITS), 64 k of a row resident per KH:
    // enough for every unit.
    for (shader, units) in kernels::step_resident::BUILDS {
        assert_eq!(c(shader, "WG"), units);
        assert!(64 * c(shader, "KH") >= units);
    }
    assert_eq!(
        (c(Shader::Matmul, "TM"), c(Shader::Matmul, "TN")),
        matmul::TILE
    );
    assert_eq!(c(Shader::Clip, "WG"), clip::CLIP_WG);
    assert_eq!(c(Shader::Clip, "ROWS_WG"), clip::CLIP_ROWS_WG);
    assert_eq!(c(Shader::Embedding, "WG"), embedding::EMBEDDING_WG);
    assert_eq!(c(Shader::Loss, "WG"), loss::LOSS_WG);
    assert_eq!(c(Shader::Loss, "ROWS_WG"), loss::CROSS_ENTROPY_ROWS_WG);
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
        // 8x8 invocations of a 4x4 block each.
        Shader::MatmulSubgroup if e == "transpose_sg" => {
            [matmul::TRANSPOSE_BLOCK / 4, matmul::TRANSPOSE_BLOCK / 4, 1]
        }
        // Four subgroups of 8 lanes.
        Shader::MatmulSubgroup => [32, 1, 1],
        Shader::StepResident32 | Shader::StepResident64 | Shader::StepResident128 => {
            let units = kernels::step_resident::BUILDS
                .iter()
                .find(|b| b.0 == desc.shader)?
                .1;
            if e.ends_with("_forward") {
                [units / kernels::step_resident::FORWARD_UNITS, 1, 1]
            } else {
                [units, 1, 1]
            }
        }
        Shader::Clip if e == "clip_norm_partials_rows" => [clip::CLIP_ROWS_WG, 1, 1],
        Shader::Clip => [clip::CLIP_WG, 1, 1],
        Shader::Embedding => [embedding::EMBEDDING_WG, 1, 1],
        Shader::Loss if e == "cross_entropy_rows" => [loss::CROSS_ENTROPY_ROWS_WG, 1, 1],
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
