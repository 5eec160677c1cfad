//! One inference API for the CLI and the web worker: preprocessed slices in, per-class lesion
//! probability maps, class probabilities, the reconstruction and its error out.
//!
//! All outputs of a batch are packed into one tensor and read back once, because every
//! readback is a device synchronisation (and, in the browser, an async round trip).

use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::error::{Error, Result};
use crate::model::{COVID_CLASS, MultiTaskModel};
use crate::preprocess::{Interp, Letterbox};

/// Model outputs for one slice on the model grid (`size`×`size`).
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePrediction {
    pub size: usize,
    /// `[seg_classes, size, size]` softmax probabilities (background, GGO, consolidation).
    pub seg_probs: Vec<f32>,
    /// Class probabilities (COVID-19 first).
    pub class_probs: Vec<f32>,
    /// `[size, size]` reconstruction in [0, 1], when requested.
    pub recon: Option<Vec<f32>>,
    /// Mean squared reconstruction error against the input, when requested.
    pub recon_mse: Option<f32>,
}

impl SlicePrediction {
    /// p(COVID-19).
    pub fn p_covid(&self) -> f32 {
        self.class_probs
            .get(COVID_CLASS)
            .copied()
            .unwrap_or(f32::NAN)
    }

    /// `[size, size]` probability of any lesion (1 − p(background)).
    pub fn lesion_prob(&self) -> Vec<f32> {
        let n = self.size * self.size;
        self.seg_probs[..n].iter().map(|&bg| 1.0 - bg).collect()
    }

    /// `[size, size]` per-pixel class of the argmax (0 background, 1 GGO, 2 consolidation),
    /// with "lesion" decided as lesion probability ≥ 0.5 and its type as the likelier one.
    pub fn class_map(&self) -> Vec<u8> {
        let n = self.size * self.size;
        let k = self.seg_probs.len() / n;
        (0..n)
            .map(|i| {
                if 1.0 - self.seg_probs[i] < 0.5 {
                    return 0;
                }
                let mut best = 1;
                for c in 2..k {
                    if self.seg_probs[c * n + i] > self.seg_probs[best * n + i] {
                        best = c;
                    }
                }
                best as u8
            })
            .collect()
    }

    /// [`class_map`](Self::class_map) on the original image's grid (`height×width`), through the
    /// letterbox that made the model input. What the page draws and the reports count.
    pub fn classes_on(&self, lb: &Letterbox) -> Vec<u8> {
        let map: Vec<f32> = self.class_map().iter().map(|&v| v as f32).collect();
        lb.backward(&map, Interp::Nearest)
            .iter()
            .map(|&v| v as u8)
            .collect()
    }
}

/// How one batch's outputs are packed: `[N, F]` rows of `F = seg_classes·size² + n_classes
/// (+ 1 + size² with the reconstruction)` values: segmentation probabilities, class
/// probabilities, then the reconstruction error and the reconstruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedLayout {
    pub n: usize,
    pub size: usize,
    pub seg_classes: usize,
    pub n_classes: usize,
    pub with_recon: bool,
}

/// Device-side outputs of one batch, packed as `[N, F]` rows (see [`PackedLayout`]).
pub struct PackedOutputs {
    packed: Tensor<2>,
    pub layout: PackedLayout,
}

/// Run the model on a batch already on the device.
///
/// # Shapes
/// - input: `[N, 1, S, S]`, values in [0, 1]
pub fn run(model: &MultiTaskModel, input: Tensor<4>, with_recon: bool) -> PackedOutputs {
    let [n, _, size, _] = input.dims();
    let out = model.forward_with(input.clone(), with_recon);
    let seg_classes = out.seg_logits.dims()[1];
    let n_classes = out.cls_logits.dims()[1];
    let seg = softmax(out.seg_logits, 1).reshape([n, seg_classes * size * size]);
    let cls = softmax(out.cls_logits, 1); // [N, K]
    let mut parts = vec![seg, cls];
    if let Some(recon) = out.recon {
        let err = (recon.clone() - input)
            .powi_scalar(2)
            .reshape([n, size * size]);
        parts.push(err.mean_dim(1)); // [N, 1]
        parts.push(recon.reshape([n, size * size]));
    }
    PackedOutputs {
        packed: Tensor::cat(parts, 1),
        layout: PackedLayout {
            n,
            size,
            seg_classes,
            n_classes,
            with_recon,
        },
    }
}

impl PackedOutputs {
    /// Synchronous readback (native).
    pub fn read(self) -> Result<Vec<SlicePrediction>> {
        let data = self
            .packed
            .try_into_data()
            .map_err(|e| Error::Readback(format!("{e:?}")))?;
        self.layout.unpack(flat_f32(data)?)
    }

    /// Asynchronous readback (required on WebGPU) of the packed rows as they are: the browser
    /// unpacks them with [`PackedLayout::unpack`], in the worker that owns the volume when a
    /// model worker ran them.
    pub async fn read_flat_async(self) -> Result<Vec<f32>> {
        let data = self
            .packed
            .into_data_async()
            .await
            .map_err(|e| Error::Readback(format!("{e:?}")))?;
        flat_f32(data)
    }
}

fn flat_f32(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Readback(format!("{e:?}")))
}

impl PackedLayout {
    /// Split packed rows into one prediction per slice; refuses a length that does not fit.
    pub fn unpack(&self, flat: Vec<f32>) -> Result<Vec<SlicePrediction>> {
        let hw = self.size * self.size;
        let seg_len = self.seg_classes * hw;
        let row = seg_len + self.n_classes + if self.with_recon { 1 + hw } else { 0 };
        if flat.len() != row * self.n {
            return Err(Error::Readback(format!(
                "read back {} values for {} slices, expected {row} each",
                flat.len(),
                self.n
            )));
        }
        Ok(flat
            .chunks_exact(row)
            .map(|r| {
                let (seg, rest) = r.split_at(seg_len);
                let (cls, rest) = rest.split_at(self.n_classes);
                let (recon_mse, recon) = if self.with_recon {
                    (Some(rest[0]), Some(rest[1..1 + hw].to_vec()))
                } else {
                    (None, None)
                };
                SlicePrediction {
                    size: self.size,
                    seg_probs: seg.to_vec(),
                    class_probs: cls.to_vec(),
                    recon,
                    recon_mse,
                }
            })
            .collect())
    }
}

/// Upload `slices` (each `size·size` values in [0, 1]) as one `[N, 1, size, size]` batch.
pub fn batch_tensor(slices: &[&[f32]], size: usize, device: &Device) -> Result<Tensor<4>> {
    let hw = size * size;
    if let Some(bad) = slices.iter().find(|s| s.len() != hw) {
        return Err(Error::InvalidArgument(format!(
            "slice has {} values, expected {size}x{size}",
            bad.len()
        )));
    }
    let mut flat = Vec::with_capacity(slices.len() * hw);
    for s in slices {
        flat.extend_from_slice(s);
    }
    Ok(Tensor::from_data(
        TensorData::new(flat, [slices.len(), 1, size, size]),
        device,
    ))
}

/// Convenience for native callers: upload, run, read back.
pub fn predict(
    model: &MultiTaskModel,
    slices: &[&[f32]],
    size: usize,
    with_recon: bool,
    device: &Device,
) -> Result<Vec<SlicePrediction>> {
    if slices.is_empty() {
        return Ok(Vec::new());
    }
    run(model, batch_tensor(slices, size, device)?, with_recon).read()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(n: usize) -> PackedLayout {
        PackedLayout {
            n,
            size: 2,
            seg_classes: 3,
            n_classes: 2,
            with_recon: true,
        }
    }

    #[test]
    fn unpack_splits_rows_in_order() {
        // Row: 12 seg, 2 cls, 1 mse, 4 recon = 19 values; two rows tagged by their offset.
        let flat: Vec<f32> = (0..38).map(|i| i as f32).collect();
        let preds = layout(2).unpack(flat).expect("fits");
        assert_eq!(preds.len(), 2);
        assert_eq!(preds[1].seg_probs[0], 19.0);
        assert_eq!(preds[1].class_probs, vec![31.0, 32.0]);
        assert_eq!(preds[1].recon_mse, Some(33.0));
        assert_eq!(
            preds[1].recon.as_deref(),
            Some(&[34.0, 35.0, 36.0, 37.0][..])
        );
    }

    #[test]
    fn unpack_refuses_a_length_that_does_not_fit() {
        let err = layout(2)
            .unpack(vec![0.0; 37])
            .expect_err("one value short");
        assert!(err.to_string().contains("37 values for 2 slices"), "{err}");
    }
}
