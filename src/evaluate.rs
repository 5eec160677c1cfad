//! Evaluation of a model on labelled directories: segmentation Dice and friends at each mask's
//! own resolution, classification AUC and threshold metrics on p(COVID-19), and a check that
//! orientation is no class cue.

use burn::prelude::*;
use serde::Serialize;

use crate::data::{ClsItem, SegItem};
use crate::error::Result;
use crate::inference::{SlicePrediction, predict};
use crate::metrics::{Confusion, auc, confusion_at, mean};
use crate::model::MultiTaskModel;
use crate::preprocess::{GreyImage, Interp, Letterbox, to_model_grid};

/// Segmentation figures (see the README for the definitions).
#[derive(Debug, Clone, Serialize)]
pub struct SegReport {
    pub n: usize,
    /// Mean over slices of the per-slice binary-lesion Dice.
    pub dice_mean: f64,
    /// Dice of all lesion pixels pooled over slices.
    pub dice_global: f64,
    pub iou_mean: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    /// Pooled Dice of ground-glass opacity and consolidation (slices with multiclass masks).
    pub dice_ggo: f64,
    pub dice_consolidation: f64,
    /// Per-slice Dice, by file stem.
    pub per_slice: Vec<(String, f64)>,
}

/// Classification figures at `threshold` on p(COVID-19).
#[derive(Debug, Clone, Serialize)]
pub struct ClsReport {
    pub n: usize,
    pub auc: f64,
    pub accuracy: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub f1: f64,
    pub threshold: f64,
    /// The same images rotated 90°: if orientation were a class cue (MedSeg slices arrive
    /// rotated and are all COVID-19), AUC would move and non-COVID p(COVID) would rise.
    /// Absent when not asked for (validation during training skips it to save time).
    pub orientation_check: Option<OrientationCheck>,
    /// Patient-level aggregation rules compared on simulated patients (see
    /// [`compare_aggregations`]).
    pub patient_aggregation: Vec<AggregationScore>,
}

/// AUC of one patient-level aggregation rule on simulated patients.
#[derive(Debug, Clone, Serialize)]
pub struct AggregationScore {
    pub rule: crate::report::Aggregation,
    pub auc: f64,
}

/// Compare slice → patient aggregation rules with the validation slices, which have slice-level
/// labels only. Simulated patients of 12 lung slices: a COVID-19 patient has `m` involved slices
/// (uniform 1..=12) drawn from the COVID-19 slices and the rest from the non-COVID slices (the
/// uninvolved lung of a patchy pneumonia); a non-COVID patient has 12 non-COVID slices. 500 of
/// each, seeded. An assumption, stated as such in the model card: no labelled volumes exist here.
pub fn compare_aggregations(scores: &[f64], labels: &[bool], seed: u64) -> Vec<AggregationScore> {
    use crate::report::Aggregation;
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return Vec::new();
    }
    let mut rng = crate::rng::Rng::new(seed);
    let mut patients: Vec<(Vec<f64>, bool)> = Vec::new();
    for covid in [true, false] {
        for _ in 0..500 {
            let m = if covid { 1 + rng.below(12) } else { 0 };
            let slices = (0..12)
                .map(|i| {
                    if i < m {
                        pos[rng.below(pos.len())]
                    } else {
                        neg[rng.below(neg.len())]
                    }
                })
                .collect();
            patients.push((slices, covid));
        }
    }
    let truth: Vec<bool> = patients.iter().map(|p| p.1).collect();
    [
        Aggregation::Mean,
        Aggregation::Median,
        Aggregation::Max,
        Aggregation::TopQuarterMean,
    ]
    .into_iter()
    .map(|rule| {
        let agg: Vec<f64> = patients.iter().map(|p| rule.apply(&p.0)).collect();
        AggregationScore {
            rule,
            auc: auc(&agg, &truth).unwrap_or(f64::NAN),
        }
    })
    .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct OrientationCheck {
    pub auc_rot90: f64,
    pub mean_p_covid_noncovid_upright: f64,
    pub mean_p_covid_noncovid_rot90: f64,
}

/// Rotate a grey image 90° clockwise.
pub fn rot90(img: &GreyImage) -> GreyImage {
    let (w, h) = (img.width, img.height);
    let mut px = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            // (x, y) → (h-1-y, x) in a h-wide image.
            px[x * h + (h - 1 - y)] = img.pixels[y * w + x];
        }
    }
    GreyImage {
        width: h,
        height: w,
        pixels: px,
    }
}

/// Run the model over images in batches, returning each prediction with its letterbox.
pub fn predict_images<'a>(
    model: &MultiTaskModel,
    images: impl Iterator<Item = &'a GreyImage>,
    size: usize,
    batch: usize,
    with_recon: bool,
    device: &Device,
) -> Result<Vec<(SlicePrediction, Letterbox)>> {
    let grids: Vec<(Vec<f32>, Letterbox)> = images.map(|im| to_model_grid(im, size)).collect();
    let mut out = Vec::with_capacity(grids.len());
    for chunk in grids.chunks(batch.max(1)) {
        let slices: Vec<&[f32]> = chunk.iter().map(|(g, _)| g.as_slice()).collect();
        let preds = predict(model, &slices, size, with_recon, device)?;
        out.extend(preds.into_iter().zip(chunk.iter().map(|(_, lb)| *lb)));
    }
    Ok(out)
}

pub fn eval_seg(
    model: &MultiTaskModel,
    items: &[SegItem],
    size: usize,
    batch: usize,
    device: &Device,
) -> Result<SegReport> {
    let preds = predict_images(
        model,
        items.iter().map(|i| &i.image),
        size,
        batch,
        false,
        device,
    )?;
    let (mut pooled, mut ggo, mut cons) = (
        Confusion::default(),
        Confusion::default(),
        Confusion::default(),
    );
    let (mut dices, mut ious, mut per_slice) = (Vec::new(), Vec::new(), Vec::new());
    for (item, (pred, lb)) in items.iter().zip(&preds) {
        // Lesion probability back on the mask's grid, thresholded at 0.5.
        let prob = lb.backward(&pred.lesion_prob(), Interp::Bilinear);
        let p: Vec<bool> = prob.iter().map(|&v| v >= 0.5).collect();
        let t: Vec<bool> = item.lesion.iter().map(|&v| v != 0).collect();
        let c = Confusion::from_masks(&p, &t);
        pooled.add(&c);
        dices.push(c.dice());
        ious.push(c.iou());
        per_slice.push((item.name.clone(), c.dice()));
        if let Some(classes) = &item.classes {
            let back = pred.classes_on(lb);
            for (k, conf) in [(1u8, &mut ggo), (2u8, &mut cons)] {
                let pk: Vec<bool> = back.iter().map(|&v| v == k).collect();
                let tk: Vec<bool> = classes.iter().map(|&v| v == k).collect();
                conf.add(&Confusion::from_masks(&pk, &tk));
            }
        }
    }
    let any_multi = items.iter().any(|i| i.classes.is_some());
    Ok(SegReport {
        n: items.len(),
        dice_mean: mean(&dices),
        dice_global: pooled.dice(),
        iou_mean: mean(&ious),
        sensitivity: pooled.sensitivity(),
        specificity: pooled.specificity(),
        dice_ggo: if any_multi { ggo.dice() } else { f64::NAN },
        dice_consolidation: if any_multi { cons.dice() } else { f64::NAN },
        per_slice,
    })
}

/// p(COVID-19) of each item, upright and rotated 90°.
pub fn eval_cls(
    model: &MultiTaskModel,
    items: &[ClsItem],
    size: usize,
    batch: usize,
    threshold: f64,
    orientation_check: bool,
    device: &Device,
) -> Result<ClsReport> {
    let labels: Vec<bool> = items.iter().map(|i| i.covid).collect();
    let scores: Vec<f64> = predict_images(
        model,
        items.iter().map(|i| &i.image),
        size,
        batch,
        false,
        device,
    )?
    .iter()
    .map(|(p, _)| p.p_covid() as f64)
    .collect();
    let scores_rot: Vec<f64> = if orientation_check {
        let rotated: Vec<GreyImage> = items.iter().map(|i| rot90(&i.image)).collect();
        predict_images(model, rotated.iter(), size, batch, false, device)?
            .iter()
            .map(|(p, _)| p.p_covid() as f64)
            .collect()
    } else {
        Vec::new()
    };
    let c = confusion_at(&scores, &labels, threshold);
    let neg = |s: &[f64]| {
        mean(
            &s.iter()
                .zip(&labels)
                .filter(|(_, l)| !**l)
                .map(|(s, _)| *s)
                .collect::<Vec<_>>(),
        )
    };
    Ok(ClsReport {
        n: items.len(),
        auc: auc(&scores, &labels).unwrap_or(f64::NAN),
        accuracy: c.accuracy(),
        sensitivity: c.sensitivity(),
        specificity: c.specificity(),
        f1: c.f1(),
        threshold,
        patient_aggregation: compare_aggregations(&scores, &labels, 17),
        orientation_check: orientation_check.then(|| OrientationCheck {
            auc_rot90: auc(&scores_rot, &labels).unwrap_or(f64::NAN),
            mean_p_covid_noncovid_upright: neg(&scores),
            mean_p_covid_noncovid_rot90: neg(&scores_rot),
        }),
    })
}

/// Per-image reconstruction MSE on the model grid (the out-of-distribution score).
pub fn recon_errors<'a>(
    model: &MultiTaskModel,
    images: impl Iterator<Item = &'a GreyImage>,
    size: usize,
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    Ok(predict_images(model, images, size, batch, true, device)?
        .iter()
        .map(|(p, _)| p.recon_mse.unwrap_or(f32::NAN) as f64)
        .collect())
}

/// The `q`-quantile (0..=1) of finite values, by linear interpolation; NaN when none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[0.0, 10.0], 0.99), 9.9);
        assert!(quantile(&[f64::NAN], 0.5).is_nan());
    }

    #[test]
    fn rot90_moves_the_top_left_pixel_to_the_top_right() {
        let img = GreyImage {
            width: 3,
            height: 2,
            pixels: vec![1, 2, 3, 4, 5, 6],
        };
        let r = rot90(&img);
        assert_eq!((r.width, r.height), (2, 3));
        // Clockwise: first column read bottom-up becomes the first row.
        assert_eq!(r.pixels, vec![4, 1, 5, 2, 6, 3]);
    }
}

/// What a real HU scan without pixel labels can still say about the segmentation: how much of
/// the lung is called lesion, and whether what is called lesion is denser than the rest of the
/// lung (ground glass is typically 150–400 HU denser than aerated lung). Sanity figures, not
/// accuracy: see the model card.
#[derive(Debug, Clone, Serialize)]
pub struct RealCtCase {
    pub path: String,
    /// `covid` or `no-pneumonia`, from the manifest.
    pub class: String,
    pub slices: usize,
    pub lung_found: bool,
    pub lung_ml: Option<f64>,
    pub lesion_ml: Option<f64>,
    /// Lesion share of the lung, %.
    pub lesion_pct: Option<f64>,
    /// Mean HU of the voxels called lesion, and of the rest of the lung.
    pub lesion_mean_hu: Option<f64>,
    pub rest_mean_hu: Option<f64>,
    /// `lesion_mean_hu − rest_mean_hu`.
    pub hu_contrast: Option<f64>,
    pub severity: String,
    /// The lesion-grounded call ([`crate::call`]): state, p(COVID-19), p(pneumonia), the
    /// pattern features.
    pub state: crate::call::CallState,
    pub p_covid: Option<f64>,
    pub p_pneumonia: Option<f64>,
    pub features: crate::pattern::PatternFeatures,
    /// The slice classifier's patient-level score (no part of the call).
    pub p_covid_classifier: Option<f64>,
    /// Against the radiologist's per-slice labels (`labels.tsv` beside the series), when present.
    pub slice_labels: Option<SliceLabelFigures>,
}

/// The segmentation's slice calls against a radiologist's per-slice infected labels.
#[derive(Debug, Clone, Serialize)]
pub struct SliceLabelFigures {
    /// Labelled slices matched to analysed slices with lung (by position), infected and clean.
    pub n: usize,
    pub n_infected: usize,
    /// AUC of the slice's lesion share of its lung as a score for "infected" (null with one
    /// class only).
    pub auc_lesion_share: Option<f64>,
    /// The report's infected-slice rule (lesion ≥ 1 % of the slice's lung) against the labels.
    pub sensitivity: f64,
    pub specificity: f64,
}

/// The rows of a `labels.tsv` (columns `file`, `slice_location`, `infected`, …) as
/// `(slice location mm, infected)`; rows without both values are left out, and a file without
/// those columns gives none.
pub fn parse_slice_labels(tsv: &str) -> Vec<(f64, bool)> {
    let mut lines = tsv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let header: Vec<&str> = header.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(loc), Some(inf)) = (col("slice_location"), col("infected")) else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Some((
                f.get(loc)?.trim().parse::<f64>().ok()?,
                f.get(inf)?.trim() == "1",
            ))
        })
        .collect()
}

/// Read `labels.tsv` (columns `file`, `slice_location`, `infected`, …) and score the report's
/// slices against it: each label goes to the analysed slice nearest its location (within half
/// a slice spacing). `None` when the file has no usable rows.
pub fn slice_label_figures(
    tsv: &str,
    report: &crate::report::Report,
    dz_mm: f64,
) -> Option<SliceLabelFigures> {
    let mut scored: Vec<(f64, bool)> = Vec::new();
    let (mut tp, mut fn_, mut tn, mut fp) = (0usize, 0usize, 0usize, 0usize);
    for (z, label) in parse_slice_labels(tsv) {
        let Some(s) = report
            .slices
            .iter()
            .filter(|s| s.lung && s.lung_px > 0)
            .filter_map(|s| s.position_mm.map(|p| (s, (p - z).abs())))
            .filter(|(_, d)| *d <= 0.5 * dz_mm.abs().max(0.1))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, _)| s)
        else {
            continue;
        };
        let share = s.lesion_px as f64 / s.lung_px as f64;
        let called = share >= crate::pattern::INFECTED_SLICE_LESION_SHARE;
        match (label, called) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, false) => tn += 1,
            (false, true) => fp += 1,
        }
        scored.push((share, label));
    }
    if scored.is_empty() {
        return None;
    }
    let scores: Vec<f64> = scored.iter().map(|s| s.0).collect();
    let labels: Vec<bool> = scored.iter().map(|s| s.1).collect();
    let rate = |a: usize, b: usize| {
        if a + b > 0 {
            a as f64 / (a + b) as f64
        } else {
            f64::NAN
        }
    };
    Some(SliceLabelFigures {
        n: scored.len(),
        n_infected: tp + fn_,
        auc_lesion_share: auc(&scores, &labels),
        sensitivity: rate(tp, fn_),
        specificity: rate(tn, fp),
    })
}

/// Analyse one real HU volume as `ctscreen analyze` does and measure it for [`RealCtCase`].
/// `canonical = false` feeds the whole slice through the plain lung window instead of the
/// thorax frame ([`crate::pipeline::input_frame`]): the input before canonicalisation, for the
/// ablation.
#[cfg(not(target_family = "wasm"))]
#[allow(clippy::too_many_arguments)]
pub fn real_ct_case(
    model: &MultiTaskModel,
    device: &burn::prelude::Device,
    vol: &crate::volume::CtVolume,
    size: usize,
    ood_threshold: Option<f32>,
    batch: usize,
    path: &str,
    class: &str,
    canonical: bool,
    labels_tsv: Option<&str>,
) -> Result<RealCtCase> {
    let lung = crate::lung::lung_mask(vol);
    let frame = if canonical {
        crate::pipeline::input_frame(vol, &lung)
    } else {
        crate::pipeline::InputFrame::WHOLE
    };
    let slices = crate::pipeline::analyze_volume(
        model,
        device,
        vol,
        &lung,
        &frame,
        size,
        ood_threshold,
        batch,
        None,
        |_, _| {},
    )?;
    let ctx = crate::report::ReportContext {
        input: path,
        model: "",
        backend: "",
    };
    let report = crate::report::build(&ctx, vol, &lung, &slices);
    let n2 = vol.slice_len();
    let (mut les_sum, mut les_n, mut rest_sum, mut rest_n) = (0.0f64, 0usize, 0.0f64, 0usize);
    for s in &slices {
        let (lung_slice, classes) = crate::slices::slice_in_lung(vol, &lung, s);
        let hu = vol.slice(s.z);
        for i in 0..n2 {
            if lung_slice[i] == 0 {
                continue;
            }
            if classes[i] != 0 {
                les_sum += hu[i] as f64;
                les_n += 1;
            } else {
                rest_sum += hu[i] as f64;
                rest_n += 1;
            }
        }
    }
    let lesion_mean_hu = (les_n > 0).then(|| les_sum / les_n as f64);
    let rest_mean_hu = (rest_n > 0).then(|| rest_sum / rest_n as f64);
    Ok(RealCtCase {
        path: path.to_string(),
        class: class.to_string(),
        slices: vol.dims[2],
        lung_found: report.lung_found,
        lung_ml: report.lung_ml.as_ref().map(|l| l.left + l.right),
        lesion_ml: report.lesion_ml.as_ref().map(|l| l.total),
        lesion_pct: report.involvement_pct.total,
        lesion_mean_hu,
        rest_mean_hu,
        hu_contrast: lesion_mean_hu.zip(rest_mean_hu).map(|(a, b)| a - b),
        severity: report.severity.to_string(),
        state: report.call.state,
        p_covid: report.p_covid,
        p_pneumonia: report.call.p_pneumonia,
        features: report.call.features.clone(),
        p_covid_classifier: report.p_covid_classifier,
        slice_labels: labels_tsv.and_then(|t| slice_label_figures(t, &report, vol.spacing_mm[2])),
    })
}

/// One line of a real-CT manifest: `path<TAB>class`, `#` comments and blank lines skipped.
pub fn parse_real_manifest(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t').map(str::trim).filter(|p| !p.is_empty());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(path), Some(class @ ("covid" | "other-pneumonia" | "no-pneumonia")), None) => {
                out.push((path.to_string(), class.to_string()))
            }
            _ => {
                return Err(format!(
                    "line {}: expected `path<TAB>covid|other-pneumonia|no-pneumonia`, got {line:?}",
                    k + 1
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod real_tests {
    use super::parse_real_manifest;

    #[test]
    fn manifest_lines_parse_and_bad_ones_are_named() {
        let m = parse_real_manifest("# c\n\na/b\tcovid\nc d\tno-pneumonia\n").unwrap();
        assert_eq!(
            m,
            vec![
                ("a/b".to_string(), "covid".to_string()),
                ("c d".to_string(), "no-pneumonia".to_string())
            ]
        );
        let e = parse_real_manifest("x\tcovid\ny\tmaybe\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
    }
}
