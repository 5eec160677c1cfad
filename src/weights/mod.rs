//! Weights on disk and in memory: a model directory holds `config.json` (a [`ShippedConfig`]),
//! `model.bpk` (Burn's burnpack record, parameters stored as f16: what training writes and
//! starts from) and, for a shipped model, `model.q8` (the same parameters as 8-bit integers,
//! [`int8`]; written by `ctscreen quantize`): what the page downloads and the CLI runs. Both are
//! computed in f32. Loading works from bytes, which is what the browser has.

pub mod int8;

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType};

use crate::error::{Error, Result};
use crate::model::{MultiTaskConfig, MultiTaskModel};

/// File names inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.bpk";
pub const INT8_FILE: &str = "model.q8";

/// What ships next to the weights.
#[derive(Config, Debug, PartialEq)]
pub struct ShippedConfig {
    /// Human-readable model version, shown in reports.
    pub version: String,
    pub model: MultiTaskConfig,
    /// Side of the square grid the model runs on.
    #[config(default = 256)]
    pub input_size: usize,
    /// Per-slice reconstruction MSE above which a slice is flagged out of distribution
    /// (calibrated on validation data; `None` until calibrated).
    #[config(default = "None")]
    pub ood_threshold: Option<f32>,
}

/// Casts every float parameter to one dtype.
struct CastParams(DType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// Serialise a model's parameters as f16 burnpack bytes.
pub fn to_bytes(model: &MultiTaskModel) -> Result<Vec<u8>> {
    let half = model.valid().map(&mut CastParams(DType::F16));
    let bytes = half
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Weights {
            path: "<memory>".into(),
            reason: e.to_string(),
        })?;
    Ok(bytes.to_vec())
}

/// Parse a config from JSON bytes.
pub fn config_from_bytes(bytes: &[u8], name: &str) -> Result<ShippedConfig> {
    let cfg = ShippedConfig::load_binary(bytes).map_err(|e| Error::Config {
        path: name.into(),
        reason: e.to_string(),
    })?;
    cfg.model.validate().map_err(|reason| Error::Config {
        path: name.into(),
        reason,
    })?;
    if cfg.input_size == 0 || cfg.input_size % cfg.model.size_multiple() != 0 {
        return Err(Error::Config {
            path: name.into(),
            reason: format!(
                "input_size {} is not a positive multiple of {}",
                cfg.input_size,
                cfg.model.size_multiple()
            ),
        });
    }
    Ok(cfg)
}

/// Build the architecture from `cfg` on `device` and load `bytes` into it (`model.q8` or a
/// burnpack, told apart by their first bytes). Fails,
/// never panics, on corrupt bytes or on weights that do not fit the configuration.
pub fn model_from_bytes(
    cfg: &MultiTaskConfig,
    bytes: Vec<u8>,
    device: &Device,
    name: &str,
) -> Result<MultiTaskModel> {
    let err = |reason: String| Error::Weights {
        path: name.into(),
        reason,
    };
    if int8::is_int8(&bytes) {
        return int8::load(cfg.init(device), &bytes, device).map_err(err);
    }
    // The burnpack reader indexes into the buffer using offsets from its header; catch a
    // corrupt header's panic natively as a last line of defence (wasm aborts instead, so the
    // reader's own checks are what protect the page).
    let record =
        std::panic::catch_unwind(|| ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)))
            .map_err(|_| err("corrupt burnpack data".into()))?
            .map_err(|e| err(e.to_string()))?;
    let model = cfg.init(device);
    let model = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.try_load_record(record.cast_to_module_dtype())
    }))
    .map_err(|_| err("weights do not fit the configured architecture".into()))?
    .map_err(|e| {
        err(format!(
            "weights do not fit the configured architecture: {e}"
        ))
    })?;
    Ok(model)
}

/// A loaded model with its configuration.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub config: ShippedConfig,
    pub model: MultiTaskModel,
}

/// Load a model directory as it runs: `config.json` and `model.q8` where there is one, else
/// `model.bpk`.
pub fn load_dir(dir: &Path, device: &Device) -> Result<LoadedModel> {
    let int8 = dir.join(INT8_FILE);
    load_dir_file(
        dir,
        if int8.is_file() {
            INT8_FILE
        } else {
            WEIGHTS_FILE
        },
        device,
    )
}

/// Load a model directory's `config.json` and `model.bpk` (the training record, not rounded to
/// 8 bits): where a later training stage starts from.
pub fn load_record_dir(dir: &Path, device: &Device) -> Result<LoadedModel> {
    load_dir_file(dir, WEIGHTS_FILE, device)
}

fn load_dir_file(dir: &Path, weights_file: &str, device: &Device) -> Result<LoadedModel> {
    if !dir.is_dir() {
        return Err(Error::MissingDir(dir.to_path_buf()));
    }
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg_bytes = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let config = config_from_bytes(&cfg_bytes, &cfg_path.display().to_string())?;
    let w_path = dir.join(weights_file);
    let bytes = std::fs::read(&w_path).map_err(|e| Error::io(&w_path, e))?;
    let model = model_from_bytes(&config.model, bytes, device, &w_path.display().to_string())?;
    Ok(LoadedModel { config, model })
}

/// Write `model.q8` beside the `model.bpk` of `dir` (from that record, so quantizing twice gives
/// the same file).
pub fn quantize_dir(dir: &Path, device: &Device) -> Result<std::path::PathBuf> {
    let loaded = load_record_dir(dir, device)?;
    let path = dir.join(INT8_FILE);
    std::fs::write(&path, int8::encode(&loaded.model)).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Write `config.json` and `model.bpk` into `dir` (created if missing).
pub fn save_dir(dir: &Path, config: &ShippedConfig, model: &MultiTaskModel) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg_path = dir.join(CONFIG_FILE);
    config
        .save(&cfg_path)
        .map_err(|e| Error::io(&cfg_path, e))?;
    let w_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&w_path, to_bytes(model)?).map_err(|e| Error::io(&w_path, e))?;
    Ok(())
}
