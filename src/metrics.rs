//! Evaluation metrics as pure functions over plain slices, unit-tested on hand-computed cases.

/// Pixel confusion counts of a binary prediction against a binary truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    pub fn from_masks(pred: &[bool], truth: &[bool]) -> Self {
        let mut c = Confusion::default();
        for (&p, &t) in pred.iter().zip(truth) {
            match (p, t) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn add(&mut self, o: &Confusion) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
    }

    /// Dice = 2TP / (2TP + FP + FN); 1 when both masks are empty (nothing to find, nothing found).
    pub fn dice(&self) -> f64 {
        let d = 2 * self.tp + self.fp + self.fn_;
        if d == 0 {
            1.0
        } else {
            2.0 * self.tp as f64 / d as f64
        }
    }

    /// IoU = TP / (TP + FP + FN); 1 when both masks are empty.
    pub fn iou(&self) -> f64 {
        let d = self.tp + self.fp + self.fn_;
        if d == 0 {
            1.0
        } else {
            self.tp as f64 / d as f64
        }
    }

    /// TP / (TP + FN); NaN without positives.
    pub fn sensitivity(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// TN / (TN + FP); NaN without negatives.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// F1 = 2TP / (2TP + FP + FN); NaN when there is nothing positive at all.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Area under the ROC curve of `scores` for `labels` (true = positive), computed as the
/// Mann–Whitney statistic with mid-ranks, so a tie between a positive and a negative counts ½.
/// `None` when either class is absent or lengths differ.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Mid-ranks (1-based) over runs of equal scores.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += mid;
            }
        }
        i = j + 1;
    }
    let (np, nn) = (n_pos as f64, n_neg as f64);
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

/// Classification counts at a threshold: predicted positive when `score >= threshold`.
pub fn confusion_at(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
    let pred: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
    Confusion::from_masks(&pred, labels)
}

/// Mean of finite values; NaN when there are none.
pub fn mean(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&x| x != 0).collect()
    }

    #[test]
    fn dice_and_iou_by_hand() {
        // pred 1 1 0 0, truth 1 0 1 0: TP=1 FP=1 FN=1 TN=1.
        let c = Confusion::from_masks(&b(&[1, 1, 0, 0]), &b(&[1, 0, 1, 0]));
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!((c.dice() - 0.5).abs() < 1e-12);
        assert!((c.iou() - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.sensitivity() - 0.5).abs() < 1e-12);
        assert!((c.specificity() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn empty_masks_are_perfect_and_a_miss_is_zero() {
        assert_eq!(Confusion::from_masks(&b(&[0, 0]), &b(&[0, 0])).dice(), 1.0);
        assert_eq!(Confusion::from_masks(&b(&[0, 0]), &b(&[1, 0])).dice(), 0.0);
        assert_eq!(Confusion::from_masks(&b(&[1, 0]), &b(&[0, 0])).dice(), 0.0);
    }

    #[test]
    fn auc_perfect_inverted_and_random() {
        let l = [true, true, false, false];
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &l), Some(1.0));
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &l), Some(0.0));
        // Pairs (pos, neg): (0.9,0.5)+ (0.9,0.6)+ (0.4,0.5)- (0.4,0.6)- => 0.5.
        assert_eq!(auc(&[0.9, 0.4, 0.5, 0.6], &l), Some(0.5));
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // All equal: every pair ties => 0.5.
        assert_eq!(auc(&[0.3; 4], &[true, false, true, false]), Some(0.5));
        // pos {0.8, 0.5}, neg {0.5, 0.1}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
        assert_eq!(
            auc(&[0.8, 0.5, 0.5, 0.1], &[true, true, false, false]),
            Some(0.875)
        );
    }

    #[test]
    fn auc_needs_both_classes() {
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auc(&[0.1], &[true, false]), None);
    }

    #[test]
    fn threshold_confusion_and_f1() {
        let c = confusion_at(&[0.9, 0.4, 0.6, 0.1], &[true, true, false, false], 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!((c.f1() - 0.5).abs() < 1e-12);
        assert!((c.accuracy() - 0.5).abs() < 1e-12);
    }
}
