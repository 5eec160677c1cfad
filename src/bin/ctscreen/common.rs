//! What every command shares: the backend flag, the default model, loading inputs.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use ctscreen::device::Backend;
use ctscreen::error::Result;
use ctscreen::phantom::chest_phantom;
use ctscreen::volume::{self, CtVolume, Limits};
use ctscreen::weights;

#[derive(Args)]
pub struct DeviceArg {
    /// Compute backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub device: Backend,
}

/// What every command that runs the model takes: which model, on what, in batches of how many,
/// and the size a volume may have.
#[derive(Args)]
pub struct RunArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Slices per model batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Refuse volumes with more voxels than this (checked before allocation).
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    pub max_voxels: u64,
    /// Check the reconstruction (out of distribution) on every N-th slice with lung; by
    /// default every 4th, every slice on short series (`pipeline::recon_checked`); 1: all.
    #[arg(long)]
    pub recon_every: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The model directory every command defaults to: v2 beat v1 on the 8-bit validation of both
/// tasks and on the real-CT evaluation (its model card); v1 stays `--model models/ctscreen-v1`.
pub const DEFAULT_MODEL: &str = "models/ctscreen-v2";

/// Load a model directory; the default one, when it is not there (the tool run from another
/// folder, or installed), comes from the copy built into the binary.
pub fn load_model(dir: &Path, device: &burn::prelude::Device) -> Result<weights::LoadedModel> {
    if dir == Path::new(DEFAULT_MODEL) && !dir.is_dir() {
        let config = weights::config_from_bytes(
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/models/ctscreen-v2/config.json"
            )),
            "built-in ctscreen-v2/config.json",
        )?;
        let model = weights::model_from_bytes(
            &config.model,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/models/ctscreen-v2/model.q8"
            ))
            .to_vec(),
            device,
            "built-in ctscreen-v2/model.q8",
        )?;
        return Ok(weights::LoadedModel { config, model });
    }
    weights::load_dir(dir, device)
}

/// A JSON number, or null for NaN/∞ (JSON has no NaN).
pub fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// Read the inputs as one volume; `demo` (when no such file exists) is the synthetic phantom.
pub fn load_inputs(inputs: &[PathBuf], max_voxels: u64) -> Result<CtVolume> {
    let limits = Limits { max_voxels };
    if inputs.len() == 1 && inputs[0] == std::path::Path::new("demo") && !inputs[0].exists() {
        return Ok(chest_phantom(256, 256, 48, 1));
    }
    volume::load_paths(inputs, &limits)
}
