//! naga's view of the shader registry, shared by tests/mirrors.rs, tests/mirror_structs.rs
//! and tests/shaders.rs: every build parsed and validated with only the capabilities it
//! may use (`Shader::needs_f16_in_f32`, `Shader::needs_subgroups`).
#![allow(dead_code)]

use std::collections::HashMap;

use recur::kernels::Shader;

/// A parsed and validated module.
pub struct Parsed {
    /// The module.
    pub module: naga::Module,
    /// Its validation info.
    pub info: naga::valid::ModuleInfo,
}
/// `shader` parsed and validated (panics with naga's message on an error).
pub fn parse(shader: Shader) -> Parsed {
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
pub fn all_parsed() -> HashMap<Shader, Parsed> {
    Shader::ALL.iter().map(|&s| (s, parse(s))).collect()
}

/// The value of the WGSL `const NAME: u32` of `shader`.
pub fn const_u32(p: &Parsed, shader: Shader, name: &str) -> u32 {
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
