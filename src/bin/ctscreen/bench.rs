//! `ctscreen bench` and `ctscreen bench-volume`: inference, training-step and whole-pipeline
//! timings (figures to compare as ratios within one run, never timed tests).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::json;

use ctscreen::error::{Error, Result};
use ctscreen::inference::predict;
use ctscreen::lung::lung_mask;
use ctscreen::model::flops_per_slice;
use ctscreen::phantom::chest_phantom;
use ctscreen::pipeline;
use ctscreen::report::{self, ReportContext};
use ctscreen::volume::{self, CtVolume, Limits, nii};
use ctscreen::weights;

use crate::common::{DEFAULT_MODEL, DeviceArg, load_model};

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Also time the same architecture in PyTorch on the CPU (`benches/torch_baseline.py`, which
    /// installs torch into a virtual environment if it is missing) and print the ratios.
    #[arg(long)]
    pub torch: bool,
    /// Python interpreter for --torch (the script makes its own environment if torch is missing).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
}

#[derive(Args)]
pub struct BenchVolumeArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Slices of the synthetic series.
    #[arg(long, default_value_t = 300)]
    pub slices: usize,
    /// In-plane size of the synthetic series.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Keep the synthetic inputs in this folder (for the browser benchmark) instead of deleting
    /// them.
    #[arg(long)]
    pub keep_inputs: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn bench_volume(a: BenchVolumeArgs) -> Result<()> {
    let limits = Limits::default();
    let phantom = chest_phantom(a.size, a.size, a.slices, 5);
    let tmp = a.keep_inputs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ctscreen-bench-{}", std::process::id()))
    });
    let series_dir = tmp.join("series");
    std::fs::create_dir_all(&series_dir).map_err(|e| Error::io(&series_dir, e))?;
    for (name, bytes) in volume::dicom::write_series(&phantom, "1.2.826.0.1.3680043.9.7434.99")? {
        let p = series_dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    let nii_path = tmp.join("phantom.nii");
    let niigz_path = tmp.join("phantom.nii.gz");
    std::fs::write(&nii_path, nii::write_hu_nii(&phantom, false)?)
        .map_err(|e| Error::io(&nii_path, e))?;
    std::fs::write(&niigz_path, nii::write_hu_nii(&phantom, true)?)
        .map_err(|e| Error::io(&niigz_path, e))?;
    drop(phantom);
    let dims = format!("{}²×{}", a.size, a.slices);
    let mut loads = Vec::new();
    let mut time_load = |label: String, paths: Vec<PathBuf>| -> Result<CtVolume> {
        let t = Instant::now();
        let v = volume::load_paths(&paths, &limits)?;
        let s = t.elapsed().as_secs_f64();
        println!("load {label}: {s:.3} s");
        loads.push(json!({"input": label, "seconds": s}));
        Ok(v)
    };
    let j2k = a.data.join("ct-files/totalsegmentator/example_ct_dicom");
    if j2k.is_dir() {
        time_load("JPEG 2000 series 512²×20".into(), vec![j2k])?;
    }
    time_load(format!("NIfTI .nii {dims}"), vec![nii_path.clone()])?;
    time_load(format!("NIfTI .nii.gz {dims}"), vec![niigz_path.clone()])?;
    let t_load = Instant::now();
    let vol = time_load(
        format!("DICOM series {dims} uncompressed"),
        vec![series_dir.clone()],
    )?;
    let load_s = t_load.elapsed().as_secs_f64();

    let device = a.device.device.device()?;
    let loaded = load_model(&a.model, &device)?;
    let t = Instant::now();
    let lung = lung_mask(&vol);
    let frame = pipeline::input_frame(&vol, &lung);
    let lung_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let slices = pipeline::analyze_volume(
        &loaded.model,
        &device,
        &vol,
        &lung,
        &frame,
        loaded.config.input_size,
        loaded.config.ood_threshold,
        a.batch,
        None,
        |_, _| {},
    )?;
    let model_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ctx = ReportContext {
        input: "synthetic",
        model: &loaded.config.version,
        backend: a.device.device.name(),
    };
    let report = report::build(&ctx, &vol, &lung, &slices);
    let report_s = t.elapsed().as_secs_f64();
    let total = load_s + model_s + lung_s + report_s;
    let share = |s: f64| 100.0 * s / total;
    println!(
        "pipeline {dims} on {}: total {total:.2} s = load {load_s:.2} s ({:.1} %) + model {model_s:.2} s ({:.1} %) + lung mask {lung_s:.2} s ({:.1} %) + report {report_s:.3} s ({:.2} %); lung mask + report = {:.1} % (goal < 10 %)",
        a.device.device.name(),
        share(load_s),
        share(model_s),
        share(lung_s),
        share(report_s),
        share(lung_s + report_s)
    );
    println!(
        "{}",
        json!({
            "dims": vol.dims, "backend": a.device.device.name(), "loads": loads,
            "pipeline_seconds": {"load": load_s, "model": model_s, "lung_mask": lung_s, "report": report_s, "total": total},
            "lung_and_report_pct": share(lung_s + report_s),
            "lung_ml": report.lung_ml, "severity": report.severity,
        })
    );
    if a.keep_inputs.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

pub fn time_it(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: allocation, autotune, shader compilation
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() / reps.max(1) as f64)
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let device = a.device.device.device()?;
    let loaded = load_model(&a.model, &device)?;
    let cfg = &loaded.config.model;
    let size = loaded.config.input_size;
    let slice: Vec<f32> = (0..size * size)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let mut results = Vec::new();
    for &batch in &[1usize, 8] {
        for &recon in &[false, true] {
            let slices: Vec<&[f32]> = (0..batch).map(|_| slice.as_slice()).collect();
            let secs = time_it(a.reps, || {
                predict(&loaded.model, &slices, size, recon, &device).map(|_| ())
            })?;
            let per_slice = secs / batch as f64;
            let gflop = flops_per_slice(cfg, size, recon) / 1e9;
            println!(
                "inference {size}² batch {batch} recon {recon:5}: {:8.1} ms/slice  {:6.2} GFLOP/slice  {:6.1} GFLOP/s",
                per_slice * 1e3,
                gflop,
                gflop / per_slice
            );
            results.push(json!({"batch": batch, "recon": recon, "ms_per_slice": per_slice * 1e3, "gflop_per_slice": gflop, "gflops": gflop / per_slice}));
        }
    }
    #[cfg(feature = "train")]
    {
        let step = train_step_seconds(cfg, size, 4, a.reps.min(3), &device)?;
        println!(
            "training step {size}² batch 4 (forward+backward+Adam): {:8.1} ms",
            step * 1e3
        );
        results.push(json!({"train_step_batch4_ms": step * 1e3}));
    }
    let torch = if a.torch {
        Some(torch_comparison(&a, &results)?)
    } else {
        None
    };
    println!(
        "{}",
        json!({"backend": a.device.device.name(), "params": param_count(&loaded.model), "results": results, "torch": torch})
    );
    Ok(())
}

/// Run `benches/torch_baseline.py` on the same config and print ctscreen's time over PyTorch's
/// for every measurement both made (below 1.0: ctscreen is faster).
pub fn torch_comparison(a: &BenchArgs, ours: &[serde_json::Value]) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_baseline.py");
    let config = a.model.join(weights::CONFIG_FILE);
    let out = std::process::Command::new(&a.python)
        .arg(&script)
        .arg("--config")
        .arg(&config)
        .args(["--reps", &a.reps.to_string(), "--json"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io(&a.python, e))?;
    let fail = |reason: String| Error::Config {
        path: script.display().to_string(),
        reason,
    };
    if !out.status.success() {
        return Err(fail(format!("exited with {}", out.status)));
    }
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("did not print one JSON object: {e}")))?;
    println!(
        "PyTorch baseline: {} on the CPU, {} threads, {} parameters",
        theirs["framework"].as_str().unwrap_or("?"),
        theirs["threads"],
        theirs["params"]
    );
    let key = |r: &serde_json::Value| -> Option<(String, f64)> {
        if let Some(ms) = r["train_step_batch4_ms"].as_f64() {
            return Some(("training step batch 4".into(), ms));
        }
        Some((
            format!(
                "inference batch {} recon {}",
                r["batch"].as_u64()?,
                r["recon"].as_bool()?
            ),
            r["ms_per_slice"].as_f64()?,
        ))
    };
    let empty = Vec::new();
    let their_rows: Vec<(String, f64)> = theirs["results"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(key)
        .collect();
    let mut ratios = Vec::new();
    for (name, ms) in ours.iter().filter_map(key) {
        if let Some((_, t_ms)) = their_rows.iter().find(|(n, _)| *n == name) {
            let ratio = ms / t_ms;
            println!(
                "{name:32} ctscreen {ms:8.1} ms  PyTorch {t_ms:8.1} ms  ratio {ratio:5.2}×{}",
                if ratio <= 1.0 { "" } else { "  (slower)" }
            );
            ratios.push(
                json!({"measurement": name, "ctscreen_ms": ms, "torch_ms": t_ms, "ratio": ratio}),
            );
        }
    }
    Ok(json!({"baseline": theirs, "ratios": ratios}))
}

pub fn param_count(m: &ctscreen::model::MultiTaskModel) -> usize {
    use burn::module::Module;
    m.num_params()
}

#[cfg(feature = "train")]
pub fn train_step_seconds(
    cfg: &ctscreen::model::MultiTaskConfig,
    size: usize,
    batch: usize,
    reps: usize,
    device: &burn::prelude::Device,
) -> Result<f64> {
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::prelude::*;
    // The same device: a wgpu runtime can be initialised only once per process.
    let device = device.clone().autodiff();
    let mut model = cfg.init(&device);
    let mut optim = AdamConfig::new().init();
    let x = Tensor::<4>::ones([batch, 1, size, size], &device).mul_scalar(0.5);
    time_it(reps, || {
        let out = model.forward(x.clone());
        let loss = out.seg_logits.mean()
            + out.cls_logits.mean()
            + out
                .recon
                .map(|r| r.mean())
                .unwrap_or_else(|| Tensor::zeros([1], &device));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model.clone(), grads);
        let _ = loss
            .try_into_data()
            .map_err(|e| Error::Readback(format!("{e:?}")))?;
        Ok(())
    })
}
