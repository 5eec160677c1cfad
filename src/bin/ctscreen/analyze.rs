//! `ctscreen analyze`: the pipeline on one input, printed as text or JSON, with exports.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use ctscreen::error::{Error, Result};
use ctscreen::lung::lung_mask;
use ctscreen::pipeline;
use ctscreen::report::{self, ReportContext};
use ctscreen::volume::nii;

use crate::common::{RunArgs, load_inputs, load_model};

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A DICOM folder or files, a NIfTI (.nii/.nii.gz), or a PNG/JPEG slice; `demo` analyses
    /// the synthetic phantom.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the lesion mask (1 GGO, 2 consolidation, inside the lungs) as .nii.gz on the
    /// input's grid.
    #[arg(long)]
    pub mask_out: Option<PathBuf>,
    /// Write the lesions as a DICOM Segmentation referencing the input series (DICOM input).
    #[arg(long)]
    pub seg_out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub struct Analysis {
    pub vol: ctscreen::volume::CtVolume,
    pub lung: ctscreen::lung::LungMask,
    pub slices: Vec<ctscreen::slices::SliceResult>,
    pub report: report::Report,
    /// Seconds: load, model, lung and report.
    pub seconds: [f64; 3],
}

/// Load `inputs` as one volume and run the pipeline on it, with a progress bar unless `quiet`.
pub fn run_pipeline(
    inputs: &[PathBuf],
    loaded: &ctscreen::weights::LoadedModel,
    device: &burn::prelude::Device,
    run: &RunArgs,
    quiet: bool,
) -> Result<Analysis> {
    let (backend, batch, max_voxels) = (run.device.device.name(), run.batch, run.max_voxels);
    let t0 = Instant::now();
    let vol = load_inputs(inputs, max_voxels)?;
    let t_load = t0.elapsed().as_secs_f64();
    let size = loaded.config.input_size;
    let nz = vol.dims[2];
    let bar = if quiet || nz < 2 {
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
        device,
        &vol,
        &lung,
        &frame,
        size,
        loaded.config.ood_threshold,
        batch,
        run.recon_every,
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let t_model = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let input = inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let ctx = ReportContext {
        input: &input,
        model: &loaded.config.version,
        backend,
    };
    let report = report::build(&ctx, &vol, &lung, &slices);
    let t_report = t_lung + t2.elapsed().as_secs_f64();
    Ok(Analysis {
        vol,
        lung,
        slices,
        report,
        seconds: [t_load, t_model, t_report],
    })
}

pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let t0 = Instant::now();
    let device = a.run.device.device.device()?;
    let loaded = load_model(&a.run.model, &device)?;
    let Analysis {
        vol,
        lung,
        slices,
        report,
        seconds: [t_load, t_model, t_report],
    } = run_pipeline(&a.inputs, &loaded, &device, &a.run, a.json)?;
    let nz = vol.dims[2];
    let input = &report.input;
    if let Some(path) = &a.seg_out {
        let labels = ctscreen::slices::lesion_labels(&vol, &lung, &slices);
        let bytes = ctscreen::dicom_seg::write_seg(&vol, &labels)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = &a.mask_out {
        let labels = ctscreen::slices::lesion_labels(&vol, &lung, &slices);
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
        let c = &report.call;
        let p = |v: Option<f64>| v.map_or("n/a".to_string(), |p| format!("{p:.2}"));
        println!(
            "{input}: {} — p(COVID-19) {} (p(pneumonia) {}, p(COVID-19 | pneumonia, pattern) {}); lung involvement {inv}, severity {}; {} of {} checked slices (of {}) flagged out-of-distribution.",
            c.summary,
            p(c.p_covid),
            p(c.p_pneumonia),
            p(c.p_covid_given_pneumonia),
            report.severity,
            report.ood_slices.len(),
            report.ood_checked,
            nz
        );
        println!("pattern: {}", pattern_line(&c.features));
        println!(
            "slice classifier (not validated on scanner CT, no part of the call): {}",
            p(report.p_covid_classifier)
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

/// The pattern features in one line.
pub fn pattern_line(f: &ctscreen::pattern::PatternFeatures) -> String {
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.0} %", 100.0 * v));
    let yes = |v: Option<bool>| v.map_or("n/a", |b| if b { "yes" } else { "no" });
    format!(
        "{} of {} lung slices infected; bilateral {}; peripheral {}; ground glass {}; zones {}; foci {}",
        f.infected_slices,
        f.lung_slices,
        yes(f.bilateral),
        pct(f.peripheral_share),
        pct(f.ggo_share),
        f.zones_involved
            .map_or("n/a".to_string(), |n| format!("{n} of 6")),
        f.foci.map_or("n/a".to_string(), |n| n.to_string())
    )
}
