//! The patient-level call, grounded in the lesions, in two stages (as COVID-FACT, Heidarian et
//! al. 2021, does): is there pneumonia (the segmentation on the lung mask: how much of the lung,
//! on how many slices), and if so, is its pattern typical of COVID-19 or is another cause more
//! likely (the lesions' pattern, [`crate::pattern`]).
//!
//! Why not the slice classifier: on scanners and hospitals it never saw, the segmentation
//! transferred (slice AUC 0.95 on an unseen labelled COVID-19 series) while the classifier did
//! not (AUC 0.63 on unseen PACS slices; a normal whole-body scan got p 0.73). Its output stays
//! in the report as `p_covid_classifier`, shown as such, and takes no part in the call.
//!
//! Stage 2 has no fitted parameters: each pattern feature moves the odds by the likelihood ratio
//! that published series report for COVID-19 against other pneumonia (features taken as
//! independent, prior odds 1:1). With two pneumonia patients in the shared data, fitting would
//! only memorise them.

use serde::Serialize;

use crate::pattern::PatternFeatures;

/// Stage 1: a lesion share of the lung at which pneumonia is as likely as not, %. Normal lungs
/// in the shared real series get 0.1–0.4 % (vessels, partial volume); the COVID-19 series
/// several %.
pub const PNEUMONIA_MIDPOINT_PCT: f64 = 1.0;
/// How fast p(pneumonia) rises with the lesion share: per unit of ln(%).
pub const PNEUMONIA_SLOPE: f64 = 2.5;
/// Stage 1 also needs infected slices: at most this share of the lung slices infected is no
/// pneumonia (COVID-FACT: "≤ 3 % of lung slices infected → not COVID-19").
pub const MIN_INFECTED_SLICE_SHARE: f64 = 0.03;
/// Lesions in the outer third of the lung at or above this share: a peripheral predominance.
pub const PERIPHERAL_PREDOMINANT: f64 = 2.0 / 3.0;
/// Above this lesion share of the lung (%), the distribution is diffuse: a peripheral or central
/// predominance cannot be told (Bai et al. grade "diffuse" apart), so that feature is not used.
pub const DIFFUSE_PCT: f64 = 30.0;
/// Ground glass at or above this share of the lesion volume: ground-glass predominant.
pub const GGO_PREDOMINANT: f64 = 0.5;
/// Zones involved (of six) for "many lobes" (the published figure is ≥ 4 of 5 lobes).
pub const MANY_ZONES: usize = 4;
/// A volume's lung is cut by the end of the scan when a first or last slice holds at least this
/// share of the largest slice's lung. Measured on the shared series: whole chests hold 0–3 % of
/// it on their end slices; the upper-chest-only LungFCP series 100 %, the lung-cropped
/// TotalSegmentator volume 73 %.
pub const CUT_LUNG_SHARE: f64 = 0.5;

/// One pattern feature's likelihood ratios: (present, absent), COVID-19 against other pneumonia.
struct Evidence {
    name: &'static str,
    lr_present: f64,
    lr_absent: f64,
    source: &'static str,
}

/// Bilateral: 78 % of COVID-19 vs 56 % of community-acquired pneumonia (COVID-CT-MD lobe labels).
const BILATERAL: Evidence = Evidence {
    name: "bilateral",
    lr_present: 0.78 / 0.56,
    lr_absent: 0.22 / 0.44,
    source: "COVID-CT-MD: bilateral 78 % vs 56 %",
};
/// Peripheral: 80 % vs 57 % (Bai et al., Radiology 2020).
const PERIPHERAL: Evidence = Evidence {
    name: "peripheral",
    lr_present: 0.80 / 0.57,
    lr_absent: 0.20 / 0.43,
    source: "Bai et al. 2020: peripheral 80 % vs 57 %",
};
/// Ground-glass: 91 % vs 68 % (Bai et al.).
const GROUND_GLASS: Evidence = Evidence {
    name: "ground-glass predominant",
    lr_present: 0.91 / 0.68,
    lr_absent: 0.09 / 0.32,
    source: "Bai et al. 2020: ground glass 91 % vs 68 %",
};
/// ≥ 4 lobes: sensitivity 0.52, specificity 0.92 (COVID-CT-MD lobe labels).
const MANY_LOBES: Evidence = Evidence {
    name: "many zones",
    lr_present: 0.52 / 0.08,
    lr_absent: 0.48 / 0.92,
    source: "COVID-CT-MD: ≥ 4 lobes, sensitivity 0.52, specificity 0.92",
};

/// The three answers, and the two states without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// No lung on any analysed slice: no call.
    NoLung,
    /// The lung is only partly in the scan (cut by its end): no call.
    IncompleteLung,
    NoPneumoniaFound,
    PneumoniaCovidTypical,
    PneumoniaOtherCauseMoreLikely,
}

impl CallState {
    /// The words the report and the page show.
    pub fn describe(&self) -> &'static str {
        match self {
            CallState::NoLung => "no lung found: no call",
            CallState::IncompleteLung => "the lung is only partly in the scan: no patient call",
            CallState::NoPneumoniaFound => "no pneumonia found",
            CallState::PneumoniaCovidTypical => "pneumonia, pattern typical of COVID-19",
            CallState::PneumoniaOtherCauseMoreLikely => "pneumonia, another cause more likely",
        }
    }
}

/// The patient-level call with what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct PatientCall {
    pub state: CallState,
    /// The words for `state`.
    pub summary: &'static str,
    /// p(COVID-19) = p(pneumonia) × p(COVID-19 | pneumonia, pattern); null without a call.
    pub p_covid: Option<f64>,
    /// Stage 1.
    pub p_pneumonia: Option<f64>,
    /// Stage 2.
    pub p_covid_given_pneumonia: Option<f64>,
    /// Each pattern feature as used: name, present or absent (null: could not be told), the
    /// likelihood ratio applied and its source.
    pub evidence: Vec<EvidenceUsed>,
    pub features: PatternFeatures,
    /// How the call is made, in words.
    pub rule: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvidenceUsed {
    pub feature: &'static str,
    pub present: Option<bool>,
    pub likelihood_ratio: f64,
    pub source: &'static str,
}

/// The rule in words (report and page help).
pub const RULE: &str = "stage 1, pneumonia: from the lesion share of the lung (even odds at \
     1 %) and more than 3 % of the lung slices infected; stage 2, COVID-19 against another \
     cause: the pattern's features (bilateral, peripheral unless diffuse over 30 % of the lung, \
     ground-glass, ≥ 4 of 6 lung zones), \
     each moving even odds by the likelihood ratio published for COVID-19 against other \
     pneumonia; p(COVID-19) is the product of the two. The slice classifier takes no part.";

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Stage 1: p(pneumonia) from the lesion share of the lung (%) and the infected-slice share.
pub fn p_pneumonia(involvement_pct: f64, infected_slice_share: f64, one_slice: bool) -> f64 {
    let inv = involvement_pct.max(1e-3);
    let p = logistic(PNEUMONIA_SLOPE * (inv.ln() - PNEUMONIA_MIDPOINT_PCT.ln()));
    // A one-slice input has one slice: the slice-share rule cannot apply.
    if !one_slice && infected_slice_share <= MIN_INFECTED_SLICE_SHARE {
        p.min(0.25)
    } else {
        p
    }
}

/// Stage 2: p(COVID-19 | pneumonia) from the pattern, and the evidence used. `involvement_pct`:
/// the lesion share of the lung (diffuse disease has no peripheral predominance to judge).
pub fn p_covid_given_pneumonia(
    f: &PatternFeatures,
    involvement_pct: f64,
) -> (f64, Vec<EvidenceUsed>) {
    let mut log_odds = 0.0f64;
    let mut used = Vec::new();
    let mut apply = |e: &Evidence, present: Option<bool>| {
        let lr = match present {
            Some(true) => e.lr_present,
            Some(false) => e.lr_absent,
            None => 1.0,
        };
        log_odds += lr.ln();
        used.push(EvidenceUsed {
            feature: e.name,
            present,
            likelihood_ratio: lr,
            source: e.source,
        });
    };
    apply(&BILATERAL, f.bilateral);
    apply(
        &PERIPHERAL,
        f.peripheral_share
            .filter(|_| involvement_pct <= DIFFUSE_PCT)
            .map(|s| s >= PERIPHERAL_PREDOMINANT),
    );
    apply(&GROUND_GLASS, f.ggo_share.map(|s| s >= GGO_PREDOMINANT));
    apply(&MANY_LOBES, f.zones_involved.map(|n| n >= MANY_ZONES));
    (logistic(log_odds), used)
}

/// Whether a volume's lung is cut by the first or last slice: either end holds at least
/// [`CUT_LUNG_SHARE`] of the largest slice's lung. `lung_px` is per slice in z order.
pub fn lung_cut_by_scan_end(lung_px: &[usize]) -> bool {
    let max = lung_px.iter().copied().max().unwrap_or(0);
    if lung_px.len() < 5 || max == 0 {
        return false;
    }
    let ends = [lung_px[0], lung_px[lung_px.len() - 1]];
    ends.iter()
        .any(|&e| e as f64 >= CUT_LUNG_SHARE * max as f64)
}

/// Make the call. `lung_found`: some analysed slice shows lung; `complete`: the lung is whole
/// in the scan (always true for a one-slice input); `involvement_pct`: lesion share of the lung.
pub fn decide(
    features: PatternFeatures,
    lung_found: bool,
    complete: bool,
    involvement_pct: Option<f64>,
    one_slice: bool,
) -> PatientCall {
    let no_call = |state: CallState, features: PatternFeatures| PatientCall {
        state,
        summary: state.describe(),
        p_covid: None,
        p_pneumonia: None,
        p_covid_given_pneumonia: None,
        evidence: Vec::new(),
        features,
        rule: RULE,
    };
    let Some(inv) = involvement_pct.filter(|_| lung_found) else {
        return no_call(CallState::NoLung, features);
    };
    if !complete {
        return no_call(CallState::IncompleteLung, features);
    }
    let p1 = p_pneumonia(inv, features.infected_slice_share.unwrap_or(0.0), one_slice);
    let (p2, evidence) = p_covid_given_pneumonia(&features, inv);
    let state = if p1 < 0.5 {
        CallState::NoPneumoniaFound
    } else if p2 >= 0.5 {
        CallState::PneumoniaCovidTypical
    } else {
        CallState::PneumoniaOtherCauseMoreLikely
    };
    PatientCall {
        state,
        summary: state.describe(),
        p_covid: Some(p1 * p2),
        p_pneumonia: Some(p1),
        p_covid_given_pneumonia: Some(p2),
        evidence,
        features,
        rule: RULE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typical() -> PatternFeatures {
        PatternFeatures {
            lung_slices: 60,
            infected_slices: 30,
            infected_slice_share: Some(0.5),
            bilateral: Some(true),
            peripheral_share: Some(0.8),
            zones_involved: Some(5),
            ggo_share: Some(0.9),
            ..Default::default()
        }
    }

    #[test]
    fn little_lesion_is_no_pneumonia_and_low_p() {
        let mut f = typical();
        f.infected_slice_share = Some(0.02);
        let c = decide(f, true, true, Some(0.3), false);
        assert_eq!(c.state, CallState::NoPneumoniaFound);
        assert!(c.p_covid.is_some_and(|p| p < 0.1), "{:?}", c.p_covid);
    }

    #[test]
    fn typical_pattern_is_covid_and_atypical_is_another_cause() {
        let c = decide(typical(), true, true, Some(12.0), false);
        assert_eq!(c.state, CallState::PneumoniaCovidTypical);
        assert!(c.p_covid.is_some_and(|p| p > 0.8), "{:?}", c.p_covid);
        let f = PatternFeatures {
            infected_slice_share: Some(0.3),
            bilateral: Some(false),
            peripheral_share: Some(0.4),
            zones_involved: Some(2),
            ggo_share: Some(0.2),
            ..Default::default()
        };
        let c = decide(f, true, true, Some(12.0), false);
        assert_eq!(c.state, CallState::PneumoniaOtherCauseMoreLikely);
        assert!(c.p_covid.is_some_and(|p| p < 0.2), "{:?}", c.p_covid);
    }

    #[test]
    fn diffuse_disease_has_no_peripheral_evidence() {
        let mut f = typical();
        f.peripheral_share = Some(0.45);
        let (p_limited, e) = p_covid_given_pneumonia(&f, 10.0);
        assert_eq!(e[1].present, Some(false));
        let (p_diffuse, e) = p_covid_given_pneumonia(&f, 60.0);
        assert_eq!(e[1].present, None);
        assert!(p_diffuse > p_limited);
    }

    #[test]
    fn no_lung_or_cut_lung_gives_no_p() {
        let c = decide(typical(), false, true, None, false);
        assert_eq!((c.state, c.p_covid), (CallState::NoLung, None));
        let c = decide(typical(), true, false, Some(12.0), false);
        assert_eq!((c.state, c.p_covid), (CallState::IncompleteLung, None));
    }

    #[test]
    fn many_slices_of_lung_at_an_end_is_a_cut_lung() {
        assert!(lung_cut_by_scan_end(&[0, 10, 50, 100, 90, 60]));
        assert!(!lung_cut_by_scan_end(&[0, 10, 50, 100, 90, 30, 0]));
        assert!(!lung_cut_by_scan_end(&[5, 5]));
    }
}
