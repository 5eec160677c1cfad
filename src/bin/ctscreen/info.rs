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
    /// Also compute the page's quick mask (on N×N block means) and print how it agrees with
    /// the full one: Dice, the model's frame from each, the slices each sends to the model.
    #[arg(long, value_name = "N")]
    pub coarse: Option<usize>,
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
    let mut value = value;
    if let Some(f) = a.coarse {
        value["coarse"] = coarse_agreement(&vol, &m, f);
    }
    println!("{value}");
    Ok(())
}

/// How the quick mask on `f`×`f` blocks agrees with the full mask `full` (`lung --coarse`).
fn coarse_agreement(
    vol: &ctscreen::volume::CtVolume,
    full: &ctscreen::lung::LungMask,
    f: usize,
) -> serde_json::Value {
    use ctscreen::pipeline::input_frame;
    use ctscreen::slices::model_slices;
    let t = Instant::now();
    let c = ctscreen::lung::coarse_lung_mask(vol, f);
    let seconds = t.elapsed().as_secs_f64();
    let (mut both, mut nf, mut nc) = (0usize, 0usize, 0usize);
    for (&a, &b) in full.labels.iter().zip(&c.labels) {
        nf += usize::from(a != 0);
        nc += usize::from(b != 0);
        both += usize::from(a != 0 && a == b);
    }
    let (run_full, run_coarse) = (model_slices(vol, full), model_slices(vol, &c));
    serde_json::json!({
        "factor": f,
        "seconds": seconds,
        "dice_same_side": 2.0 * both as f64 / (nf + nc).max(1) as f64,
        "frame": input_frame(vol, &c).crop,
        "frame_full": input_frame(vol, full).crop,
        "run_slices": run_coarse.len(),
        "run_slices_full": run_full.len(),
        "full_run_not_in_coarse": run_full.iter().filter(|z| !run_coarse.contains(z)).count(),
    })
}
