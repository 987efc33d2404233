//! Every WGSL file is parsed and validated by naga and translated to SPIR-V (Vulkan), MSL
//! (Metal), HLSL (DX12) and GLSL ES 3.10 (GL): how Metal and DX12 portability is checked
//! without those GPUs.

#[path = "common/wgsl.rs"]
mod wgsl;

use recur::kernels::Shader;

fn module(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let p = wgsl::parse(shader);
    (p.module, p.info)
}

/// No optional capability, except SHADER_FLOAT16_IN_FLOAT32 for the files that say so
/// ([`Shader::needs_f16_in_f32`]).
#[test]
fn every_shader_validates_with_no_optional_capability() {
    for s in Shader::ALL {
        let (m, _) = module(s);
        assert!(
            !m.entry_points.is_empty(),
            "{} has no entry point",
            s.file_name()
        );
    }
}

#[test]
fn every_shader_translates_to_spirv() {
    for s in Shader::ALL {
        let (m, info) = module(s);
        let words = naga::back::spv::write_vec(&m, &info, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{} -> SPIR-V: {e}", s.file_name()));
        assert_eq!(
            words[0],
            0x0723_0203,
            "{}: not a SPIR-V module",
            s.file_name()
        );
    }
}

#[test]
fn every_shader_translates_to_msl() {
    for s in Shader::ALL {
        let (m, info) = module(s);
        let (src, _) =
            naga::back::msl::write_string(&m, &info, &Default::default(), &Default::default())
                .unwrap_or_else(|e| panic!("{} -> MSL: {e}", s.file_name()));
        for ep in &m.entry_points {
            assert!(
                src.contains(&ep.name),
                "{}: MSL lacks {}",
                s.file_name(),
                ep.name
            );
        }
    }
}

#[test]
fn every_shader_translates_to_hlsl() {
    for s in Shader::ALL {
        let (m, info) = module(s);
        let mut src = String::new();
        let options = naga::back::hlsl::Options::default();
        let pipeline = naga::back::hlsl::PipelineOptions::default();
        naga::back::hlsl::Writer::new(&mut src, &options, &pipeline)
            .write(&m, &info, None)
            .unwrap_or_else(|e| panic!("{} -> HLSL: {e}", s.file_name()));
        for ep in &m.entry_points {
            assert!(
                src.contains(&ep.name),
                "{}: HLSL lacks {}",
                s.file_name(),
                ep.name
            );
        }
    }
}

#[test]
fn every_entry_point_translates_to_glsl() {
    for s in Shader::ALL {
        let (m, info) = module(s);
        for ep in &m.entry_points {
            let mut src = String::new();
            let options = naga::back::glsl::Options::default();
            let pipeline = naga::back::glsl::PipelineOptions {
                shader_stage: ep.stage,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut w = naga::back::glsl::Writer::new(
                &mut src,
                &m,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .unwrap_or_else(|e| panic!("{}:{} -> GLSL: {e}", s.file_name(), ep.name));
            w.write()
                .unwrap_or_else(|e| panic!("{}:{} -> GLSL: {e}", s.file_name(), ep.name));
            assert!(src.contains("void main()"), "{}:{}", s.file_name(), ep.name);
        }
    }
}
