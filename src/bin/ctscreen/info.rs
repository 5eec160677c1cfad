//! `ctscreen info` and `ctscreen lung`: an input as the readers see it, and its lung mask alone.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use ctscreen::error::{Error, Result};
use ctscreen::lung::lung_mask;
use ctscreen::volume::nii;

use crate::common::load_inputs;

#[derive(Args)]
pub struct InfoArgs {
    /// A DICOM folder or files, a NIfTI, or a PNG/JPEG.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    pub max_voxels: u64,
}

#[derive(Args)]
pub struct LungArgs {
    /// A DICOM folder or files, a NIfTI, or a PNG/JPEG.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the lung labels (1 right, 2 left) as .nii.gz on the input's grid.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    pub max_voxels: u64,
}

pub fn info(a: InfoArgs) -> Result<()> {
    let vol = load_inputs(&a.inputs, a.max_voxels)?;
    println!("{}", serde_json::to_string(&vol.info()).unwrap_or_default());
    Ok(())
}

pub fn lung(a: LungArgs) -> Result<()> {
    use ctscreen::lung::{LEFT, RIGHT};
    let vol = load_inputs(&a.inputs, a.max_voxels)?;
    let t = Instant::now();
    // What the mask costs beside the volume (the browser's worker holds both).
    let (m, usage) = ctscreen::alloc_cap::measure(|| lung_mask(&vol));
    let seconds = t.elapsed().as_secs_f64();
    let n2 = vol.slice_len();
    let with_lung = (0..vol.dims[2])
        .filter(|&z| {
            let px = m.slice(&vol, z).iter().filter(|&&l| l != 0).count();
            px > 0 && px as f64 >= ctscreen::slices::MIN_LUNG_SHARE * n2 as f64
        })
        .count();
    let (r, l) = (m.count(RIGHT), m.count(LEFT));
    let ml = vol.voxel_ml();
    if let Some(path) = &a.out {
        let bytes = nii::write_labels_nii_gz(&vol, &m.labels, "ctscreen lung 1=right 2=left")?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    }
    let value = serde_json::json!({
        "input": a.inputs[0].display().to_string(),
        "dims": vol.dims,
        "method": m.method,
        "approximate": m.approximate,
        "lung_px": {"left": l, "right": r},
        "lung_ml": ml.map(|v| serde_json::json!({"left": l as f64 * v, "right": r as f64 * v})),
        "slices_with_lung": with_lung,
        "lung_found": with_lung > 0,
        "seconds": seconds,
        "peak_mb_beside_volume": usage.peak_bytes as f64 / 1e6,
        "volume_mb": (vol.voxels.len() * std::mem::size_of::<i16>()) as f64 / 1e6,
    });
    println!("{value}");
    Ok(())
}
