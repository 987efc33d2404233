//! `shaders/pack_f16.wgsl`: the f16 copy of the parameters that inference with
//! [`crate::WeightStorage::F16`] reads.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Entry `pack_f16`.
pub const PACK_F16: KernelDesc = KernelDesc {
    shader: Shader::PackF16,
    entry: "pack_f16",
    base: 0,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Mirror of WGSL `PackParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PackParams {
    /// u32 words to write.
    pub words: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Packs the f32 values of `src` as f16, two to a u32 word (low half first), into the first
/// `words` words of `dst`: element i of `src` is half `i % 2` of word `i / 2`, so element
/// offsets are the same in both. Elements past `src`'s end pack as zero. Needs
/// [`crate::Gpu::has_f16_in_f32`].
pub fn encode_pack_f16(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    words: usize,
) -> Result<()> {
    let bind = rec.bind(&PACK_F16, &[src, dst])?;
    let p = PackParams {
        words: u32_of("words", words)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, super::grid(words.div_ceil(64))?)
}
