//! PNG/JPEG slices (grey, RGB or RGBA, 8-bit) as one-slice `Display8Bit` volumes.

use std::path::Path;

use super::grey::decode_grey;
use super::{AxisMap, CtVolume, InputKind, IntensityScale, VolumeMeta};
use crate::error::Result;

/// Decode an 8-bit image. Its pixels have no physical size, so `spacing_known` is false.
pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<CtVolume> {
    let grey = decode_grey(bytes, name)?;
    let dims = [grey.width, grey.height, 1];
    let affine = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    Ok(CtVolume {
        voxels: grey.pixels.iter().map(|&p| i16::from(p)).collect(),
        dims,
        spacing_mm: [1.0, 1.0, 1.0],
        spacing_known: false,
        affine,
        axis_map: AxisMap::identity(dims),
        input_affine: affine,
        scale: IntensityScale::Display8Bit,
        kind: InputKind::Image,
        meta: VolumeMeta {
            n_files: 1,
            warnings: vec![
                "8-bit image: already windowed, no Hounsfield units and no pixel size; areas \
                 are reported in pixels, never mL"
                    .into(),
            ],
            ..Default::default()
        },
    })
}
