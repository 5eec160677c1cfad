//! `ctscreen compare`: a baseline and a follow-up scan of one patient, analysed with one model
//! (loaded once), aligned along z by their lungs, and the change in every figure.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use ctscreen::compare::{self, Comparison, ScanFacts};
use ctscreen::error::{Error, Result};

use crate::analyze::run_pipeline;
use crate::common::{RunArgs, load_model};

#[derive(Args)]
pub struct CompareArgs {
    /// The earlier scan: a DICOM folder or file, a NIfTI, or a PNG/JPEG slice.
    pub baseline: PathBuf,
    /// The later scan, of the same patient.
    pub followup: PathBuf,
    /// Print the comparison as one JSON object (both full reports, alignment, change).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn compare(a: CompareArgs) -> Result<()> {
    let device = a.run.device.device.device()?;
    let loaded = load_model(&a.run.model, &device)?;
    let run =
        |path: &PathBuf| run_pipeline(std::slice::from_ref(path), &loaded, &device, &a.run, a.json);
    // Both are analysed even when the first fails: the other's figures are still worth having.
    let (base, fu) = (run(&a.baseline), run(&a.followup));
    let (base, fu) = match (base, fu) {
        (Ok(b), Ok(f)) => (b, f),
        (b, f) => {
            let mut failed = Vec::new();
            for (name, r) in [("baseline", b), ("follow-up", f)] {
                match r {
                    Ok(an) => {
                        if a.json {
                            println!("{}", json!({ name: an.report }));
                        } else {
                            println!(
                                "{name} {}: {}; lung involvement {}",
                                an.report.input,
                                an.report.call.summary,
                                an.report
                                    .involvement_pct
                                    .total
                                    .map_or("n/a".into(), |v| format!("{v:.1} %"))
                            );
                        }
                    }
                    Err(e) => failed.push(format!("{name}: {e}")),
                }
            }
            return Err(Error::Compare(failed.join("; ")));
        }
    };
    let c = compare::compare(
        base.report,
        &ScanFacts::of(&base.vol),
        fu.report,
        &ScanFacts::of(&fu.vol),
    );
    if a.json {
        println!("{}", serde_json::to_value(&c).unwrap_or_default());
    } else {
        print_text(&c);
    }
    Ok(())
}

fn print_text(c: &Comparison) {
    let date = |d: &Option<String>| d.clone().unwrap_or_else(|| "date unknown".into());
    println!(
        "baseline  {} ({})\nfollow-up {} ({})",
        c.baseline.input,
        date(&c.dates.baseline),
        c.followup.input,
        date(&c.dates.followup)
    );
    match c.alignment.z_offset_mm {
        Some(d) => println!(
            "aligned: follow-up level = baseline level {d:+.1} mm (lung seen in both over {:.0} mm; profile mismatch {:.3})",
            c.alignment.overlap_mm.unwrap_or(0.0),
            c.alignment.mismatch.unwrap_or(0.0)
        ),
        None => println!(
            "not aligned: {}",
            c.alignment.reason.as_deref().unwrap_or("")
        ),
    }
    let ch = &c.change;
    let num = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.1}{unit}"));
    let delta = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:+.1}{unit}"));
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "", "baseline", "follow-up", "change"
    );
    let (ib, iff) = (&ch.involvement_pct.baseline, &ch.involvement_pct.followup);
    for (name, b, f, d) in [
        (
            "involvement left %",
            ib.left,
            iff.left,
            ch.involvement_pct_points.left,
        ),
        (
            "involvement right %",
            ib.right,
            iff.right,
            ch.involvement_pct_points.right,
        ),
        (
            "involvement total %",
            ib.total,
            iff.total,
            ch.involvement_pct_points.total,
        ),
    ] {
        println!(
            "{name:<28} {:>12} {:>12} {:>12}",
            num(b, ""),
            num(f, ""),
            delta(d, " pt")
        );
    }
    if let (Some(b), Some(f), Some(d)) = (
        &ch.lesion_ml_values.baseline,
        &ch.lesion_ml_values.followup,
        &ch.lesion_ml,
    ) {
        let pct = ch.lesion_ml_pct.as_ref();
        for (name, vb, vf, vd, vp) in [
            (
                "lesion GGO mL",
                b.ggo,
                f.ggo,
                d.ggo,
                pct.and_then(|p| p.ggo),
            ),
            (
                "lesion consolidation mL",
                b.consolidation,
                f.consolidation,
                d.consolidation,
                pct.and_then(|p| p.consolidation),
            ),
            (
                "lesion total mL",
                b.total,
                f.total,
                d.total,
                pct.and_then(|p| p.total),
            ),
        ] {
            println!(
                "{name:<28} {:>12} {:>12} {:>12}{}",
                num(Some(vb), ""),
                num(Some(vf), ""),
                delta(Some(vd), ""),
                vp.map_or(String::new(), |p| format!(" ({p:+.0} %)"))
            );
        }
    }
    if let (Some(b), Some(f)) = (&ch.lung_ml_values.baseline, &ch.lung_ml_values.followup) {
        println!(
            "{:<28} {:>12.0} {:>12.0} {:>+12.0}",
            "lung mL",
            b.total,
            f.total,
            f.total - b.total
        );
    }
    println!(
        "{:<28} {:>12} {:>12}",
        "severity", ch.severity.baseline, ch.severity.followup
    );
    for line in &c.summary {
        println!("- {line}");
    }
    for w in &c.warnings {
        println!("note: {w}");
    }
    println!("{}", c.disclaimer);
}
