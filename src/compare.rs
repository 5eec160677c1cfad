//! Follow-up: two analysed scans of one patient compared. The scans are aligned along the
//! craniocaudal axis by their lung-area profiles (never deformed: a radiologist compares the
//! images as acquired), every figure of the two reports is put as baseline → follow-up with its
//! change, and whatever makes the comparison doubtful (another patient, another slice spacing,
//! no lung, dates in the wrong order, no common lung extent) is said, not refused.
//!
//! Pure on two [`Report`]s and their [`ScanFacts`], so the CLI and the web worker share it as
//! they share [`crate::pipeline`].

use serde::Serialize;

use crate::call::CallState;
use crate::report::{Involvement, Lesions, Report};
use crate::volume::CtVolume;

/// What a comparison needs of a scan besides its report, read from the volume's metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFacts {
    /// Study date (year, month, day), from DICOM StudyDate; none for NIfTI and PNG/JPEG.
    pub date: Option<(i32, u32, u32)>,
    /// A hash of PatientID and PatientName: equal for the same patient, and neither identifier
    /// is kept or printed (a change report gets shared more freely than a scan).
    pub patient_key: Option<u64>,
    /// DICOM (0018,1210) Convolution Kernel, as the scanner wrote it.
    pub kernel: Option<String>,
}

impl ScanFacts {
    pub fn of(vol: &CtVolume) -> Self {
        let tag = |group: u16, element: u16| {
            vol.meta
                .patient_study
                .iter()
                .find(|(g, e, _, _)| *g == group && *e == element)
                .map(|(_, _, _, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // (0010,0020) PatientID and (0010,0010) PatientName.
        let (id, name) = (tag(0x0010, 0x0020), tag(0x0010, 0x0010));
        let patient_key = (id.is_some() || name.is_some()).then(|| {
            fnv1a(
                format!(
                    "{}\u{0}{}",
                    id.unwrap_or_default(),
                    name.unwrap_or_default()
                )
                .as_bytes(),
            )
        });
        let date = vol
            .meta
            .study_date
            .as_deref()
            .or_else(|| {
                vol.meta
                    .patient_study
                    .iter()
                    .find(|(g, e, _, _)| *g == 0x0008 && *e == 0x0020)
                    .map(|(_, _, _, v)| v.as_str())
            })
            .and_then(parse_dicom_date);
        let kernel = vol
            .meta
            .convolution_kernel
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        ScanFacts {
            date,
            patient_key,
            kernel,
        }
    }
}

/// 64-bit FNV-1a: stable across platforms and builds (std's hasher is not), enough to tell two
/// identifiers apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A DICOM DA value: `YYYYMMDD`, or the old ACR-NEMA `YYYY.MM.DD`; `None` if it is not a date.
pub fn parse_dicom_date(s: &str) -> Option<(i32, u32, u32)> {
    let digits: String = s.trim().chars().filter(|c| *c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = digits[0..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    ((1..=12).contains(&m) && d >= 1 && d <= month_days[(m - 1) as usize]).then_some((y, m, d))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil((y, m, d): (i32, u32, u32)) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn iso((y, m, d): (i32, u32, u32)) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// How the follow-up was placed against the baseline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alignment {
    /// Positions are mm above each scan's lowest slice; the anatomical level at baseline
    /// position `t` is at follow-up position `t + z_offset_mm`. Null when the scans could not
    /// be aligned (then there is no aligned view).
    pub z_offset_mm: Option<f64>,
    pub method: &'static str,
    /// Craniocaudal lung extent seen in both scans at that offset, mm.
    pub overlap_mm: Option<f64>,
    /// Mismatch of the two lung-area profiles at that offset: 0 identical, 1 nothing in common.
    pub mismatch: Option<f64>,
    /// Why there is no alignment, when there is none.
    pub reason: Option<String>,
    /// Where each scan's frame starts: the patient z (mm) of its lowest analysed slice, so
    /// that a viewer can turn a slice position of one scan into the other's (baseline patient
    /// z `p` is at follow-up patient z `p - origin.baseline + z_offset_mm + origin.followup`).
    pub origin_mm: Option<Pair<f64>>,
}

pub const ALIGNMENT_METHOD: &str = "craniocaudal shift only, matching the lung-area profiles \
     along z (each scaled to its largest slice, so a deeper breath does not shift the match), \
     searched in 0.5 mm steps over shifts that keep at least half of the shorter lung extent \
     in both scans; no in-plane shift, no deformation";

/// The search step and the sampling of the profiles, mm.
const STEP_MM: f64 = 0.5;
/// The lung extents must overlap by this share of the shorter one.
const MIN_OVERLAP: f64 = 0.5;

/// One scan's lung along z: (mm above its lowest slice, lung area mm², lesion share %), one
/// entry per analysed slice with a physical position, ascending.
struct Profile {
    /// Patient z (mm) of the lowest slice: where the scan-local frame starts.
    lo: f64,
    points: Vec<(f64, f64, Option<f64>)>,
    /// First and last position with lung.
    lung: Option<(f64, f64)>,
}

fn profile(r: &Report) -> Option<Profile> {
    let sp = r.spacing_mm?;
    let px_mm2 = sp[0] * sp[1];
    let mut pts: Vec<(f64, usize, usize, bool)> = r
        .slices
        .iter()
        .filter_map(|s| Some((s.position_mm?, s.lung_px, s.lesion_px, s.lung)))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lo = pts[0].0;
    let points: Vec<(f64, f64, Option<f64>)> = pts
        .iter()
        .map(|&(z, lung, lesion, has_lung)| {
            let share = (has_lung && lung > 0).then(|| 100.0 * lesion as f64 / lung as f64);
            (z - lo, lung as f64 * px_mm2, share)
        })
        .collect();
    let with_lung: Vec<f64> = points.iter().filter(|p| p.1 > 0.0).map(|p| p.0).collect();
    let lung = with_lung
        .first()
        .zip(with_lung.last())
        .map(|(&a, &b)| (a, b));
    Some(Profile { lo, points, lung })
}

impl Profile {
    fn extent(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }

    /// Lung area at `t` (mm above the lowest slice), linear between slices; `None` outside.
    fn area_at(&self, t: f64) -> Option<f64> {
        let i = self.points.partition_point(|p| p.0 <= t);
        if i == 0 {
            return (t >= 0.0 && self.points[0].0 == t).then_some(self.points[0].1);
        }
        let a = self.points[i - 1];
        if i == self.points.len() {
            return (t <= a.0 + 1e-9).then_some(a.1);
        }
        let b = self.points[i];
        let w = (t - a.0) / (b.0 - a.0).max(1e-9);
        Some(a.1 + w * (b.1 - a.1))
    }

    fn max_area(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

/// Find the shift of the follow-up against the baseline (see [`Alignment`]).
fn align(base: &Report, fu: &Report) -> Alignment {
    let none = |reason: String| Alignment {
        z_offset_mm: None,
        method: ALIGNMENT_METHOD,
        overlap_mm: None,
        mismatch: None,
        reason: Some(reason),
        origin_mm: None,
    };
    let (Some(pb), Some(pf)) = (profile(base), profile(fu)) else {
        return none(
            "a scan without physical slice positions (a single slice, or PNG/JPEG) cannot be \
             placed along z"
                .into(),
        );
    };
    let (Some((b0, b1)), Some((f0, f1))) = (pb.lung, pf.lung) else {
        return none("no lung found in one of the scans".into());
    };
    let (mb, mf) = (pb.max_area(), pf.max_area());
    let shorter = (b1 - b0).min(f1 - f0);
    let n_b = (pb.extent() / STEP_MM).floor() as i64;
    let (k_lo, k_hi) = (
        (-pb.extent() / STEP_MM).floor() as i64,
        (pf.extent() / STEP_MM).ceil() as i64,
    );
    // (mismatch, |offset|, offset, overlap) of the best shift so far.
    let mut best: Option<(f64, f64, f64, f64)> = None;
    for k in k_lo..=k_hi {
        let d = k as f64 * STEP_MM;
        let overlap = (b1.min(f1 - d) - b0.max(f0 - d)).max(0.0);
        if overlap < MIN_OVERLAP * shorter || overlap <= 0.0 {
            continue;
        }
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..=n_b {
            let t = i as f64 * STEP_MM;
            let (Some(a), Some(b)) = (pb.area_at(t), pf.area_at(t + d)) else {
                continue;
            };
            let (a, b) = (a / mb, b / mf);
            num += (a - b) * (a - b);
            den += a * a + b * b;
        }
        if den <= 0.0 {
            continue;
        }
        let m = num / den;
        let better = match best {
            None => true,
            Some((bm, babs, _, _)) => m < bm - 1e-12 || ((m - bm).abs() <= 1e-12 && d.abs() < babs),
        };
        if better {
            best = Some((m, d.abs(), d, overlap));
        }
    }
    match best {
        Some((m, _, d, overlap)) => Alignment {
            z_offset_mm: Some(d),
            method: ALIGNMENT_METHOD,
            overlap_mm: Some(overlap),
            mismatch: Some(m),
            reason: None,
            origin_mm: Some(Pair {
                baseline: pb.lo,
                followup: pf.lo,
            }),
        },
        None => none(format!(
            "the lung extents of the two scans ({:.0} mm and {:.0} mm long) cannot be made to \
             overlap by half of the shorter one: no aligned view",
            b1 - b0,
            f1 - f0
        )),
    }
}

/// A figure of both scans.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pair<T> {
    pub baseline: T,
    pub followup: T,
}

/// Left, right and both lungs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LungSides {
    pub left: f64,
    pub right: f64,
    pub total: f64,
}

/// Follow-up minus baseline, figure by figure.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Involvement change in percentage points (null where either scan has no figure).
    pub involvement_pct_points: Involvement,
    /// Lesion volume change in mL; null when either scan has no physical spacing.
    pub lesion_ml: Option<Lesions<f64>>,
    /// Lesion volume change as a share of the baseline's, %; null where the baseline has
    /// under [`MIN_BASE_ML`] of that lesion type (a change from nothing has no percentage).
    pub lesion_ml_pct: Option<Lesions<Option<f64>>>,
    /// Lung volume change in mL (inspiration differs between scans; this says by how much).
    pub lung_ml: Option<LungSides>,
    pub involvement_pct: Pair<Involvement>,
    pub lesion_ml_values: Pair<Option<Lesions<f64>>>,
    pub lung_ml_values: Pair<Option<LungSides>>,
    pub severity: Pair<&'static str>,
    pub call: Pair<CallState>,
    pub call_summary: Pair<&'static str>,
    pub p_covid: Pair<Option<f64>>,
    /// Days from the baseline's study date to the follow-up's; null when either is unknown.
    pub interval_days: Option<i64>,
    pub warnings: Vec<String>,
}

/// Below this baseline lesion volume (mL) a relative change is not given.
pub const MIN_BASE_ML: f64 = 0.5;

/// Lesion share along the lungs for the plot: (position mm in the baseline's frame, lesion %
/// of the slice's lung), slices with lung only.
#[derive(Debug, Clone, Serialize)]
pub struct Profiles {
    /// True when the follow-up's positions are shifted into the baseline's frame; false when
    /// the scans could not be aligned (each is then in its own frame).
    pub aligned: bool,
    pub baseline: Vec<[f64; 2]>,
    pub followup: Vec<[f64; 2]>,
}

/// The change report: `ctscreen compare --json` and the page's follow-up view.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: Report,
    pub followup: Report,
    pub dates: Pair<Option<String>>,
    pub interval_days: Option<i64>,
    /// Whether both scans carry the same patient identifiers; null when either carries none.
    pub same_patient: Option<bool>,
    pub alignment: Alignment,
    pub change: Change,
    pub profiles: Profiles,
    /// The change in plain words, one line each.
    pub summary: Vec<String>,
    pub warnings: Vec<String>,
    pub disclaimer: &'static str,
}

fn lung_sides(r: &Report) -> Option<LungSides> {
    r.lung_ml.as_ref().map(|s| LungSides {
        left: s.left,
        right: s.right,
        total: s.left + s.right,
    })
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

fn pct_change(base: f64, fu: f64) -> Option<f64> {
    (base >= MIN_BASE_ML).then(|| 100.0 * (fu - base) / base)
}

/// Compare a baseline and a follow-up analysis. The reports are kept whole in the result.
pub fn compare(
    base: Report,
    base_facts: &ScanFacts,
    fu: Report,
    fu_facts: &ScanFacts,
) -> Comparison {
    let mut warnings: Vec<String> = Vec::new();
    let same_patient = match (base_facts.patient_key, fu_facts.patient_key) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    match same_patient {
        Some(false) => warnings.push(
            "the two scans carry different patient identifiers (PatientID / name): check that \
             they are of the same patient"
                .into(),
        ),
        None => warnings.push(
            "patient identity unknown for at least one scan (NIfTI and PNG/JPEG carry none): \
             check that both are of the same patient"
                .into(),
        ),
        Some(true) => {}
    }
    let interval_days = match (base_facts.date, fu_facts.date) {
        (Some(a), Some(b)) => Some(days_from_civil(b) - days_from_civil(a)),
        _ => None,
    };
    match interval_days {
        Some(d) if d < 0 => warnings.push(format!(
            "the follow-up ({}) is dated before the baseline ({}): swap the order?",
            fu_facts.date.map(iso).unwrap_or_default(),
            base_facts.date.map(iso).unwrap_or_default()
        )),
        None => warnings
            .push("study date unknown for at least one scan: the interval is not known".into()),
        _ => {}
    }
    for (name, r) in [("baseline", &base), ("follow-up", &fu)] {
        match r.call.state {
            CallState::NoLung => warnings.push(format!(
                "no lung found in the {name}: its lung and lesion figures cannot be compared"
            )),
            CallState::IncompleteLung => warnings.push(format!(
                "the lung is cut by an end of the {name} scan: its volumes cover only the part \
                 in the scan"
            )),
            _ => {}
        }
        if r.ood {
            warnings.push(format!(
                "the {name} is out of distribution for the model: its figures are less reliable"
            ));
        }
        // A cancelled run reports over the slices it finished; said, since its volumes are
        // then too small.
        if r.slices.len() < r.dims[2] {
            warnings.push(format!(
                "the {name} was analysed on {} of its {} slices (cancelled): its figures cover \
                 those slices only",
                r.slices.len(),
                r.dims[2]
            ));
        }
        if r.spacing_mm.is_none() {
            warnings.push(format!(
                "the {name} has no physical spacing (an 8-bit image): volumes in mL cannot be \
                 compared, involvement % can"
            ));
        }
    }
    if let (Some(a), Some(b)) = (base.spacing_mm, fu.spacing_mm) {
        let (za, zb) = (a[2], b[2]);
        if (za - zb).abs() > 0.25 * za.min(zb) {
            warnings.push(format!(
                "different slice spacing ({za:.2} mm and {zb:.2} mm): thick slices blur small \
                 lesions, so volumes differ a little even without any change"
            ));
        }
    }
    if let (Some(a), Some(b)) = (&base_facts.kernel, &fu_facts.kernel)
        && !a.eq_ignore_ascii_case(b)
    {
        warnings.push(format!(
            "different reconstruction kernels ({a} and {b}): a sharper kernel shows more noise, \
             which can read as ground glass, so part of a change may be the kernel's"
        ));
    }
    let alignment = align(&base, &fu);
    if let Some(reason) = &alignment.reason {
        warnings.push(format!("not aligned: {reason}"));
    }

    let inv =
        |f: fn(&Involvement) -> Option<f64>| diff(f(&base.involvement_pct), f(&fu.involvement_pct));
    let involvement_pct_points = Involvement {
        left: inv(|i| i.left),
        right: inv(|i| i.right),
        total: inv(|i| i.total),
    };
    let (lb, lf) = (base.lesion_ml.clone(), fu.lesion_ml.clone());
    // Without lung in one scan its "0 mL" is no measurement: no change is computed from it.
    let comparable = base.lung_found && fu.lung_found;
    let lesions = comparable.then(|| lb.as_ref().zip(lf.as_ref())).flatten();
    let lesion_ml = lesions.map(|(a, b)| Lesions {
        ggo: b.ggo - a.ggo,
        consolidation: b.consolidation - a.consolidation,
        total: b.total - a.total,
    });
    let lesion_ml_pct = lesions.map(|(a, b)| Lesions {
        ggo: pct_change(a.ggo, b.ggo),
        consolidation: pct_change(a.consolidation, b.consolidation),
        total: pct_change(a.total, b.total),
    });
    let (gb, gf) = (lung_sides(&base), lung_sides(&fu));
    let lung_ml = comparable
        .then(|| gb.as_ref().zip(gf.as_ref()))
        .flatten()
        .map(|(a, b)| LungSides {
            left: b.left - a.left,
            right: b.right - a.right,
            total: b.total - a.total,
        });

    let mut summary = Vec::new();
    if let Some((a, b)) = lesions {
        summary.push(lesion_words(a.total, b.total));
    } else if !comparable {
        summary
            .push("no lung in one of the scans: lung and lesion volumes are not compared".into());
    }
    if let (Some(a), Some(b)) = (base.involvement_pct.total, fu.involvement_pct.total) {
        summary.push(format!(
            "lung involvement {a:.1} % → {b:.1} % ({:+.1} points)",
            b - a
        ));
    }
    summary.push(format!("severity {} → {}", base.severity, fu.severity));
    let p = |v: Option<f64>| v.map_or("n/a".to_string(), |p| format!("{p:.2}"));
    summary.push(format!(
        "call: {} (p(COVID-19) {}) → {} (p(COVID-19) {})",
        base.call.summary,
        p(base.call.p_covid),
        fu.call.summary,
        p(fu.call.p_covid)
    ));
    if let Some(d) = interval_days {
        summary.push(format!("interval {d} days"));
    }

    let profiles = profiles(&base, &fu, alignment.z_offset_mm);
    let change = Change {
        involvement_pct_points,
        lesion_ml,
        lesion_ml_pct,
        lung_ml,
        involvement_pct: Pair {
            baseline: base.involvement_pct.clone(),
            followup: fu.involvement_pct.clone(),
        },
        lesion_ml_values: Pair {
            baseline: lb,
            followup: lf,
        },
        lung_ml_values: Pair {
            baseline: gb,
            followup: gf,
        },
        severity: Pair {
            baseline: base.severity,
            followup: fu.severity,
        },
        call: Pair {
            baseline: base.call.state,
            followup: fu.call.state,
        },
        call_summary: Pair {
            baseline: base.call.summary,
            followup: fu.call.summary,
        },
        p_covid: Pair {
            baseline: base.call.p_covid,
            followup: fu.call.p_covid,
        },
        interval_days,
        warnings: warnings.clone(),
    };
    Comparison {
        dates: Pair {
            baseline: base_facts.date.map(iso),
            followup: fu_facts.date.map(iso),
        },
        baseline: base,
        followup: fu,
        interval_days,
        same_patient,
        alignment,
        change,
        profiles,
        summary,
        warnings,
        disclaimer: crate::report::DISCLAIMER,
    }
}

/// "lesion volume fell by 62 %, 310 → 118 mL", or what fits when there was little or none.
pub fn lesion_words(base: f64, fu: f64) -> String {
    match pct_change(base, fu) {
        None if fu < MIN_BASE_ML => {
            format!("little or no lesion in either scan ({base:.1} → {fu:.1} mL)")
        }
        None => format!("lesions appeared: {base:.1} → {fu:.1} mL"),
        Some(p) if p.abs() < 5.0 => {
            format!("lesion volume about the same ({p:+.0} %), {base:.0} → {fu:.0} mL")
        }
        Some(p) => format!(
            "lesion volume {} by {:.0} %, {base:.0} → {fu:.0} mL",
            if p < 0.0 { "fell" } else { "rose" },
            p.abs()
        ),
    }
}

fn profiles(base: &Report, fu: &Report, offset: Option<f64>) -> Profiles {
    let pts = |r: &Report, shift: f64| -> Vec<[f64; 2]> {
        profile(r).map_or_else(Vec::new, |p| {
            p.points
                .iter()
                .filter_map(|&(t, _, share)| Some([t - shift, share?]))
                .collect()
        })
    };
    Profiles {
        aligned: offset.is_some(),
        baseline: pts(base, 0.0),
        followup: pts(fu, offset.unwrap_or(0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lung::{LEFT, LungMask, RIGHT, lung_mask};
    use crate::report::{ReportContext, build};
    use crate::slices::{ClassMap, SliceResult};
    use crate::volume::CtVolume;

    /// Paint a ball of ground glass (−400 HU) in the right lung and one of consolidation (0 HU)
    /// in the left, clipped to the lung mask, and report it as a perfect model would (classes =
    /// the painted balls). Returns the report and the painted (GGO, consolidation) voxels.
    fn painted(vol: &CtVolume, lung: &LungMask, r_ggo: f64, r_cons: f64) -> (Report, usize, usize) {
        let [nx, ny, nz] = vol.dims;
        let n2 = nx * ny;
        let centroid = |label: u8| {
            let (mut s, mut n) = ([0f64; 3], 0f64);
            for z in 0..nz {
                for (i, &l) in lung.slice(vol, z).iter().enumerate() {
                    if l == label {
                        s[0] += (i % nx) as f64;
                        s[1] += (i / nx) as f64;
                        s[2] += z as f64;
                        n += 1.0;
                    }
                }
            }
            s.map(|v| v / n)
        };
        let (cr, cl) = (centroid(RIGHT), centroid(LEFT));
        let sp = vol.spacing_mm;
        let dist = |c: [f64; 3], x: usize, y: usize, z: usize| {
            (((x as f64 - c[0]) * sp[0]).powi(2)
                + ((y as f64 - c[1]) * sp[1]).powi(2)
                + ((z as f64 - c[2]) * sp[2]).powi(2))
            .sqrt()
        };
        let mut v = vol.clone();
        let (mut n_ggo, mut n_cons) = (0, 0);
        let mut slices = Vec::new();
        for z in 0..nz {
            let ls = lung.slice(vol, z);
            let mut cls = vec![0u8; n2];
            for i in 0..n2 {
                let (x, y) = (i % nx, i / nx);
                if ls[i] == RIGHT && dist(cr, x, y, z) < r_ggo {
                    cls[i] = 1;
                    v.voxels[z * n2 + i] = -400;
                    n_ggo += 1;
                } else if ls[i] == LEFT && dist(cl, x, y, z) < r_cons {
                    cls[i] = 2;
                    v.voxels[z * n2 + i] = 0;
                    n_cons += 1;
                }
            }
            slices.push(SliceResult {
                z,
                p_covid: Some(0.5),
                classes: ClassMap::from_dense(&cls),
                recon_mse: None,
                ood: None,
                counts: None,
            });
        }
        let ctx = ReportContext {
            input: "phantom",
            model: "painted",
            backend: "none",
        };
        (build(&ctx, &v, lung, &slices), n_ggo, n_cons)
    }

    #[test]
    fn phantom_change_matches_painted_lesion_volumes_and_alignment_finds_a_cut() {
        let vol = crate::phantom::chest_phantom(96, 96, 32, 3);
        let lung = lung_mask(&vol);
        let ml = vol.voxel_ml().unwrap();
        // Baseline: large GGO, small consolidation; follow-up: GGO shrunk, consolidation grown.
        let (base, g0, c0) = painted(&vol, &lung, 9.0, 4.0);
        let (fu, g1, c1) = painted(&vol, &lung, 5.0, 7.0);
        assert!(
            g0 > g1 && c1 > c0 && g1 > 50 && c0 > 20,
            "{g0} {g1} {c0} {c1}"
        );
        let facts = ScanFacts::default();
        let c = compare(base.clone(), &facts, fu.clone(), &facts);
        let d = c.change.lesion_ml.clone().unwrap();
        // The lesion rule may drop a few rim voxels of the ground glass (its 5×5 HU gate sees
        // the aerated lung around them): within 3 % of what was painted.
        let close = |got: f64, want: f64, painted_ml: f64| {
            assert!(
                (got - want).abs() <= 0.03 * painted_ml + 1e-9,
                "change {got:.4} mL, painted {want:.4} mL"
            );
        };
        close(d.ggo, (g1 as f64 - g0 as f64) * ml, g0 as f64 * ml);
        close(
            d.consolidation,
            (c1 as f64 - c0 as f64) * ml,
            c1 as f64 * ml,
        );
        let lb = base.lesion_ml.clone().unwrap();
        close(lb.ggo, g0 as f64 * ml, g0 as f64 * ml);
        assert_eq!(c.change.lung_ml.as_ref().map(|l| l.total), Some(0.0));
        let pts = c.change.involvement_pct_points.total.unwrap();
        let want = fu.involvement_pct.total.unwrap() - base.involvement_pct.total.unwrap();
        assert!((pts - want).abs() < 1e-9);
        assert_eq!(c.alignment.z_offset_mm, Some(0.0), "{:?}", c.alignment);
        assert!(c.interval_days.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("patient identity unknown"))
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("interval is not known"))
        );
        assert!(c.profiles.aligned && !c.profiles.baseline.is_empty());

        // The follow-up without its 6 lowest slices: the same anatomy sits 6 slices (7.5 mm)
        // nearer its first slice.
        let mut cut = fu.clone();
        cut.slices.drain(..6);
        let c = compare(base, &facts, cut, &facts);
        let off = c.alignment.z_offset_mm.unwrap();
        assert!(
            (off + 6.0 * vol.spacing_mm[2]).abs() <= vol.spacing_mm[2],
            "offset {off}"
        );
        // A cut copy holds each level at its old patient z: the viewer's mapping (see
        // `Alignment::origin_mm`) is the identity there, within a slice.
        let o = c.alignment.origin_mm.clone().unwrap();
        assert!(
            (o.followup - o.baseline - 6.0 * vol.spacing_mm[2]).abs() < 1e-6,
            "{o:?}"
        );
        assert!((-o.baseline + off + o.followup).abs() <= vol.spacing_mm[2]);
        // Dropped slices read as an unfinished (cancelled) run, and say so.
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("follow-up was analysed on 26 of its 32 slices")),
            "{:?}",
            c.warnings
        );
        assert!(
            !c.warnings
                .iter()
                .any(|w| w.contains("baseline was analysed"))
        );
    }

    #[test]
    fn dates_patients_and_spacing_are_warned_about() {
        let vol = crate::phantom::chest_phantom(64, 64, 16, 2);
        let lung = lung_mask(&vol);
        let (r, _, _) = painted(&vol, &lung, 4.0, 0.0);
        let a = ScanFacts {
            date: Some((2020, 3, 20)),
            patient_key: Some(fnv1a(b"A")),
            kernel: Some("B30f".into()),
        };
        let b = ScanFacts {
            date: Some((2020, 3, 5)),
            patient_key: Some(fnv1a(b"B")),
            kernel: Some("B70f".into()),
        };
        let mut thick = r.clone();
        thick.spacing_mm = thick.spacing_mm.map(|s| [s[0], s[1], 5.0]);
        let c = compare(r.clone(), &a, thick, &b);
        assert_eq!(c.interval_days, Some(-15));
        assert_eq!(c.same_patient, Some(false));
        for needle in [
            "different patient identifiers",
            "dated before the baseline (2020-03-20)",
            "different slice spacing",
            "different reconstruction kernels (B30f and B70f)",
        ] {
            assert!(
                c.warnings.iter().any(|w| w.contains(needle)),
                "{needle}: {:?}",
                c.warnings
            );
        }
        let c = compare(r.clone(), &b, r, &a);
        assert_eq!(
            (c.interval_days, c.dates.followup.as_deref()),
            (Some(15), Some("2020-03-20"))
        );
    }

    #[test]
    fn a_scan_without_lung_gives_no_volume_change() {
        let vol = crate::phantom::chest_phantom(64, 64, 16, 2);
        let lung = lung_mask(&vol);
        let (r, _, _) = painted(&vol, &lung, 4.0, 0.0);
        // An abdomen: nothing below −320 HU anywhere, so no lung.
        let mut abdomen = vol.clone();
        abdomen.voxels.iter_mut().for_each(|v| *v = (*v).max(40));
        let no_lung = lung_mask(&abdomen);
        let (empty, _, _) = painted(&abdomen, &no_lung, 4.0, 0.0);
        assert!(!empty.lung_found && r.lung_found);
        let f = ScanFacts::default();
        let c = compare(empty, &f, r, &f);
        assert!(c.change.lesion_ml.is_none() && c.change.lesion_ml_pct.is_none());
        assert!(c.change.lung_ml.is_none());
        assert!(c.change.lesion_ml_values.followup.is_some());
        assert!(!c.summary.iter().any(|s| s.starts_with("lesions appeared")));
        assert!(
            c.summary
                .iter()
                .any(|s| s.starts_with("no lung in one of the scans"))
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("no lung found in the baseline"))
        );
        assert!(c.alignment.z_offset_mm.is_none());
    }

    #[test]
    fn dicom_dates_and_intervals() {
        assert_eq!(parse_dicom_date("20200315"), Some((2020, 3, 15)));
        assert_eq!(parse_dicom_date(" 2020.03.15 "), Some((2020, 3, 15)));
        assert_eq!(parse_dicom_date("20200230"), None);
        assert_eq!(parse_dicom_date("20210229"), None);
        assert_eq!(parse_dicom_date("20200229"), Some((2020, 2, 29)));
        assert_eq!(parse_dicom_date("2020"), None);
        assert_eq!(parse_dicom_date("2020031x"), None);
        assert_eq!(days_from_civil((1970, 1, 1)), 0);
        assert_eq!(
            days_from_civil((2000, 3, 1)) - days_from_civil((2000, 2, 28)),
            2
        );
        assert_eq!(
            days_from_civil((2021, 1, 1)) - days_from_civil((2020, 1, 1)),
            366
        );
        assert_eq!(days_from_civil((1969, 12, 31)), -1);
    }

    #[test]
    fn plain_words_for_the_lesion_change() {
        assert_eq!(
            lesion_words(310.0, 118.0),
            "lesion volume fell by 62 %, 310 → 118 mL"
        );
        assert_eq!(
            lesion_words(100.0, 150.0),
            "lesion volume rose by 50 %, 100 → 150 mL"
        );
        assert!(lesion_words(0.0, 20.0).starts_with("lesions appeared"));
        assert!(lesion_words(0.1, 0.2).starts_with("little or no lesion"));
        assert!(lesion_words(100.0, 102.0).contains("about the same"));
    }

    #[test]
    fn fnv_tells_identifiers_apart() {
        assert_ne!(fnv1a(b"P001\0A"), fnv1a(b"P002\0A"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
