//! The browser boundary (wasm only): load the model once, analyse one image at a time. Thin by
//! design: everything here calls the same pipeline as the CLI, and every exported function
//! returns `Result<_, JsError>` so that bad input becomes a message, never a dead page.

use burn::prelude::*;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::inference::{SlicePrediction, batch_tensor, run};
use crate::model::MultiTaskModel;
use crate::preprocess::{decode_grey, to_model_grid};
use crate::weights::{ShippedConfig, config_from_bytes, model_from_bytes};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// One analysed image, as the page draws it.
#[derive(Serialize)]
pub struct ImageResult {
    pub name: String,
    pub width: usize,
    pub height: usize,
    /// The decoded grey image, row-major.
    #[serde(with = "serde_bytes")]
    pub grey: Vec<u8>,
    /// Per-pixel class on the image's own grid: 0 background, 1 GGO, 2 consolidation.
    #[serde(with = "serde_bytes")]
    pub classes: Vec<u8>,
    /// The reconstruction on the model grid (`size`×`size`, 0–255).
    #[serde(with = "serde_bytes")]
    pub recon: Vec<u8>,
    pub size: usize,
    pub p_covid: f32,
    pub lesion_px: usize,
    pub ggo_px: usize,
    pub consolidation_px: usize,
    pub lesion_pct: f64,
    pub recon_mse: Option<f32>,
    pub ood: Option<bool>,
    pub backend: String,
    pub model: String,
    pub ms: f64,
}

struct Loaded {
    model: MultiTaskModel,
    device: Device,
    backend: &'static str,
}

/// The model, loaded once per page (per worker).
#[wasm_bindgen]
pub struct Analyzer {
    config: ShippedConfig,
    weights: Vec<u8>,
    loaded: Loaded,
    gpu_error: Option<String>,
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

async fn load_on(config: &ShippedConfig, weights: &[u8], gpu: bool) -> Result<Loaded, String> {
    let (device, backend) = if gpu {
        let d = Device::wgpu_options()
            .init_async()
            .await
            .map_err(|e| format!("WebGPU unavailable: {e}"))?;
        (d, "webgpu")
    } else {
        (Device::flex(), "cpu (flex)")
    };
    let model = model_from_bytes(&config.model, weights.to_vec(), &device, "model.bpk")
        .map_err(|e| e.to_string())?;
    // Warm-up: compiles shaders / allocates once, and proves the device works before real input.
    let size = config.input_size;
    let zeros = vec![0.0f32; size * size];
    let input = batch_tensor(&[zeros.as_slice()], size, &device).map_err(|e| e.to_string())?;
    run(&model, input, false)
        .read_async()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Loaded {
        model,
        device,
        backend,
    })
}

#[wasm_bindgen]
impl Analyzer {
    /// Load `config.json` and `model.bpk` bytes; try WebGPU first when `prefer_gpu`, and fall
    /// back to the CPU backend if it is missing or fails.
    pub async fn create(
        config_json: Vec<u8>,
        weights: Vec<u8>,
        prefer_gpu: bool,
    ) -> Result<Analyzer, JsError> {
        let config = config_from_bytes(&config_json, "config.json").map_err(js)?;
        let mut gpu_error = None;
        let loaded = if prefer_gpu {
            match load_on(&config, &weights, true).await {
                Ok(l) => Some(l),
                Err(e) => {
                    gpu_error = Some(e);
                    None
                }
            }
        } else {
            None
        };
        let loaded = match loaded {
            Some(l) => l,
            None => load_on(&config, &weights, false).await.map_err(js)?,
        };
        Ok(Analyzer {
            config,
            weights,
            loaded,
            gpu_error,
        })
    }

    /// The backend in use: "webgpu" or "cpu (flex)".
    pub fn backend(&self) -> String {
        self.loaded.backend.to_string()
    }

    /// Why WebGPU is not in use, if it was asked for and failed.
    pub fn gpu_error(&self) -> Option<String> {
        self.gpu_error.clone()
    }

    pub fn model_version(&self) -> String {
        self.config.version.clone()
    }

    /// Analyse one PNG/JPEG slice. On a GPU error mid-run, switches to the CPU backend and
    /// retries once.
    pub async fn analyze_image(
        &mut self,
        bytes: Vec<u8>,
        name: String,
    ) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let img = decode_grey(&bytes, std::path::Path::new(&name)).map_err(js)?;
        let size = self.config.input_size;
        let (grid, lb) = to_model_grid(&img, size);
        let pred = match self.predict(&grid).await {
            Ok(p) => p,
            Err(e) if self.loaded.backend == "webgpu" => {
                self.gpu_error = Some(format!(
                    "WebGPU failed during analysis ({e}); switched to the CPU"
                ));
                self.loaded = load_on(&self.config, &self.weights, false)
                    .await
                    .map_err(js)?;
                self.predict(&grid).await.map_err(js)?
            }
            Err(e) => return Err(js(e)),
        };
        let classes = pred.classes_on(&lb);
        let count = |k: u8| classes.iter().filter(|&&c| c == k).count();
        let (ggo_px, consolidation_px) = (count(1), count(2));
        let lesion_px = ggo_px + consolidation_px;
        let ood = match (pred.recon_mse, self.config.ood_threshold) {
            (Some(e), Some(t)) => Some(e > t),
            _ => None,
        };
        let result = ImageResult {
            name,
            width: img.width,
            height: img.height,
            lesion_pct: 100.0 * lesion_px as f64 / (img.width * img.height).max(1) as f64,
            grey: img.pixels,
            classes,
            recon: pred
                .recon
                .as_ref()
                .map(|r| {
                    r.iter()
                        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                        .collect()
                })
                .unwrap_or_default(),
            size,
            p_covid: pred.p_covid(),
            lesion_px,
            ggo_px,
            consolidation_px,
            recon_mse: pred.recon_mse,
            ood,
            backend: self.loaded.backend.to_string(),
            model: self.config.version.clone(),
            ms: now_ms() - t0,
        };
        serde_wasm_bindgen::to_value(&result).map_err(js)
    }
}

impl Analyzer {
    async fn predict(&self, grid: &[f32]) -> Result<SlicePrediction, String> {
        let size = self.config.input_size;
        let input = batch_tensor(&[grid], size, &self.loaded.device).map_err(|e| e.to_string())?;
        run(&self.loaded.model, input, true)
            .read_async()
            .await
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| "no prediction returned".to_string())
    }
}
