//! `ctscreen eval`: segmentation, classification and real-CT figures of a model.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use ctscreen::data::{self, Split};
use ctscreen::error::{Error, Result};
use ctscreen::evaluate;
use ctscreen::weights;

use crate::common::{DEFAULT_MODEL, DeviceArg, finite, load_inputs, load_model};

#[derive(Args)]
pub struct EvalArgs {
    /// Model directory (config.json + model.bpk).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Segmentation directory: images/, masks-binary/, optionally masks-multiclass/.
    #[arg(long)]
    pub seg: Option<PathBuf>,
    /// Classification directory: covid/, non-covid/ (and splits/ for --split).
    #[arg(long)]
    pub cls: Option<PathBuf>,
    /// all, or the documented train/val parts (MedSeg hold-back; UCSD official lists).
    #[arg(long, value_enum, default_value = "all")]
    pub split: Split,
    /// Real HU scans without pixel labels (a manifest of `path<TAB>covid|no-pneumonia`, e.g.
    /// tests/real-ct-manifest.tsv): lesion share of lung, HU contrast, severity, p(COVID-19).
    #[arg(long)]
    pub real: Option<PathBuf>,
    /// What the manifest's paths are relative to.
    #[arg(long, default_value = "../shared/data")]
    pub real_root: PathBuf,
    /// How real HU scans reach the network: `thorax` (the pipeline's canonical input: one crop
    /// around the lungs per volume, the thorax window) or `whole` (the whole slice through the
    /// lung window, as before canonicalisation; for the ablation).
    #[arg(long, value_parser = ["thorax", "whole"], default_value = "thorax")]
    pub frame: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Run on a grid of this side instead of the model's configured input_size.
    #[arg(long)]
    pub size: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn eval(a: EvalArgs) -> Result<()> {
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
    let c = Ctx {
        a: &a,
        loaded: &loaded,
        size,
        device: &device,
    };
    if let Some(dir) = &a.seg {
        out.insert("segmentation".into(), eval_seg(&c, dir)?);
    }
    if let Some(dir) = &a.cls {
        out.insert("classification".into(), eval_cls(&c, dir)?);
    }
    if let Some(manifest) = &a.real {
        out.insert("real_ct".into(), eval_real(&c, manifest)?);
    }
    if a.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// What every part of an evaluation shares.
struct Ctx<'a> {
    a: &'a EvalArgs,
    loaded: &'a weights::LoadedModel,
    /// The grid side the model runs on.
    size: usize,
    device: &'a burn::prelude::Device,
}

/// Segmentation figures on a MedSeg-style folder.
fn eval_seg(c: &Ctx<'_>, dir: &Path) -> Result<serde_json::Value> {
    let (a, loaded, size, device) = (c.a, c.loaded, c.size, c.device);
    let items = data::load_seg_dir(dir, a.split)?;
    let r = evaluate::eval_seg(&loaded.model, &items, size, a.batch, device)?;
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
    Ok(json!({
        "n": r.n, "dice_mean": finite(r.dice_mean), "dice_global": finite(r.dice_global),
        "iou_mean": finite(r.iou_mean), "sensitivity": finite(r.sensitivity),
        "specificity": finite(r.specificity), "dice_ggo": finite(r.dice_ggo),
        "dice_consolidation": finite(r.dice_consolidation),
        "per_slice": r.per_slice.iter().map(|(n, d)| json!({"name": n, "dice": finite(*d)})).collect::<Vec<_>>(),
    }))
}

/// Classification figures on a UCSD-style folder, with the orientation check.
fn eval_cls(c: &Ctx<'_>, dir: &Path) -> Result<serde_json::Value> {
    let (a, loaded, size, device) = (c.a, c.loaded, c.size, c.device);
    let items = data::load_cls_dir(dir, a.split)?;
    let r = evaluate::eval_cls(
        &loaded.model,
        &items,
        size,
        a.batch,
        a.threshold,
        true,
        device,
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
    Ok(json!({
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
    }))
}

/// Lesion share, HU contrast, severity and p(COVID-19) on the real HU scans of a manifest.
fn eval_real(c: &Ctx<'_>, manifest: &Path) -> Result<serde_json::Value> {
    let (a, loaded, size, device) = (c.a, c.loaded, c.size, c.device);
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    let cases = evaluate::parse_real_manifest(&text)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", manifest.display())))?;
    let mut results = Vec::with_capacity(cases.len());
    for (path, class) in &cases {
        let full = a.real_root.join(path);
        let vol = load_inputs(
            std::slice::from_ref(&full),
            ctscreen::volume::DEFAULT_MAX_VOXELS,
        )?;
        // A radiologist's per-slice labels beside a series: `labels.tsv` in its folder.
        let labels = std::fs::read_to_string(full.join("labels.tsv")).ok();
        let r = evaluate::real_ct_case(
            &loaded.model,
            device,
            &vol,
            size,
            loaded.config.ood_threshold,
            a.batch,
            path,
            class,
            a.frame == "thorax",
            labels.as_deref(),
        )?;
        if !a.json {
            let f = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |v| format!("{v:.d$}"));
            println!(
                "real {:<15} {:<72} slices {:>3}  lesion {:>6} % of lung  HU contrast {:>6}  {:<4}  {:?} p {} (pneumonia {}, classifier {})",
                r.class,
                r.path,
                r.slices,
                f(r.lesion_pct, 1),
                f(r.hu_contrast, 0),
                r.severity,
                r.state,
                f(r.p_covid, 2),
                f(r.p_pneumonia, 2),
                f(r.p_covid_classifier, 2)
            );
            println!(
                "     pattern {}",
                serde_json::to_string(&r.features).unwrap_or_default()
            );
            if let Some(l) = &r.slice_labels {
                println!(
                    "     labels.tsv: {} slices ({} infected): lesion-share AUC {}, infected-slice rule sensitivity {:.2} specificity {:.2}",
                    l.n,
                    l.n_infected,
                    f(l.auc_lesion_share, 3),
                    l.sensitivity,
                    l.specificity
                );
            }
        }
        results.push(r);
    }
    let summary = |class: &str| {
        let c: Vec<&evaluate::RealCtCase> = results.iter().filter(|r| r.class == class).collect();
        let pct: Vec<f64> = c.iter().filter_map(|r| r.lesion_pct).collect();
        let con: Vec<f64> = c.iter().filter_map(|r| r.hu_contrast).collect();
        json!({
            "n": c.len(),
            "lesion_pct_mean": finite(ctscreen::metrics::mean(&pct)),
            "lesion_pct_max": finite(pct.iter().copied().fold(f64::NAN, f64::max)),
            "hu_contrast_mean": finite(ctscreen::metrics::mean(&con)),
            "hu_contrast_min": finite(con.iter().copied().fold(f64::NAN, f64::min)),
            "p_covid_at_least_half": c.iter().filter(|r| r.p_covid.is_some_and(|p| p >= 0.5)).count(),
            "no_call": c.iter().filter(|r| r.p_covid.is_none()).count(),
            "classifier_at_least_half": c.iter().filter(|r| r.p_covid_classifier.is_some_and(|p| p >= 0.5)).count(),
        })
    };
    let (cov, cap, non) = (
        summary("covid"),
        summary("other-pneumonia"),
        summary("no-pneumonia"),
    );
    if !a.json {
        println!("real covid: {cov}");
        println!("real other-pneumonia: {cap}");
        println!("real no-pneumonia: {non}");
    }
    Ok(
        json!({"frame": a.frame, "cases": results, "covid": cov, "other_pneumonia": cap, "no_pneumonia": non}),
    )
}
