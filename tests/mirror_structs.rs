//! The `#[repr(C)]` parameter structs against their WGSL mirrors, without a GPU (STYLE.md
//! rule 11): each has the size, field names, field offsets and scalar kinds of the WGSL
//! struct of the same name (offsets from naga's layouter), in every module that declares it,
//! and each struct a kernel binds has a mirror. (The bindings, entry points, flags and
//! constants are in tests/mirrors.rs.)

#[path = "common/wgsl.rs"]
mod wgsl;

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use naga::{ScalarKind, TypeInner};
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

use wgsl::all_parsed;
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
