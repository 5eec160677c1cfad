//! From per-slice model outputs and the lung mask to the numbers a clinician reads: lesion and
//! lung volumes, % of lung involved per side, a CT-0…CT-4 severity, a patient-level
//! p(COVID-19), and the out-of-distribution flags. Shared by the CLI and the browser.

use serde::Serialize;

use crate::call::{self, CallState, PatientCall, lung_cut_by_scan_end};
use crate::lung::{LungMask, LungMethod};
use crate::pattern;
use crate::slices::{SliceCounts, SliceResult, slice_in_lung};
use crate::volume::{CtVolume, InputKind, SkippedFile};

/// Printed with every report.
pub const DISCLAIMER: &str = "Research software, not a medical device; not for diagnosis. \
     Probabilities and volumes are model estimates with errors; a clinician must read the scan.";

/// The OOD message shown for flagged slices and volumes.
pub const OOD_MESSAGE: &str = "this does not look like the chest CT the model was trained on; \
     results may be unreliable";

/// How slice probabilities become one patient-level probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Mean,
    Max,
    Median,
    /// Mean of the highest quarter (at least one) of the slice probabilities.
    TopQuarterMean,
}

/// The rule the reports use; see the model card for the comparison that chose it.
pub const PATIENT_RULE: Aggregation = Aggregation::TopQuarterMean;

impl Aggregation {
    pub fn describe(&self) -> &'static str {
        match self {
            Aggregation::Mean => "mean of the slice probabilities over slices that contain lung",
            Aggregation::Max => "maximum slice probability over slices that contain lung",
            Aggregation::Median => "median slice probability over slices that contain lung",
            Aggregation::TopQuarterMean => {
                "mean of the highest quarter (at least one) of the slice probabilities over \
                 slices that contain lung"
            }
        }
    }

    /// Aggregate; NaN for no slices.
    pub fn apply(&self, ps: &[f64]) -> f64 {
        if ps.is_empty() {
            return f64::NAN;
        }
        let mut v = ps.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        match self {
            Aggregation::Mean => v.iter().sum::<f64>() / v.len() as f64,
            Aggregation::Max => v[0],
            Aggregation::Median => {
                let n = v.len();
                if n % 2 == 1 {
                    v[n / 2]
                } else {
                    (v[n / 2 - 1] + v[n / 2]) / 2.0
                }
            }
            Aggregation::TopQuarterMean => {
                let k = v.len().div_ceil(4).max(1);
                v[..k].iter().sum::<f64>() / k as f64
            }
        }
    }
}

/// CT-0…CT-4 from % of lung involved (MosMedData): CT-0 no lesion, CT-1 < 25 %, CT-2 25–50 %,
/// CT-3 50–75 %, CT-4 ≥ 75 %.
pub fn severity(involvement_pct: f64, lesion_voxels: usize) -> &'static str {
    if lesion_voxels == 0 {
        "CT-0"
    } else if involvement_pct < 25.0 {
        "CT-1"
    } else if involvement_pct < 50.0 {
        "CT-2"
    } else if involvement_pct < 75.0 {
        "CT-3"
    } else {
        "CT-4"
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sides<T> {
    pub left: T,
    pub right: T,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lesions<T> {
    pub ggo: T,
    pub consolidation: T,
    pub total: T,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Involvement {
    pub left: Option<f64>,
    pub right: Option<f64>,
    pub total: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceReport {
    pub z: usize,
    /// Patient z (mm) of the slice centre, when the spacing is physical.
    pub position_mm: Option<f64>,
    /// The slice classifier's p; null on a slice without any lung voxel, where the model is not
    /// run (`slices::model_slices`).
    pub p_covid: Option<f32>,
    /// Whether the slice shows lung (at least [`crate::slices::MIN_LUNG_SHARE`] of its area); slices without
    /// lung take no part in the patient-level probability.
    pub lung: bool,
    /// Lesion inside the lung on this slice, mL (null for 8-bit input).
    pub lesion_ml: Option<f64>,
    pub lesion_px: usize,
    pub lung_px: usize,
    pub recon_mse: Option<f32>,
    pub ood: Option<bool>,
}

/// The report, as printed by `ctscreen analyze --json` and shown by the page.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub input: String,
    pub model: String,
    pub backend: String,
    pub kind: InputKind,
    pub dims: [usize; 3],
    pub spacing_mm: Option<[f64; 3]>,
    /// Patient-level p(COVID-19) of the lesion-grounded call ([`crate::call`]): p(pneumonia) ×
    /// p(COVID-19 | pneumonia, pattern); null without a call (no lung, or lung cut by the end of
    /// the scan). Never shown without `call.state` and the features behind it.
    pub p_covid: Option<f64>,
    /// The two-stage call: state, stage probabilities, the pattern features and the evidence.
    pub call: PatientCall,
    /// The slice classifier's patient-level score by [`PATIENT_RULE`] over the slices with lung
    /// (not validated on scanner CT; no part of the call); null without lung.
    pub p_covid_classifier: Option<f64>,
    pub p_covid_classifier_rule: &'static str,
    /// Whether any analysed slice shows lung.
    pub lung_found: bool,
    pub p_covid_rule: &'static str,
    pub slices: Vec<SliceReport>,
    /// Lung volume per side in mL; null for 8-bit input (no physical spacing).
    pub lung_ml: Option<Sides<f64>>,
    pub lung_px: Sides<usize>,
    /// Lesion volume inside the lungs in mL; null for 8-bit input.
    pub lesion_ml: Option<Lesions<f64>>,
    pub lesion_px: Lesions<usize>,
    pub involvement_pct: Involvement,
    pub severity: &'static str,
    pub severity_rule: &'static str,
    pub ood_slices: Vec<usize>,
    /// Slices whose reconstruction was checked (a sample of those with lung on long series,
    /// `pipeline::recon_checked`); `ood_slices` are among them.
    pub ood_checked: usize,
    /// True when most checked slices with lung (or, without lung, most checked slices) are out
    /// of distribution.
    pub ood: bool,
    pub ood_message: Option<&'static str>,
    pub lung_mask_method: LungMethod,
    pub lung_mask_approximate: bool,
    pub warnings: Vec<String>,
    /// Files of the input that were not used (damaged, not images), each with the reason.
    pub skipped_files: Vec<SkippedFile>,
    pub disclaimer: &'static str,
}

/// Shown when no analysed slice shows lung.
pub const NO_LUNG_WARNING: &str = "no lung found: this looks like an abdominal or other \
     non-chest scan; results are not meaningful";

/// Shown when the approximate 8-bit lung mask finds no lung.
pub const NO_LUNG_8BIT_WARNING: &str = "no lung found by the approximate lung mask of this \
     8-bit image: either it is not a chest slice, or its window or crop hides the lungs (a \
     mediastinal window makes them as black as the air outside); no estimate is given";

/// Shown when the lung is cut by an end of the scan (no patient call then).
pub const INCOMPLETE_LUNG_WARNING: &str = "the lung is cut by the first or last slice of the \
     scan (only part of the chest was scanned or exported): lesion and lung figures cover only \
     what is in the scan, and no patient-level call is made";

/// Lung pixels of every slice of the mask, in z order.
fn lung_px_per_slice(vol: &CtVolume, lung: &LungMask) -> Vec<usize> {
    (0..vol.dims[2])
        .map(|z| lung.slice(vol, z).iter().filter(|&&l| l != 0).count())
        .collect()
}

/// Shown when only the lung bases are in the scan.
pub const LUNG_BASES_WARNING: &str = "only the lung bases are in the scan (an abdominal scan?): \
     the lungs are cut by the top of the volume and cover few slices; results are not \
     meaningful for the chest";

/// Everything the report needs besides the volume, mask and slices.
pub struct ReportContext<'a> {
    pub input: &'a str,
    pub model: &'a str,
    pub backend: &'a str,
}

/// Build the report. `slices` may cover only some z (e.g. a cancelled run); lung and lesion
/// figures then cover those slices only, and a warning says so.
pub fn build(
    ctx: &ReportContext<'_>,
    vol: &CtVolume,
    lung: &LungMask,
    slices: &[SliceResult],
) -> Report {
    let voxel_ml = vol.voxel_ml();
    let (
        slice_reports,
        Totals {
            lung_px,
            lesion,
            lesion_side,
        },
    ) = sum_slices(vol, lung, slices);
    let pct = |num: usize, den: usize| (den > 0).then(|| 100.0 * num as f64 / den as f64);
    let involvement = Involvement {
        left: pct(lesion_side.left, lung_px.left),
        right: pct(lesion_side.right, lung_px.right),
        total: pct(lesion.total, lung_px.left + lung_px.right),
    };

    let mut warnings = vol.meta.warnings.clone();
    let basis: Vec<&SliceReport> = slice_reports.iter().filter(|s| s.lung).collect();
    let lung_found = !basis.is_empty();
    if !lung_found {
        warnings.push(if lung.approximate {
            NO_LUNG_8BIT_WARNING.into()
        } else {
            NO_LUNG_WARNING.into()
        });
    } else if only_lung_bases(vol, &slice_reports) {
        warnings.push(LUNG_BASES_WARNING.into());
    }
    let ps: Vec<f64> = basis
        .iter()
        .filter_map(|s| s.p_covid.map(f64::from))
        .collect();
    let p_covid_classifier = lung_found.then(|| PATIENT_RULE.apply(&ps));
    let one_slice = vol.dims[2] == 1;
    let complete = one_slice || !lung_cut_by_scan_end(&lung_px_per_slice(vol, lung));
    let call = call::decide(
        pattern::features(vol, lung, slices),
        lung_found,
        complete,
        involvement.total,
        one_slice,
    );
    if call.state == CallState::IncompleteLung {
        warnings.push(INCOMPLETE_LUNG_WARNING.into());
    }
    let (ood_slices, ood_checked, ood) = ood_flags(&slice_reports, &basis);
    if slices.len() < vol.dims[2] {
        warnings.push(format!(
            "only {} of {} slices were analysed",
            slices.len(),
            vol.dims[2]
        ));
    }
    if lung.approximate {
        warnings.push(
            "lung mask is approximate: 8-bit input has no Hounsfield units; left and right \
             assume the usual radiological display (patient's right on the image's left)"
                .into(),
        );
    }
    let total_pct = involvement.total.unwrap_or(0.0);
    let sev = if !lung_found {
        "n/a"
    } else {
        severity(total_pct, lesion.total)
    };
    Report {
        input: ctx.input.to_string(),
        model: ctx.model.to_string(),
        backend: ctx.backend.to_string(),
        kind: vol.kind,
        dims: vol.dims,
        spacing_mm: vol.spacing_known.then_some(vol.spacing_mm),
        p_covid: call.p_covid,
        call,
        p_covid_classifier,
        p_covid_classifier_rule: PATIENT_RULE.describe(),
        lung_found,
        p_covid_rule: crate::call::RULE,
        slices: slice_reports,
        lung_ml: voxel_ml.map(|v| Sides {
            left: lung_px.left as f64 * v,
            right: lung_px.right as f64 * v,
        }),
        lung_px: lung_px.clone(),
        lesion_ml: voxel_ml.map(|v| Lesions {
            ggo: lesion.ggo as f64 * v,
            consolidation: lesion.consolidation as f64 * v,
            total: lesion.total as f64 * v,
        }),
        lesion_px: lesion,
        involvement_pct: involvement,
        severity: sev,
        severity_rule: "MosMedData: CT-0 no lesion, CT-1 < 25 %, CT-2 25–50 %, CT-3 50–75 %, \
                        CT-4 ≥ 75 % of lung involved",
        ood_slices,
        ood_checked,
        ood,
        ood_message: ood.then_some(OOD_MESSAGE),
        lung_mask_method: lung.method,
        lung_mask_approximate: lung.approximate,
        warnings,
        skipped_files: vol.meta.skipped_files.clone(),
        disclaimer: DISCLAIMER,
    }
}

/// Lung and lesion pixels summed over the analysed slices.
struct Totals {
    lung_px: Sides<usize>,
    lesion: Lesions<usize>,
    lesion_side: Sides<usize>,
}

/// Each analysed slice's report line, and the lung and lesion pixels summed over them (the
/// slice's own counts when the browser already made them, else the lesion rule applied here).
fn sum_slices(
    vol: &CtVolume,
    lung: &LungMask,
    slices: &[SliceResult],
) -> (Vec<SliceReport>, Totals) {
    let n2 = vol.slice_len();
    let voxel_ml = vol.voxel_ml();
    let mut lung_px = Sides { left: 0, right: 0 };
    let mut lesion = Lesions {
        ggo: 0usize,
        consolidation: 0,
        total: 0,
    };
    let mut lesion_side = Sides {
        left: 0usize,
        right: 0,
    };
    let mut slice_reports = Vec::with_capacity(slices.len());
    for s in slices {
        let c = s.counts.unwrap_or_else(|| {
            let (lung_slice, classes) = slice_in_lung(vol, lung, s);
            SliceCounts::of(&lung_slice, &classes)
        });
        lung_px.left += c.lung_left;
        lung_px.right += c.lung_right;
        lesion.ggo += c.ggo;
        lesion.consolidation += c.consolidation;
        lesion_side.left += c.lesion_left;
        lesion_side.right += c.lesion_right;
        let (lp, lesp) = (c.lung, c.lesion());
        slice_reports.push(SliceReport {
            z: s.z,
            position_mm: vol.spacing_known.then(|| vol.slice_position_mm(s.z)),
            p_covid: s.p_covid,
            lung: c.has_lung(n2),
            lesion_ml: voxel_ml.map(|v| lesp as f64 * v),
            lesion_px: lesp,
            lung_px: lp,
            recon_mse: s.recon_mse,
            ood: s.ood,
        });
    }
    lesion.total = lesion.ggo + lesion.consolidation;
    (
        slice_reports,
        Totals {
            lung_px,
            lesion,
            lesion_side,
        },
    )
}

/// The slices flagged out of distribution, how many were checked, and the volume's flag: most
/// checked slices with lung, or, without lung, most checked slices. Only checked slices count:
/// on a long series the reconstruction is computed on a sample (`pipeline::recon_checked`).
fn ood_flags(slice_reports: &[SliceReport], basis: &[&SliceReport]) -> (Vec<usize>, usize, bool) {
    let ood_slices: Vec<usize> = slice_reports
        .iter()
        .filter(|s| s.ood == Some(true))
        .map(|s| s.z)
        .collect();
    let on_lung: Vec<bool> = basis.iter().filter_map(|s| s.ood).collect();
    let all: Vec<bool> = slice_reports.iter().filter_map(|s| s.ood).collect();
    let majority = |flags: &[bool]| flags.iter().filter(|&&f| f).count() * 2 > flags.len();
    // Without a checked slice with lung, the flag is judged on every checked slice.
    let ood = majority(if on_lung.is_empty() { &all } else { &on_lung });
    (ood_slices, all.len(), ood)
}

/// Whether the lungs in the volume are only their bases: the lung is cut by the top of the
/// volume, is largest on its topmost slice and spans under half of the slices. In a whole chest
/// the lung is largest near the middle or the bases; an upper-chest scan is cut at the bottom.
fn only_lung_bases(vol: &CtVolume, slices: &[SliceReport]) -> bool {
    let nz = vol.dims[2];
    if nz < 5 || slices.len() < nz {
        return false;
    }
    let up = vol.affine[2][2] >= 0.0;
    // Superior first.
    let mut by_height: Vec<&SliceReport> = slices.iter().collect();
    by_height.sort_by_key(|s| if up { nz - 1 - s.z } else { s.z });
    let with_lung = by_height.iter().filter(|s| s.lung).count();
    let largest = by_height
        .iter()
        .filter(|s| s.lung)
        .map(|s| s.lung_px)
        .max()
        .unwrap_or(0);
    // The top two slices hold the largest lung area (noise-tolerant "largest at the top").
    let top_largest = by_height
        .iter()
        .take(2)
        .any(|s| s.lung_px * 10 >= largest * 9);
    by_height[0].lung && top_largest && with_lung * 2 < nz
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lung::{LEFT, RIGHT};
    use crate::slices::ClassMap;
    use crate::volume::IntensityScale;

    fn volume(dims: [usize; 3], spacing: [f64; 3], x_sign: f64) -> CtVolume {
        let affine = [
            [spacing[0] * x_sign, 0.0, 0.0, 0.0],
            [0.0, spacing[1], 0.0, 0.0],
            [0.0, 0.0, spacing[2], 0.0],
        ];
        CtVolume::new(
            vec![0; dims.iter().product()],
            dims,
            spacing,
            affine,
            IntensityScale::Hounsfield,
            InputKind::Nifti,
        )
    }

    /// Left half of every slice is one lung side, right half the other; `lesion_cols` columns
    /// of the x < nx/2 half carry GGO, and one column consolidation.
    fn case(x_sign: f64) -> (CtVolume, LungMask, Vec<SliceResult>) {
        let dims = [20, 10, 5];
        let vol = volume(dims, [0.5, 0.5, 2.0], x_sign);
        let n2 = 200;
        let mut labels = vec![0u8; 1000];
        let mut slices = Vec::new();
        for z in 0..5 {
            let mut classes = vec![0u8; n2];
            for y in 0..10 {
                for x in 0..20 {
                    let i = y * 20 + x;
                    // Patient side from the affine: x_sign·x > mid means left (LPS).
                    let px = x_sign * x as f64;
                    let mid = x_sign * 9.5;
                    labels[z * n2 + i] = if px > mid { LEFT } else { RIGHT };
                    if x < 2 {
                        classes[i] = 1;
                    } else if x == 2 {
                        classes[i] = 2;
                    }
                }
            }
            slices.push(SliceResult {
                z,
                p_covid: Some(z as f32 / 4.0),
                classes: ClassMap::from_dense(&classes),
                recon_mse: Some(0.01),
                ood: Some(z == 4),
                counts: None,
            });
        }
        let lung = LungMask {
            labels,
            approximate: false,
            method: LungMethod::HuThreshold,
        };
        (vol, lung, slices)
    }

    #[test]
    fn volumes_and_involvement_are_exact() {
        let (vol, lung, slices) = case(1.0);
        let ctx = ReportContext {
            input: "phantom",
            model: "m",
            backend: "cpu",
        };
        let r = build(&ctx, &vol, &lung, &slices);
        // Voxel = 0.5·0.5·2 mm³ = 0.0005 mL; each side 100 voxels × 5 slices.
        let lung_ml = r.lung_ml.clone().unwrap();
        assert!((lung_ml.left - 0.25).abs() < 1e-12 && (lung_ml.right - 0.25).abs() < 1e-12);
        let les = r.lesion_ml.clone().unwrap();
        // GGO: 2 columns × 10 rows × 5 slices = 100 voxels; consolidation 50.
        assert!((les.ggo - 0.05).abs() < 1e-12, "{}", les.ggo);
        assert!((les.consolidation - 0.025).abs() < 1e-12);
        assert!((les.total - 0.075).abs() < 1e-12);
        // Lesions at small x: with x pointing to the patient's left, that is the right lung.
        assert_eq!(r.involvement_pct.left, Some(0.0));
        assert!((r.involvement_pct.right.unwrap() - 30.0).abs() < 1e-9);
        assert!((r.involvement_pct.total.unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(r.severity, "CT-1");
        // The classifier's score: top quarter of [0, .25, .5, .75, 1] = the top 2: 0.875.
        assert!((r.p_covid_classifier.unwrap() - 0.875).abs() < 1e-6);
        assert!(r.lung_found && r.slices.iter().all(|s| s.lung));
        assert_eq!(r.ood_slices, vec![4]);
        assert_eq!(r.ood_checked, 5);
        assert!(!r.ood);

        // Reconstruction checked on a sample (slices 0, 2, 4), flagged on 2 and 4: the volume
        // flag is the majority of the checked slices (2 of 3), not of all slices (2 of 5).
        let mut sampled = slices.clone();
        for s in &mut sampled {
            (s.ood, s.recon_mse) = match s.z {
                2 | 4 => (Some(true), Some(0.5)),
                0 => (Some(false), Some(0.01)),
                _ => (None, None),
            };
        }
        let r = build(&ctx, &vol, &lung, &sampled);
        assert_eq!(
            (r.ood_slices.clone(), r.ood_checked, r.ood),
            (vec![2, 4], 3, true)
        );
        sampled[2].ood = Some(false);
        let r = build(&ctx, &vol, &lung, &sampled);
        assert_eq!((r.ood_checked, r.ood), (3, false));

        // Flip the x axis: the same voxels are now the patient's left.
        let (vol, lung, slices) = case(-1.0);
        let r = build(&ctx, &vol, &lung, &slices);
        assert_eq!(r.involvement_pct.right, Some(0.0));
        assert!((r.involvement_pct.left.unwrap() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn no_lung_no_verdict() {
        let (vol, mut lung, slices) = case(1.0);
        lung.labels.iter_mut().for_each(|l| *l = 0);
        let ctx = ReportContext {
            input: "abdomen",
            model: "m",
            backend: "cpu",
        };
        let r = build(&ctx, &vol, &lung, &slices);
        assert_eq!(r.p_covid, None);
        assert!(!r.lung_found);
        assert_eq!(r.severity, "n/a");
        assert!(r.slices.iter().all(|s| !s.lung));
        assert!(r.warnings.iter().any(|w| w == NO_LUNG_WARNING));
        // Lesions the model drew without any lung to hold them are not counted.
        assert_eq!(r.lesion_px.total, 0);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["p_covid"].is_null());
        assert_eq!(json["lung_found"], false);
        assert_eq!(json["slices"][0]["lung"], false);
    }

    #[test]
    fn lung_cut_by_the_top_of_the_volume_is_flagged_as_bases_only() {
        // 10 slices, z up = superior; lung only on the top 3, largest at the top.
        let dims = [20, 10, 10];
        let vol = volume(dims, [0.5, 0.5, 2.0], 1.0);
        let n2 = 200;
        let mut labels = vec![0u8; 2000];
        for (z, cols) in [(9usize, 10usize), (8, 6), (7, 3)] {
            for y in 0..10 {
                for x in 0..cols {
                    labels[z * n2 + y * 20 + x] = RIGHT;
                }
            }
        }
        let lung = LungMask {
            labels: labels.clone(),
            approximate: false,
            method: LungMethod::HuThreshold,
        };
        let slices: Vec<SliceResult> = (0..10)
            .map(|z| SliceResult {
                z,
                p_covid: Some(0.5),
                classes: ClassMap::from_dense(&vec![0; n2]),
                recon_mse: None,
                ood: None,
                counts: None,
            })
            .collect();
        let ctx = ReportContext {
            input: "bases",
            model: "m",
            backend: "cpu",
        };
        let r = build(&ctx, &vol, &lung, &slices);
        assert!(r.lung_found);
        assert!(
            r.warnings.iter().any(|w| w == LUNG_BASES_WARNING),
            "{:?}",
            r.warnings
        );
        // The same lung at the bottom of the volume (an upper-chest scan): no such warning.
        let mut flipped = vec![0u8; 2000];
        for z in 0..10 {
            flipped[(9 - z) * n2..(10 - z) * n2].copy_from_slice(&labels[z * n2..(z + 1) * n2]);
        }
        let lung = LungMask {
            labels: flipped,
            ..lung
        };
        let r = build(&ctx, &vol, &lung, &slices);
        assert!(!r.warnings.iter().any(|w| w == LUNG_BASES_WARNING));
    }

    #[test]
    fn severity_boundaries() {
        assert_eq!(severity(0.0, 0), "CT-0");
        assert_eq!(severity(0.001, 1), "CT-1");
        assert_eq!(severity(24.9, 10), "CT-1");
        assert_eq!(severity(25.0, 10), "CT-2");
        assert_eq!(severity(49.99, 10), "CT-2");
        assert_eq!(severity(50.0, 10), "CT-3");
        assert_eq!(severity(74.9, 10), "CT-3");
        assert_eq!(severity(75.0, 10), "CT-4");
        assert_eq!(severity(100.0, 10), "CT-4");
    }

    #[test]
    fn eight_bit_input_reports_pixels_never_ml() {
        let (mut vol, lung, slices) = case(1.0);
        vol.spacing_known = false;
        let ctx = ReportContext {
            input: "x.png",
            model: "m",
            backend: "cpu",
        };
        let r = build(&ctx, &vol, &lung, &slices);
        assert!(r.lung_ml.is_none() && r.lesion_ml.is_none());
        assert_eq!(r.lesion_px.total, 150);
        assert!(r.slices.iter().all(|s| s.lesion_ml.is_none()));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["lung_ml"].is_null());
        assert!(json["involvement_pct"]["total"].as_f64().is_some());
    }

    #[test]
    fn aggregation_rules() {
        let ps = [0.1, 0.9, 0.2, 0.8, 0.3];
        assert!((Aggregation::Mean.apply(&ps) - 0.46).abs() < 1e-12);
        assert_eq!(Aggregation::Max.apply(&ps), 0.9);
        assert_eq!(Aggregation::Median.apply(&ps), 0.3);
        assert!((Aggregation::TopQuarterMean.apply(&ps) - 0.85).abs() < 1e-12);
        assert!(Aggregation::Mean.apply(&[]).is_nan());
    }
}
