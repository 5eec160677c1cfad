//! The multi-task network of Amyar et al. (2020), made small for the browser.
//!
//! ```text
//!            ┌──────────── skip connections ────────────┐
//! image ─► encoder (5 levels: w,2w,4w,8w,16w) ─► bottleneck ─► segmentation decoder ─► 3 logits/pixel
//!                                               ├─► reconstruction decoder (no skips) ─► 1 channel
//!                                               └─► avg+max pool ─► MLP ─► class logits
//! ```
//!
//! The encoder is either the v1 residual U-Net encoder trained from scratch
//! ([`EncoderKind::Unet`]) or the ImageNet-pretrained EfficientNet-lite0
//! ([`EncoderKind::EffnetLite0`], [`effnet`]), whose five feature maps (strides 2…32) and the
//! image itself are the decoder's skips; the three heads are the same.

mod blocks;
pub mod effnet;

use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

pub use blocks::{ResBlock, Up};

/// Segmentation classes, in logit order.
pub const SEG_CLASSES: [&str; 3] = ["background", "ground-glass opacity", "consolidation"];
/// Classification classes, in logit order.
pub const CLASS_NAMES: [&str; 2] = ["COVID-19", "non-COVID"];
/// Index of COVID-19 among the class logits.
pub const COVID_CLASS: usize = 0;

/// Which shared encoder the network has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// Residual double-convolution levels of `base_width · 2^k` channels (v1).
    Unet,
    /// EfficientNet-lite0 (ImageNet-pretrained; `base_width` and `levels` unused).
    EffnetLite0,
}

/// Hyper-parameters of the network, saved as `config.json` next to the weights.
#[derive(Config, Debug, PartialEq)]
pub struct MultiTaskConfig {
    /// Width of the first encoder level; level k has `base_width · 2^k` channels.
    #[config(default = 16)]
    pub base_width: usize,
    /// Number of resolution levels (inputs must be multiples of `2^(levels-1)`).
    #[config(default = 5)]
    pub levels: usize,
    /// Segmentation classes: background, GGO, consolidation.
    #[config(default = 3)]
    pub seg_classes: usize,
    /// Classifier outputs (COVID-19, non-COVID).
    #[config(default = 2)]
    pub n_classes: usize,
    /// The reconstruction decoder's widths are the encoder's divided by this: it only has to
    /// carry the image through the bottleneck, and it is unused for plain inference.
    #[config(default = 2)]
    pub recon_divisor: usize,
    /// Hidden units of the classifier MLP.
    #[config(default = 128)]
    pub cls_hidden: usize,
    #[config(default = 0.3)]
    pub dropout: f64,
    /// GroupNorm groups (reduced where a width is not divisible).
    #[config(default = 8)]
    pub norm_groups: usize,
    /// The shared encoder; `None` (and configs without the field, v1's) is the U-Net encoder.
    #[config(default = "None")]
    pub encoder: Option<EncoderKind>,
}

impl MultiTaskConfig {
    /// The shared encoder.
    pub fn encoder_kind(&self) -> EncoderKind {
        self.encoder.unwrap_or(EncoderKind::Unet)
    }

    /// Channel count of encoder level `k`.
    pub fn width(&self, k: usize) -> usize {
        self.base_width << k
    }

    /// Resolution levels of the decoders: level k is at stride 2^k, the last is the bottleneck.
    pub fn depth(&self) -> usize {
        match self.encoder_kind() {
            EncoderKind::Unet => self.levels,
            EncoderKind::EffnetLite0 => effnet::SKIP_WIDTHS.len() + 1,
        }
    }

    /// Width of the segmentation decoder at level `k` (`k < depth - 1`) and of the bottleneck
    /// at `depth - 1`.
    pub fn decoder_width(&self, k: usize) -> usize {
        match self.encoder_kind() {
            EncoderKind::Unet => self.width(k),
            // Full resolution has no encoder features: as wide as stride 2.
            EncoderKind::EffnetLite0 => effnet::SKIP_WIDTHS[k.max(1) - 1],
        }
    }

    /// Channels of the skip joined at decoder level `k`: the encoder's level k, or for the
    /// EfficientNet encoder the features at stride 2^k (the image itself at level 0).
    pub fn skip_width(&self, k: usize) -> usize {
        match self.encoder_kind() {
            EncoderKind::Unet => self.width(k),
            EncoderKind::EffnetLite0 if k == 0 => 1,
            EncoderKind::EffnetLite0 => effnet::SKIP_WIDTHS[k - 1],
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.base_width == 0 || self.levels < 2 || self.levels > 7 {
            return Err(format!(
                "base_width must be > 0 and levels in 2..=7 (got {} and {})",
                self.base_width, self.levels
            ));
        }
        if self.seg_classes < 2 || self.n_classes < 2 || self.recon_divisor == 0 {
            return Err("seg_classes and n_classes must be >= 2, recon_divisor >= 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// The side every input must be a multiple of.
    pub fn size_multiple(&self) -> usize {
        1 << (self.depth() - 1)
    }

    /// Width of the reconstruction decoder at level `k`.
    fn recon_width(&self, k: usize) -> usize {
        (self.decoder_width(k) / self.recon_divisor).max(4)
    }

    pub fn init(&self, device: &Device) -> MultiTaskModel {
        let l = self.depth();
        let w = |k| self.decoder_width(k);
        let rw = |k| self.recon_width(k);
        let g = self.norm_groups;
        let (encoder, effnet) = match self.encoder_kind() {
            EncoderKind::Unet => (
                (0..l)
                    .map(|k| ResBlock::new(if k == 0 { 1 } else { w(k - 1) }, w(k), g, device))
                    .collect(),
                None,
            ),
            EncoderKind::EffnetLite0 => (Vec::new(), Some(effnet::EffNetEncoder::new(device))),
        };
        let seg_up = (0..l - 1)
            .map(|k| Up::new(w(k + 1), w(k), device))
            .collect();
        let seg_blocks = (0..l - 1)
            .map(|k| ResBlock::new(w(k) + self.skip_width(k), w(k), g, device))
            .collect();
        let seg_out =
            burn::nn::conv::Conv2dConfig::new([w(0), self.seg_classes], [1, 1]).init(device);
        let rec_up = (0..l - 1)
            .map(|k| Up::new(if k == l - 2 { w(l - 1) } else { rw(k + 1) }, rw(k), device))
            .collect();
        let rec_blocks = (0..l - 1)
            .map(|k| ResBlock::new(rw(k), rw(k), g, device))
            .collect();
        let rec_out = burn::nn::conv::Conv2dConfig::new([rw(0), 1], [1, 1]).init(device);
        let bottleneck = w(l - 1);
        MultiTaskModel {
            encoder,
            effnet,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            seg_up,
            seg_blocks,
            seg_out,
            rec_up,
            rec_blocks,
            rec_out,
            cls_hidden: LinearConfig::new(2 * bottleneck, self.cls_hidden).init(device),
            cls_dropout: DropoutConfig::new(self.dropout).init(),
            cls_out: LinearConfig::new(self.cls_hidden, self.n_classes).init(device),
        }
    }
}

/// Shared encoder + three heads.
#[derive(Module, Debug)]
pub struct MultiTaskModel {
    /// The v1 encoder's levels (empty with the EfficientNet encoder).
    encoder: Vec<ResBlock>,
    effnet: Option<effnet::EffNetEncoder>,
    pool: MaxPool2d,
    /// `seg_up[k]` brings level k+1 up to level k; `seg_blocks[k]` fuses it with the skip.
    seg_up: Vec<Up>,
    seg_blocks: Vec<ResBlock>,
    seg_out: burn::nn::conv::Conv2d,
    rec_up: Vec<Up>,
    rec_blocks: Vec<ResBlock>,
    rec_out: burn::nn::conv::Conv2d,
    cls_hidden: Linear,
    cls_dropout: Dropout,
    cls_out: Linear,
}

/// Raw outputs of one forward pass.
#[derive(Debug, Clone)]
pub struct MultiTaskOutput {
    /// `[N, seg_classes, H, W]` segmentation logits.
    pub seg_logits: Tensor<4>,
    /// `[N, n_classes]` classification logits.
    pub cls_logits: Tensor<2>,
    /// `[N, 1, H, W]` reconstruction in [0, 1], when asked for.
    pub recon: Option<Tensor<4>>,
}

impl MultiTaskModel {
    /// Replace the EfficientNet encoder's weights with the pretrained ones from the package's
    /// `.pth` ([`effnet::EffNetEncoder::from_pth`]); an error for a U-Net-encoder model.
    #[cfg(feature = "train")]
    pub fn with_pretrained_encoder(
        mut self,
        pth: &std::path::Path,
        device: &Device,
    ) -> crate::error::Result<Self> {
        if self.effnet.is_none() {
            return Err(crate::error::Error::InvalidArgument(
                "pretrained weights exist only for the effnet-lite0 encoder".into(),
            ));
        }
        self.effnet = Some(effnet::EffNetEncoder::from_pth(pth, device)?);
        Ok(self)
    }

    /// Take the shared encoder's gradients out of `grads` (training with a separate encoder
    /// learning rate); what remains belongs to the heads and decoders.
    #[cfg(feature = "train")]
    pub fn encoder_grads(
        &self,
        grads: &mut burn::tensor::Gradients,
    ) -> burn::optim::GradientsParams {
        match &self.effnet {
            Some(e) => burn::optim::GradientsParams::from_module(grads, e),
            None => burn::optim::GradientsParams::from_module(grads, &self.encoder),
        }
    }

    /// All three heads.
    ///
    /// # Shapes
    /// - input: `[N, 1, H, W]`, values in [0, 1], H and W multiples of `2^(levels-1)`
    pub fn forward(&self, x: Tensor<4>) -> MultiTaskOutput {
        self.forward_with(x, true)
    }

    /// Like [`forward`](Self::forward); `with_recon = false` skips the reconstruction decoder.
    pub fn forward_with(&self, x: Tensor<4>, with_recon: bool) -> MultiTaskOutput {
        // Encoder, keeping each level's features for the skips: skips[k] is at stride 2^k.
        let mut skips = Vec::with_capacity(self.encoder.len().max(6));
        if let Some(effnet) = &self.effnet {
            skips.push(x.clone()); // [N, 1, H, W]
            skips.extend(effnet.forward(x)); // [N, 16|24|40|112|320, H/2^k, W/2^k]
        } else {
            let mut h = x;
            for (k, block) in self.encoder.iter().enumerate() {
                if k > 0 {
                    h = self.pool.forward(h); // [N, C, H/2^k, W/2^k]
                }
                h = block.forward(h); // [N, w·2^k, H/2^k, W/2^k]
                skips.push(h.clone());
            }
        }
        let bottleneck = skips.pop().expect("an encoder has levels"); // [N, C_L, H/2^(L-1), W/2^(L-1)]

        // Segmentation decoder: up, concatenate the skip, fuse.
        let mut s = bottleneck.clone();
        for k in (0..self.seg_up.len()).rev() {
            let up = self.seg_up[k].forward(s); // [N, w·2^k, H/2^k, W/2^k]
            s = self.seg_blocks[k].forward(Tensor::cat(vec![up, skips[k].clone()], 1));
        }
        let seg_logits = self.seg_out.forward(s); // [N, 3, H, W]

        // Reconstruction decoder: no skips, so the bottleneck alone must carry the image.
        let recon = with_recon.then(|| {
            let mut r = bottleneck.clone();
            for k in (0..self.rec_up.len()).rev() {
                r = self.rec_blocks[k].forward(self.rec_up[k].forward(r));
            }
            sigmoid(self.rec_out.forward(r)) // [N, 1, H, W]
        });

        // Classifier on global average + max pooled bottleneck features.
        let [n, c, _, _] = bottleneck.dims();
        let avg = bottleneck.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        let max = bottleneck.max_dim(3).max_dim(2).reshape([n, c]);
        let feat = Tensor::cat(vec![avg, max], 1); // [N, 2C]
        let hidden = self
            .cls_dropout
            .forward(relu(self.cls_hidden.forward(feat)));
        let cls_logits = self.cls_out.forward(hidden); // [N, n_classes]

        MultiTaskOutput {
            seg_logits,
            cls_logits,
            recon,
        }
    }
}

/// Forward FLOPs (multiply-adds × 2) per slice of `size`×`size`, counting convolutions and
/// linear layers; `with_recon` includes the reconstruction decoder.
pub fn flops_per_slice(cfg: &MultiTaskConfig, size: usize, with_recon: bool) -> f64 {
    let conv = |hw: f64, cin: usize, cout: usize, k: usize| 2.0 * hw * (cin * cout * k * k) as f64;
    let res = |hw: f64, cin: usize, cout: usize| {
        conv(hw, cin, cout, 3)
            + conv(hw, cout, cout, 3)
            + if cin != cout {
                conv(hw, cin, cout, 1)
            } else {
                0.0
            }
    };
    let l = cfg.depth();
    let hw = |k: usize| ((size >> k) * (size >> k)) as f64;
    let w = |k| cfg.decoder_width(k);
    let rw = |k| cfg.recon_width(k);
    let mut f = 0.0;
    match cfg.encoder_kind() {
        EncoderKind::Unet => {
            for k in 0..l {
                f += res(hw(k), if k == 0 { 1 } else { w(k - 1) }, w(k));
            }
        }
        EncoderKind::EffnetLite0 => {
            f += conv(hw(1), 1, effnet::STEM, 3);
            let mut level = 1;
            for b in effnet::lite0_blocks() {
                if b.expand != 1 {
                    f += conv(hw(level), b.c_in, b.hidden(), 1);
                }
                if b.stride == 2 {
                    level += 1;
                }
                f += 2.0 * hw(level) * (b.hidden() * b.kernel * b.kernel) as f64; // depthwise
                f += conv(hw(level), b.hidden(), b.c_out, 1);
            }
        }
    }
    for k in 0..l - 1 {
        // Transposed 2×2 stride 2: each input pixel × cin × cout × 4.
        f += 2.0 * hw(k + 1) * (w(k + 1) * w(k) * 4) as f64;
        f += res(hw(k), w(k) + cfg.skip_width(k), w(k));
    }
    f += conv(hw(0), w(0), cfg.seg_classes, 1);
    if with_recon {
        for k in 0..l - 1 {
            let cin = if k == l - 2 { w(l - 1) } else { rw(k + 1) };
            f += 2.0 * hw(k + 1) * (cin * rw(k) * 4) as f64;
            f += res(hw(k), rw(k), rw(k));
        }
        f += conv(hw(0), rw(0), 1, 1);
    }
    f += 2.0 * (2 * w(l - 1) * cfg.cls_hidden + cfg.cls_hidden * cfg.n_classes) as f64;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_configs_without_an_encoder_field_keep_the_unet_encoder() {
        let json = r#"{"base_width": 12, "levels": 5, "seg_classes": 3, "n_classes": 2,
            "recon_divisor": 2, "cls_hidden": 128, "dropout": 0.3, "norm_groups": 8}"#;
        let cfg = MultiTaskConfig::load_binary(json.as_bytes()).expect("v1 config");
        assert_eq!(cfg.encoder_kind(), EncoderKind::Unet);
        assert_eq!(cfg.size_multiple(), 16);
        let cfg = cfg.with_encoder(Some(EncoderKind::EffnetLite0));
        let round =
            MultiTaskConfig::load_binary(serde_json::to_string(&cfg).expect("json").as_bytes())
                .expect("parse");
        assert_eq!(round.encoder_kind(), EncoderKind::EffnetLite0);
        assert!(
            serde_json::to_string(&cfg)
                .expect("json")
                .contains("\"effnet-lite0\"")
        );
    }

    /// The EfficientNet encoder feeds the same three heads: full-resolution segmentation and
    /// reconstruction, one class vector per slice; and the whole model fits the 8 MB of f16
    /// weights the page may download.
    #[test]
    fn effnet_model_gives_the_three_outputs_at_full_resolution() {
        let device = Device::flex();
        let cfg = MultiTaskConfig::new().with_encoder(Some(EncoderKind::EffnetLite0));
        assert_eq!(cfg.size_multiple(), 32);
        let model = cfg.init(&device);
        let params = model.num_params();
        assert!(
            params * 2 <= 8 << 20,
            "{params} parameters do not fit 8 MB as f16"
        );
        eprintln!("effnet-lite0 multi-task model: {params} parameters");
        let out = model.forward(Tensor::zeros([2, 1, 64, 64], &device));
        assert_eq!(out.seg_logits.dims(), [2, 3, 64, 64]);
        assert_eq!(out.cls_logits.dims(), [2, 2]);
        assert_eq!(out.recon.map(|r| r.dims()), Some([2, 1, 64, 64]));
        assert!(flops_per_slice(&cfg, 256, false) > 1e8);
    }

    /// `encoder_grads` splits the gradients into the shared encoder's and the rest, so that a
    /// step at encoder scale 0 leaves the encoder exactly as it was while the heads move.
    #[cfg(feature = "train")]
    #[test]
    fn encoder_gradients_split_for_a_separate_learning_rate() {
        use burn::optim::{AdamConfig, GradientsParams};
        let device = Device::flex().autodiff();
        let cfg = MultiTaskConfig::new().with_base_width(4).with_levels(3);
        let model = cfg.init(&device);
        let x = Tensor::<4>::random(
            [2, 1, 16, 16],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let out = model.forward(x);
        let loss = out.seg_logits.powf_scalar(2.0).mean()
            + out.cls_logits.sum()
            + out.recon.expect("recon").mean();
        let mut grads = loss.backward();
        let enc = model.encoder_grads(&mut grads);
        let rest = GradientsParams::from_grads(grads, &model);
        let n_enc = model.encoder.num_params();
        assert!(n_enc > 0 && !enc.is_empty() && !rest.is_empty());
        let enc_before: Vec<f32> = flat(&model.encoder[0]);
        let head_before: Vec<f32> = flat(&model.cls_out);
        let mut optim = AdamConfig::new().init();
        let model = optim.step(0.0, model, enc);
        let model = optim.step(1e-2, model, rest);
        assert_eq!(
            flat(&model.encoder[0]),
            enc_before,
            "the encoder moved at scale 0"
        );
        assert_ne!(
            flat(&model.cls_out),
            head_before,
            "the classifier did not move"
        );
    }

    #[cfg(feature = "train")]
    fn flat<M: burn::module::Module>(m: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let v = param.val().into_data().convert::<f32>();
                self.0.extend(v.iter::<f32>());
            }
        }
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0
    }
}
