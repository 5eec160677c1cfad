//! The browser boundary (wasm only): load the model once, load a volume, analyse it slice by
//! slice, report and export. Thin by
//! design: everything here calls the same pipeline as the CLI, and every exported function
//! returns `Result<_, JsError>` so that bad input becomes a message, never a dead page.

use std::cell::OnceCell;
use std::collections::HashMap;

use burn::prelude::*;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::inference::{PackedLayout, batch_tensor, run};
use crate::lung::{COARSE_FACTOR, LungJob, LungMask, coarse_lung_mask, lung_mask};
use crate::model::MultiTaskModel;
use crate::phantom::{SYNTHETIC_LABEL, chest_phantom};
use crate::pipeline::{
    InputFrame, SliceInput, finish_slice, input_frame, prepare_slice, recon_checked,
};
use crate::report::ReportContext;
use crate::slices::{SliceCounts, SliceResult};
use crate::volume::nii::{view_step, write_labels_nii_gz, write_view_hu, write_view_labels};
use crate::volume::{CtVolume, Limits, load_bytes_with};
use crate::weights::{ShippedConfig, config_from_bytes, model_from_bytes};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// What the page needs to show a loaded volume: its geometry and metadata. The voxels stay
/// here, once: the page asks for the slices it draws ([`Analyzer::slice_pixels`]), so a long
/// series is not held twice in the tab.
#[derive(Serialize)]
pub struct VolumeView {
    pub name: String,
    pub info: crate::volume::VolumeInfo,
    /// Patient z (mm) of each slice, when the spacing is physical.
    pub positions_mm: Vec<Option<f64>>,
    pub synthetic: bool,
    pub load_ms: f64,
    /// Canonical voxel index → patient LPS mm (rows x, y, z), for the viewer's crosshair.
    pub affine: crate::volume::Affine,
}

/// One analysed slice's figures, as the page lists them; its overlay is asked for when the
/// slice is drawn ([`Analyzer::slice_overlay`]).
#[derive(Serialize)]
pub struct SliceView {
    pub z: usize,
    /// Whether the slice shows lung (the report's rule).
    pub has_lung: bool,
    /// The reconstruction on the model grid (`size`×`size`, 0–255).
    #[serde(with = "serde_bytes")]
    pub recon: Vec<u8>,
    pub size: usize,
    pub p_covid: Option<f32>,
    pub lesion_px: usize,
    pub recon_mse: Option<f32>,
    pub ood: Option<bool>,
    pub backend: String,
    pub ms: f64,
}

/// The overlay of one analysed slice, on the slice grid.
#[derive(Serialize)]
pub struct SliceOverlay {
    /// Per-pixel class: 0 background, 1 GGO, 2 consolidation, after the lesion rule (inside
    /// the lung or its envelope; see `lung::lesions_in_lung`), as counted.
    #[serde(with = "serde_bytes")]
    pub classes: Vec<u8>,
    /// The lung labels (0 none, 1 right, 2 left) with the lesions they absorbed, for the
    /// viewer's lung outline.
    #[serde(with = "serde_bytes")]
    pub lung: Vec<u8>,
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
    current: Option<Current>,
    /// The earlier scan of a follow-up comparison, kept whole (volume, results, lung) so that
    /// both scans can be viewed side by side ([`Analyzer::keep_as_baseline`]).
    baseline: Option<Current>,
    /// Files handed over one by one for the next load ([`Analyzer::stage_file`]).
    staged: Vec<(std::path::PathBuf, Vec<u8>)>,
}

/// WebGPU is given up for the CPU when one slice takes this many times longer there (the CPU
/// path also spreads over every core, so even at par it would be faster on a volume).
const GPU_SLOWER: f64 = 1.5;

/// What the CPU backend is called in views and reports.
const CPU_BACKEND: &str = "cpu (flex)";

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
        (Device::flex(), CPU_BACKEND)
    };
    let model = model_from_bytes(&config.model, weights.to_vec(), &device, "model.q8")
        .map_err(|e| e.to_string())?;
    let loaded = Loaded {
        model,
        device,
        backend,
    };
    // Warm-up: compiles shaders / allocates once, and proves the device works before real input.
    let size = config.input_size;
    let zeros = vec![0.0f32; size * size];
    loaded.predict(&[zeros.as_slice()], size, false).await?;
    Ok(loaded)
}

/// Milliseconds for one (warm) slice through the model with its reconstruction, as analysed.
async fn time_one_slice(loaded: &Loaded, size: usize) -> Result<f64, String> {
    let zeros = vec![0.0f32; size * size];
    let t0 = now_ms();
    loaded.predict(&[zeros.as_slice()], size, true).await?;
    Ok(now_ms() - t0)
}

impl Loaded {
    /// One batch through the model and back: `[N]` grids of `size²` in, the packed rows out
    /// (`inference::PackedLayout`), with one readback.
    async fn predict(
        &self,
        grids: &[&[f32]],
        size: usize,
        with_recon: bool,
    ) -> Result<Vec<f32>, String> {
        let input = batch_tensor(grids, size, &self.device).map_err(|e| e.to_string())?;
        run(&self.model, input, with_recon)
            .read_flat_async()
            .await
            .map_err(|e| e.to_string())
    }
}

#[wasm_bindgen]
impl Analyzer {
    /// Load `config.json` and `model.q8` bytes; try WebGPU first when `prefer_gpu`, and fall
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
            current: None,
            baseline: None,
            staged: Vec::new(),
        })
    }

    /// On WebGPU, time one warm slice there and one on the CPU backend, and keep the CPU when
    /// the GPU is slower than [`GPU_SLOWER`] times it: a software adapter (SwiftShader, a
    /// blocklisted GPU's fallback) can be many times slower than the CPU path, and the user
    /// should not pay for that without being told. Returns `{gpu_ms, cpu_ms, switched}`
    /// (`null` when not on WebGPU); the reason is then in [`gpu_error`](Self::gpu_error).
    pub async fn race_cpu(&mut self) -> Result<JsValue, JsError> {
        if self.loaded.backend != "webgpu" {
            return Ok(JsValue::NULL);
        }
        let size = self.config.input_size;
        let gpu_ms = time_one_slice(&self.loaded, size).await.map_err(js)?;
        let cpu = load_on(&self.config, &self.weights, false)
            .await
            .map_err(js)?;
        let cpu_ms = time_one_slice(&cpu, size).await.map_err(js)?;
        let switched = gpu_ms > GPU_SLOWER * cpu_ms;
        if switched {
            self.gpu_error = Some(format!(
                "WebGPU took {gpu_ms:.0} ms per slice on this adapter against {cpu_ms:.0} ms on \
                 the CPU, so the CPU is used (a software or fallback GPU adapter)"
            ));
            self.loaded = cpu;
        }
        #[derive(Serialize)]
        struct Race {
            gpu_ms: f64,
            cpu_ms: f64,
            switched: bool,
        }
        serde_wasm_bindgen::to_value(&Race {
            gpu_ms,
            cpu_ms,
            switched,
        })
        .map_err(js)
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

    /// Start a new load: the previous volume and anything staged are dropped, so their
    /// memory serves the next one.
    pub fn begin_load(&mut self) {
        self.current = None;
        self.staged = Vec::new();
    }

    /// Hand over one file of the next volume ([`begin_load`](Self::begin_load) first). One at
    /// a time, so the worker never holds the whole series twice (as JS buffers and here).
    /// Returns the voxels the file's DICOM header declares (0 for anything else): what
    /// decoding it in a pool worker would cost ([`decode_dicom_file`]).
    pub fn stage_file(&mut self, name: String, bytes: Vec<u8>) -> f64 {
        let path = std::path::PathBuf::from(name);
        let voxels = crate::volume::dicom::header_voxels(&path, &bytes);
        self.staged.push((path, bytes));
        voxels as f64
    }

    /// Load the staged files (a DICOM series, one NIfTI, or one PNG/JPEG) as the current
    /// volume. A volume over `max_voxels` (what this device's memory can hold; see worker.js)
    /// is refused from its headers, before its pixels are decoded. `predecoded(name)`, when
    /// given, returns a file's pixels as [`decode_dicom_file`] decoded them in a pool worker
    /// (an `Int16Array`), or `undefined` to decode here.
    pub fn load_staged(
        &mut self,
        max_voxels: f64,
        predecoded: Option<js_sys::Function>,
    ) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let files = std::mem::take(&mut self.staged);
        let name = match files.len() {
            0 => String::new(),
            1 => files[0].0.display().to_string(),
            n => format!("{n} files"),
        };
        let limits = Limits {
            max_voxels: if max_voxels >= 1.0 {
                (max_voxels as u64).min(Limits::default().max_voxels)
            } else {
                Limits::default().max_voxels
            },
        };
        let mut from_pool = |path: &std::path::Path| {
            let f = predecoded.as_ref()?;
            let v = f
                .call1(&JsValue::NULL, &JsValue::from_str(&path.to_string_lossy()))
                .ok()?;
            v.dyn_into::<js_sys::Int16Array>().ok().map(|a| a.to_vec())
        };
        let vol = load_bytes_with(files, &limits, &mut from_pool).map_err(js)?;
        self.set_volume(name, vol, t0)
    }

    /// Which slices the model runs on: those with lung (`slices::model_slices`, computing the
    /// lung mask), ascending, as `{run: [z…], recon: [z…], skipped: [slice view…]}`; `recon`
    /// are the slices of `run` whose reconstruction is checked (`pipeline::recon_checked`, as
    /// the CLI). The others are stored as analysed without the model now (no p, no lesion) and
    /// come back as their views. `recon_every` > 0 checks every N-th slice instead of the
    /// default sample (`?reconevery=N`, for benchmarks).
    pub fn plan_slices(&mut self, recon_every: u32) -> Result<JsValue, JsError> {
        // The coarse mask goes before the full one is made (never both at once), and so does
        // a stepwise mask left unfinished (a cancelled first estimate).
        if let Some(cur) = self.current.as_mut() {
            cur.quick = None;
            cur.lung_job = None;
        }
        let run: Vec<usize> = {
            let (cur, lung) = self.current_with_lung()?;
            crate::slices::model_slices(&cur.volume, lung)
        };
        let size = self.config.input_size;
        let cur = self
            .current
            .as_mut()
            .ok_or_else(|| JsError::new("no volume is loaded"))?;
        cur.recon = vec![false; cur.volume.dims[2]];
        let mut recon = Vec::new();
        for (&z, c) in run.iter().zip(recon_checked(
            run.len(),
            (recon_every > 0).then_some(recon_every as usize),
        )) {
            cur.recon[z] = c;
            if c {
                recon.push(z);
            }
        }
        let mut skipped = Vec::new();
        let mut k = 0;
        for z in 0..cur.volume.dims[2] {
            if run.get(k) == Some(&z) {
                k += 1;
                continue;
            }
            let mut r = SliceResult::without_model(z);
            r.counts = Some(SliceCounts::default());
            if let Err(i) = cur.results.binary_search_by_key(&z, |r| r.z) {
                cur.results.insert(i, r);
            }
            skipped.push(SliceView {
                z,
                has_lung: false,
                recon: Vec::new(),
                size,
                p_covid: None,
                lesion_px: 0,
                recon_mse: None,
                ood: None,
                backend: String::new(),
                ms: 0.0,
            });
        }
        #[derive(Serialize)]
        struct Plan {
            run: Vec<usize>,
            recon: Vec<usize>,
            skipped: Vec<SliceView>,
        }
        serde_wasm_bindgen::to_value(&Plan {
            run,
            recon,
            skipped,
        })
        .map_err(js)
    }

    /// The stored values (int16 HU, or 0–255 for 8-bit input) of slice `z`, `[y][x]`, for
    /// drawing.
    pub fn slice_pixels(&self, z: u32) -> Result<Vec<i16>, JsError> {
        Current::pixels(self.current.as_ref(), z)
    }

    /// The lesion classes and lung labels of slice `z` as counted, or `null` if it has not been
    /// analysed yet.
    pub fn slice_overlay(&self, z: u32) -> Result<JsValue, JsError> {
        Current::overlay(self.current.as_ref(), z)
    }

    /// [`slice_pixels`](Self::slice_pixels) of the baseline scan of a comparison.
    pub fn baseline_slice_pixels(&self, z: u32) -> Result<Vec<i16>, JsError> {
        Current::pixels(self.baseline.as_ref(), z)
    }

    /// [`slice_overlay`](Self::slice_overlay) of the baseline scan of a comparison.
    pub fn baseline_slice_overlay(&self, z: u32) -> Result<JsValue, JsError> {
        Current::overlay(self.baseline.as_ref(), z)
    }

    /// Keep the current scan (analysed, or cancelled part way) as the baseline of a follow-up
    /// comparison; the next load becomes the follow-up. A baseline kept before is dropped.
    pub fn keep_as_baseline(&mut self) -> Result<(), JsError> {
        if self.current.is_none() && self.baseline.is_some() {
            // A follow-up load replaced by another before its volume arrived: still kept.
            return Ok(());
        }
        let cur = self
            .current
            .take()
            .ok_or_else(|| JsError::new("no scan is loaded to compare a follow-up with"))?;
        if cur.results.is_empty() {
            self.current = Some(cur);
            return Err(JsError::new(
                "the scan has not been analysed yet: analyse it before adding a follow-up",
            ));
        }
        self.baseline = Some(cur);
        Ok(())
    }

    /// The follow-up could not be loaded: the baseline becomes the current scan again, with its
    /// results. False when there was no baseline.
    pub fn restore_baseline(&mut self) -> bool {
        match self.baseline.take() {
            Some(b) => {
                self.current = Some(b);
                true
            }
            None => false,
        }
    }

    /// Swap baseline and follow-up (when the dates are unknown or the order was wrong).
    pub fn swap_scans(&mut self) -> Result<(), JsError> {
        if self.baseline.is_none() || self.current.is_none() {
            return Err(JsError::new("there is no comparison to swap"));
        }
        std::mem::swap(&mut self.baseline, &mut self.current);
        Ok(())
    }

    /// End the comparison: the baseline's memory is freed.
    pub fn drop_baseline(&mut self) {
        self.baseline = None;
    }

    pub fn has_current(&self) -> bool {
        self.current.is_some()
    }

    pub fn has_baseline(&self) -> bool {
        self.baseline.is_some()
    }

    /// Voxels held by the baseline (the next load gets what is left of the memory budget).
    pub fn baseline_voxels(&self) -> f64 {
        self.baseline
            .as_ref()
            .map_or(0.0, |b| b.volume.voxels.len() as f64)
    }

    /// The follow-up comparison of the baseline and the current scan (`compare::compare`, as
    /// `ctscreen compare --json` prints it) as JSON text.
    pub fn compare(&self) -> Result<JsValue, JsError> {
        let base = self
            .baseline
            .as_ref()
            .ok_or_else(|| JsError::new("no baseline scan is kept for a comparison"))?;
        let fu = self
            .current
            .as_ref()
            .ok_or_else(|| JsError::new("no follow-up scan is loaded"))?;
        let c = crate::compare::compare(
            self.report_of(base),
            &crate::compare::ScanFacts::of(&base.volume),
            self.report_of(fu),
            &crate::compare::ScanFacts::of(&fu.volume),
        );
        let json = serde_json::to_string_pretty(&c).map_err(js)?;
        Ok(JsValue::from_str(&json))
    }

    /// Load the synthetic chest phantom (the demo without data).
    pub fn load_demo(&mut self) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let vol = chest_phantom(256, 256, 32, 1);
        self.set_volume(SYNTHETIC_LABEL.to_string(), vol, t0)
    }

    /// Analyse slices `zs` of the current volume as one batch: one dispatch and one readback
    /// (on WebGPU that is what costs), returned as an array of slice views in the order given.
    /// On a GPU error mid-batch, switches to the CPU backend and runs the whole batch again
    /// there, so no slice is lost or counted twice; finished slices are kept.
    pub async fn analyze_slices(&mut self, zs: Vec<u32>) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let grids = self.prepare_slices(zs.clone())?;
        let size = self.config.input_size;
        let grids: Vec<&[f32]> = grids.chunks_exact(size * size).collect();
        let with_recon = self.recon_wanted(&zs);
        let packed = match self.loaded.predict(&grids, size, with_recon).await {
            Ok(p) => p,
            Err(e) if self.loaded.backend == "webgpu" => {
                self.gpu_error = Some(format!(
                    "WebGPU failed during analysis ({e}); switched to the CPU"
                ));
                self.loaded = load_on(&self.config, &self.weights, false)
                    .await
                    .map_err(js)?;
                self.loaded
                    .predict(&grids, size, with_recon)
                    .await
                    .map_err(js)?
            }
            Err(e) => return Err(js(e)),
        };
        let backend = self.loaded.backend.to_string();
        self.finish(&zs, packed, &backend, now_ms() - t0)
    }

    /// One step of the lung mask (a fraction of it; see [`LungJob`]), so the worker can answer
    /// its model workers between steps; true once the mask is made (then
    /// [`plan_slices`](Self::plan_slices) and everything after it use it as computed here).
    pub fn lung_step(&mut self) -> Result<bool, JsError> {
        let cur = self.current_mut()?;
        if cur.lung.get().is_some() {
            return Ok(true);
        }
        let job = cur
            .lung_job
            .get_or_insert_with(|| LungJob::new(&cur.volume));
        let Some(mask) = job.step(&cur.volume) else {
            return Ok(false);
        };
        cur.lung_job = None;
        // Just checked empty; a lost race is impossible in one thread.
        let _ = cur.lung.set(mask);
        Ok(true)
    }

    /// The first estimate on long series, before the full lung mask (seconds in a browser)
    /// is computed: a coarse mask on 4×4 block means ([`COARSE_FACTOR`], a tenth of the time
    /// in the page) gives the slices with lung, returned ascending, and the frame; the page
    /// analyses a spread few of them ([`prepare_quick`](Self::prepare_quick),
    /// [`finish_quick`](Self::finish_quick)) and shows [`quick_report`](Self::quick_report)
    /// as a provisional estimate. [`plan_slices`](Self::plan_slices) drops this state.
    pub fn quick_plan(&mut self) -> Result<Vec<u32>, JsError> {
        let cur = self.current_mut()?;
        let lung = coarse_lung_mask(&cur.volume, COARSE_FACTOR);
        let run = crate::slices::model_slices(&cur.volume, &lung);
        cur.quick = Some(Quick {
            frame: input_frame(&cur.volume, &lung),
            lung,
            pending: HashMap::new(),
            results: Vec::new(),
        });
        Ok(run.into_iter().map(|z| z as u32).collect())
    }

    /// The model inputs of slices `zs` framed by the quick plan, as
    /// [`prepare_slices`](Self::prepare_slices) does for the full one.
    pub fn prepare_quick(&mut self, zs: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let size = self.config.input_size;
        let (vol, quick) = self.quick_state()?;
        let (grids, inputs) = prepare_on(vol, &quick.frame, &zs, size)?;
        quick.pending.extend(inputs.into_iter().map(|i| (i.z, i)));
        Ok(grids)
    }

    /// Take a model worker's packed outputs (without the reconstruction: the first estimate
    /// does not check it) for slices `zs` prepared by [`prepare_quick`](Self::prepare_quick).
    pub fn finish_quick(&mut self, zs: Vec<u32>, packed: Vec<f32>) -> Result<(), JsError> {
        let preds = self.layout(zs.len(), false).unpack(packed).map_err(js)?;
        let ood = self.config.ood_threshold;
        let (vol, quick) = self.quick_state()?;
        for (pred, &z) in preds.iter().zip(&zs) {
            let input = quick.pending.remove(&(z as usize)).ok_or_else(|| {
                JsError::new(&format!(
                    "slice {z} was not prepared for the first estimate"
                ))
            })?;
            let result = counted(pred, &input, vol, &quick.lung, ood);
            if let Err(i) = quick.results.binary_search_by_key(&input.z, |r| r.z) {
                quick.results.insert(i, result);
            }
        }
        Ok(())
    }

    /// Analyse slices `zs` of the first estimate here, as one batch (the GPU path, where this
    /// worker runs the model): [`prepare_quick`](Self::prepare_quick), the model without the
    /// reconstruction, [`finish_quick`](Self::finish_quick). A GPU error fails the estimate
    /// only; the analysis proper has its own fallback.
    pub async fn analyze_quick(&mut self, zs: Vec<u32>) -> Result<(), JsError> {
        let grids = self.prepare_quick(zs.clone())?;
        let size = self.config.input_size;
        let slices: Vec<&[f32]> = grids.chunks_exact(size * size).collect();
        let packed = self
            .loaded
            .predict(&slices, size, false)
            .await
            .map_err(js)?;
        self.finish_quick(zs, packed)
    }

    /// The report over the first estimate's slices, on the coarse mask (JSON text, as
    /// [`report`](Self::report)); ends the first estimate and frees its mask.
    pub fn quick_report(&mut self) -> Result<JsValue, JsError> {
        let quick = self.current_mut()?.quick.take().ok_or_else(no_estimate)?;
        let cur = self.current.as_ref().ok_or_else(no_volume)?;
        report_json(&self.report_on(cur, &quick.lung, &quick.results))
    }

    fn quick_state(&mut self) -> Result<(&CtVolume, &mut Quick), JsError> {
        let cur = self.current_mut()?;
        let quick = cur.quick.as_mut().ok_or_else(no_estimate)?;
        Ok((&cur.volume, quick))
    }

    fn current_mut(&mut self) -> Result<&mut Current, JsError> {
        self.current.as_mut().ok_or_else(no_volume)
    }

    /// The model inputs of slices `zs` (`[N, size, size]` values, flattened), for a model
    /// worker; kept here until [`finish_slices`](Self::finish_slices) receives their outputs.
    pub fn prepare_slices(&mut self, zs: Vec<u32>) -> Result<Vec<f32>, JsError> {
        let size = self.config.input_size;
        let (cur, lung) = self.current_with_lung()?;
        let frame = cur.frame.get_or_init(|| input_frame(&cur.volume, lung));
        let (grids, inputs) = prepare_on(&cur.volume, frame, &zs, size)?;
        if let Some(cur) = self.current.as_mut() {
            cur.pending.extend(inputs.into_iter().map(|i| (i.z, i)));
        }
        Ok(grids)
    }

    /// Take a model worker's packed outputs (see `ModelRunner::predict`) for slices `zs`,
    /// prepared earlier by [`prepare_slices`](Self::prepare_slices), and finish them as
    /// [`analyze_slices`](Self::analyze_slices) does. `ms` is the worker's time per slice.
    /// The worker computed the reconstruction for the slices in the plan's `recon`.
    pub fn finish_slices(
        &mut self,
        zs: Vec<u32>,
        packed: Vec<f32>,
        ms: f64,
    ) -> Result<JsValue, JsError> {
        self.finish(&zs, packed, CPU_BACKEND, ms * zs.len() as f64)
    }

    /// The report over the slices analysed so far (all of them unless cancelled), with the lung
    /// mask computed on first use.
    pub fn report(&self) -> Result<JsValue, JsError> {
        let cur = self.current.as_ref().ok_or_else(no_volume)?;
        report_json(&self.report_of(cur))
    }

    /// The lesion mask (1 GGO, 2 consolidation, inside the lungs) as `.nii.gz` bytes on the
    /// input's grid and orientation.
    pub fn mask_nifti(&self) -> Result<Vec<u8>, JsError> {
        let (cur, labels) = self.lesion_labels()?;
        write_labels_nii_gz(&cur.volume, &labels, "ctscreen lesions 1=GGO 2=cons").map_err(js)
    }

    /// A copy of the current scan for the multiplanar and 3-D viewer, as an uncompressed
    /// NIfTI-1 on the canonical grid: `what` is `"hu"` (int16), `"lesions"` (1 GGO,
    /// 2 consolidation, what is analysed so far; drawn filled) or `"lung"` (1 right, 2 left, as
    /// counted; a label map, drawn as its outline).
    /// Volumes over `max_voxels` are averaged in-plane in 2×2 (3×3, …) blocks, never across
    /// slices; all three use the same grid. The axial pane keeps the full resolution.
    pub fn viewer_nifti(&self, what: &str, max_voxels: u32) -> Result<Vec<u8>, JsError> {
        let cur = self
            .current
            .as_ref()
            .ok_or_else(|| JsError::new("no volume is loaded"))?;
        let step = view_step(cur.volume.dims, max_voxels.max(1) as usize);
        match what {
            "hu" => write_view_hu(&cur.volume, step),
            "lesions" => {
                let (cur, labels) = self.lesion_labels()?;
                write_view_labels(
                    &cur.volume,
                    &labels,
                    step,
                    "ctscreen lesions 1=GGO 2=cons",
                    false,
                )
            }
            "lung" => {
                write_view_labels(&cur.volume, &cur.lung().labels, step, "ctscreen lung", true)
            }
            other => return Err(JsError::new(&format!("no viewer volume called {other:?}"))),
        }
        .map_err(js)
    }

    /// The lesions as a DICOM Segmentation referencing the input series (DICOM input only).
    pub fn mask_dicom_seg(&self) -> Result<Vec<u8>, JsError> {
        let (cur, labels) = self.lesion_labels()?;
        crate::dicom_seg::write_seg(&cur.volume, &labels).map_err(js)
    }
}

/// The volume being viewed and what has been computed for it.
struct Current {
    name: String,
    volume: CtVolume,
    /// Analysed slices, in z order.
    results: Vec<SliceResult>,
    /// Computed on first use (the first analysed slice, the outline, the report or an export),
    /// not at load: it is not needed to view.
    lung: OnceCell<LungMask>,
    /// How the slices are framed for the model (from the lung mask), on first use.
    frame: OnceCell<InputFrame>,
    /// Slices prepared for a model worker and not finished yet, by z.
    pending: HashMap<usize, SliceInput>,
    /// Whether slice z's reconstruction is checked (`pipeline::recon_checked` over the slices
    /// the model runs on), set by `plan_slices`; empty before it: every slice.
    recon: Vec<bool>,
    /// The first estimate's state while it is computed (see [`Analyzer::quick_plan`]).
    quick: Option<Quick>,
    /// The lung mask while it is made a step at a time ([`Analyzer::lung_step`]).
    lung_job: Option<LungJob>,
}

/// The first estimate: a coarse lung mask ([`coarse_lung_mask`]), the frame it gives, and the
/// few slices analysed on them. Nothing of it reaches the final results: they are computed
/// again on the full mask's frame, so the final report is the same with or without it.
struct Quick {
    lung: LungMask,
    frame: InputFrame,
    pending: HashMap<usize, SliceInput>,
    results: Vec<SliceResult>,
}

impl Current {
    /// Whether any of slices `zs` has its reconstruction checked: one model call computes the
    /// decoder for all of its slices or for none.
    fn recon_wanted(&self, zs: &[u32]) -> bool {
        zs.iter()
            .any(|&z| self.recon.get(z as usize).copied().unwrap_or(true))
    }

    fn lung(&self) -> &LungMask {
        self.lung.get_or_init(|| lung_mask(&self.volume))
    }

    fn pixels(cur: Option<&Current>, z: u32) -> Result<Vec<i16>, JsError> {
        let cur = cur.ok_or_else(|| JsError::new("no volume is loaded"))?;
        let z = z as usize;
        if z >= cur.volume.dims[2] {
            return Err(JsError::new(&format!("slice {z} is out of range")));
        }
        Ok(cur.volume.slice(z).to_vec())
    }

    fn overlay(cur: Option<&Current>, z: u32) -> Result<JsValue, JsError> {
        let cur = cur.ok_or_else(|| JsError::new("no volume is loaded"))?;
        let Ok(i) = cur.results.binary_search_by_key(&(z as usize), |r| r.z) else {
            return Ok(JsValue::NULL);
        };
        let (lung, classes) =
            crate::slices::slice_in_lung(&cur.volume, cur.lung(), &cur.results[i]);
        serde_wasm_bindgen::to_value(&SliceOverlay { classes, lung }).map_err(js)
    }
}

impl Analyzer {
    /// The report of `cur` over the slices analysed so far (all of them unless cancelled).
    fn report_of(&self, cur: &Current) -> crate::report::Report {
        self.report_on(cur, cur.lung(), &cur.results)
    }

    /// The report of `cur`'s volume with `lung` and `results` (the full analysis, or the first
    /// estimate's).
    fn report_on(
        &self,
        cur: &Current,
        lung: &LungMask,
        results: &[SliceResult],
    ) -> crate::report::Report {
        let ctx = ReportContext {
            input: &cur.name,
            model: &self.config.version,
            backend: self.loaded.backend,
        };
        crate::report::build(&ctx, &cur.volume, lung, results)
    }

    /// How a model call's outputs for `n` slices are packed (`ModelRunner::predict`).
    fn layout(&self, n: usize, with_recon: bool) -> PackedLayout {
        PackedLayout {
            n,
            size: self.config.input_size,
            seg_classes: self.config.model.seg_classes,
            n_classes: self.config.model.n_classes,
            with_recon,
        }
    }

    /// The current volume with its lung mask, computed on first use.
    fn current_with_lung(&self) -> Result<(&Current, &LungMask), JsError> {
        let cur = self
            .current
            .as_ref()
            .ok_or_else(|| JsError::new("no volume is loaded"))?;
        Ok((cur, cur.lung()))
    }

    /// The lesion label map of what has been analysed so far (inside the lungs).
    fn lesion_labels(&self) -> Result<(&Current, Vec<u8>), JsError> {
        let (cur, lung) = self.current_with_lung()?;
        let labels = crate::slices::lesion_labels(&cur.volume, lung, &cur.results);
        Ok((cur, labels))
    }

    fn set_volume(&mut self, name: String, vol: CtVolume, t0: f64) -> Result<JsValue, JsError> {
        let view = VolumeView {
            name: name.clone(),
            info: vol.info(),
            positions_mm: (0..vol.dims[2])
                .map(|z| vol.spacing_known.then(|| vol.slice_position_mm(z)))
                .collect(),
            synthetic: vol.kind == crate::volume::InputKind::Synthetic,
            load_ms: now_ms() - t0,
            affine: vol.affine,
        };
        self.current = Some(Current {
            name,
            volume: vol,
            results: Vec::new(),
            lung: OnceCell::new(),
            frame: OnceCell::new(),
            pending: HashMap::new(),
            recon: Vec::new(),
            quick: None,
            lung_job: None,
        });
        serde_wasm_bindgen::to_value(&view).map_err(js)
    }
}

impl Analyzer {
    /// Whether the model call for slices `zs` computes the reconstruction (the
    /// out-of-distribution check): true when any of them is in the plan's `recon`, or before a
    /// plan.
    fn recon_wanted(&self, zs: &[u32]) -> bool {
        self.current.as_ref().is_none_or(|c| c.recon_wanted(zs))
    }

    /// Unpack the outputs of the prepared slices `zs`, paste them back on the slice grid, apply
    /// the lesion rule, store the results and return the views. `ms` is the whole batch's time.
    /// The outputs carry the reconstruction when [`recon_wanted`](Self::recon_wanted) says so,
    /// as the model was asked.
    fn finish(
        &mut self,
        zs: &[u32],
        packed: Vec<f32>,
        backend: &str,
        ms: f64,
    ) -> Result<JsValue, JsError> {
        let size = self.config.input_size;
        let with_recon = self.recon_wanted(zs);
        let mut preds = self
            .layout(zs.len(), with_recon)
            .unpack(packed)
            .map_err(js)?;
        let mut inputs = Vec::with_capacity(zs.len());
        {
            let cur = self
                .current
                .as_mut()
                .ok_or_else(|| JsError::new("no volume is loaded"))?;
            for &z in zs {
                inputs.push(cur.pending.remove(&(z as usize)).ok_or_else(|| {
                    JsError::new(&format!("slice {z} was not prepared for analysis"))
                })?);
            }
        }
        // A batch that computed the decoder for one sampled slice keeps only that one's check,
        // so the page flags the same slices as the CLI whatever the batching.
        if let Some(cur) = self.current.as_ref() {
            for (pred, &z) in preds.iter_mut().zip(zs) {
                if !cur.recon_wanted(&[z]) {
                    (pred.recon, pred.recon_mse) = (None, None);
                }
            }
        }
        let ms = ms / zs.len().max(1) as f64;
        let mut views = Vec::with_capacity(inputs.len());
        for (pred, input) in preds.iter().zip(&inputs) {
            let (cur, lung) = self.current_with_lung()?;
            let result = counted(pred, input, &cur.volume, lung, self.config.ood_threshold);
            let counts = result.counts.unwrap_or_default();
            views.push(SliceView {
                z: input.z,
                lesion_px: counts.lesion(),
                has_lung: counts.has_lung(cur.volume.slice_len()),
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
                p_covid: result.p_covid,
                recon_mse: result.recon_mse,
                ood: result.ood,
                backend: backend.to_string(),
                ms,
            });
            if let Some(cur) = self.current.as_mut() {
                // Kept in z order, so the report and exports read them without copying or
                // sorting; a slice analysed again replaces its old result.
                match cur.results.binary_search_by_key(&input.z, |r| r.z) {
                    Ok(i) => cur.results[i] = result,
                    Err(i) => cur.results.insert(i, result),
                }
            }
        }
        serde_wasm_bindgen::to_value(&views).map_err(js)
    }
}

fn no_volume() -> JsError {
    JsError::new("no volume is loaded")
}

fn no_estimate() -> JsError {
    JsError::new("no first estimate is in progress")
}

/// A report as JSON text, so the page can offer it for download byte for byte as shown.
fn report_json(report: &crate::report::Report) -> Result<JsValue, JsError> {
    let json = serde_json::to_string_pretty(report).map_err(js)?;
    Ok(JsValue::from_str(&json))
}

/// The model inputs of slices `zs` of `vol` framed by `frame`: the grids (`[N, size, size]`,
/// flattened) to send, and what maps each slice's outputs back.
fn prepare_on(
    vol: &CtVolume,
    frame: &InputFrame,
    zs: &[u32],
    size: usize,
) -> Result<(Vec<f32>, Vec<SliceInput>), JsError> {
    if let Some(&z) = zs.iter().find(|&&z| z as usize >= vol.dims[2]) {
        return Err(JsError::new(&format!(
            "slice {z} is out of range (the volume has {})",
            vol.dims[2]
        )));
    }
    let mut inputs: Vec<SliceInput> = zs
        .iter()
        .map(|&z| prepare_slice(vol, frame, z as usize, size))
        .collect();
    // The grids leave with the batch; what stays pending is how to map the outputs back.
    let mut grids = Vec::with_capacity(inputs.len() * size * size);
    for input in &mut inputs {
        grids.append(&mut input.grid);
    }
    Ok((grids, inputs))
}

/// A slice's result from its model outputs, with the lesion rule applied in `lung` and the
/// pixels counted once here, so every (provisional) report reads the counts instead of
/// applying the rule to every slice again.
fn counted(
    pred: &crate::inference::SlicePrediction,
    input: &SliceInput,
    vol: &CtVolume,
    lung: &LungMask,
    ood_threshold: Option<f32>,
) -> SliceResult {
    let mut result = finish_slice(pred, input, ood_threshold);
    let (lung_slice, classes) = crate::slices::slice_in_lung(vol, lung, &result);
    result.counts = Some(SliceCounts::of(&lung_slice, &classes));
    result
}

/// The pixels of one DICOM file as the series reader decodes them (`volume::dicom::decode_file`),
/// `undefined` for a file without an image: the pool workers decode a series' files in
/// parallel while the owning worker reads them, and hand the pixels to
/// [`Analyzer::load_staged`].
#[wasm_bindgen]
pub fn decode_dicom_file(name: String, bytes: Vec<u8>) -> Result<Option<Vec<i16>>, JsError> {
    crate::volume::dicom::decode_file(std::path::Path::new(&name), &bytes).map_err(js)
}

/// A model and nothing else, for one worker of the browser's CPU pool: each pool worker has
/// its own wasm instance and copy of the weights, and turns model inputs prepared by the
/// worker that owns the volume into packed outputs. CPU (flex) only: the GPU path batches
/// in the owning worker instead.
#[wasm_bindgen]
pub struct ModelRunner {
    loaded: Loaded,
    size: usize,
}

#[wasm_bindgen]
impl ModelRunner {
    /// Load `config.json` and `model.q8` bytes on the CPU backend, warmed up.
    pub async fn create(config_json: Vec<u8>, weights: Vec<u8>) -> Result<ModelRunner, JsError> {
        let config = config_from_bytes(&config_json, "config.json").map_err(js)?;
        let loaded = load_on(&config, &weights, false).await.map_err(js)?;
        Ok(ModelRunner {
            loaded,
            size: config.input_size,
        })
    }

    /// `[N, size, size]` model inputs (flattened) in, the packed outputs of the N slices out
    /// (`inference::PackedLayout`), with the reconstruction when `with_recon`.
    pub async fn predict(&self, grids: Vec<f32>, with_recon: bool) -> Result<Vec<f32>, JsError> {
        let hw = self.size * self.size;
        if grids.is_empty() || !grids.len().is_multiple_of(hw) {
            return Err(JsError::new(&format!(
                "{} input values are not whole {}x{} slices",
                grids.len(),
                self.size,
                self.size
            )));
        }
        let slices: Vec<&[f32]> = grids.chunks_exact(hw).collect();
        self.loaded
            .predict(&slices, self.size, with_recon)
            .await
            .map_err(js)
    }
}
