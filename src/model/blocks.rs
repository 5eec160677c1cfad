//! Building blocks shared by the encoder and the decoders.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Group count that divides `channels` (GroupNorm needs it); batch-size independent, unlike
/// BatchNorm, so a single browser slice normalises exactly as a training batch did.
fn groups_for(channels: usize, wanted: usize) -> usize {
    let mut g = wanted.min(channels).max(1);
    while !channels.is_multiple_of(g) {
        g -= 1;
    }
    g
}

/// Residual double convolution: (3×3 conv → GroupNorm → ReLU) ×2, plus a 1×1 projection of the
/// input when the width changes. The residual path eases training of a small network on little
/// data.
#[derive(Module, Debug)]
pub struct ResBlock {
    conv1: Conv2d,
    norm1: GroupNorm,
    conv2: Conv2d,
    norm2: GroupNorm,
    skip: Option<Conv2d>,
}

impl ResBlock {
    pub fn new(c_in: usize, c_out: usize, groups: usize, device: &Device) -> Self {
        let conv = |a, b| {
            Conv2dConfig::new([a, b], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        let g = groups_for(c_out, groups);
        Self {
            conv1: conv(c_in, c_out),
            norm1: GroupNormConfig::new(g, c_out).init(device),
            conv2: conv(c_out, c_out),
            norm2: GroupNormConfig::new(g, c_out).init(device),
            skip: (c_in != c_out).then(|| {
                Conv2dConfig::new([c_in, c_out], [1, 1])
                    .with_bias(false)
                    .init(device)
            }),
        }
    }

    /// # Shapes
    /// - input: `[N, c_in, H, W]`
    /// - output: `[N, c_out, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.skip {
            Some(skip) => skip.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(self.norm1.forward(self.conv1.forward(x)));
        let y = self.norm2.forward(self.conv2.forward(y));
        relu(y + identity)
    }
}

/// 2× learned upsampling (2×2 transposed convolution, stride 2).
#[derive(Module, Debug)]
pub struct Up {
    conv: ConvTranspose2d,
}

impl Up {
    pub fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Self {
            conv: ConvTranspose2dConfig::new([c_in, c_out], [2, 2])
                .with_stride([2, 2])
                .init(device),
        }
    }

    /// # Shapes
    /// - input: `[N, c_in, H, W]`
    /// - output: `[N, c_out, 2H, 2W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::groups_for;

    #[test]
    fn group_count_divides_channels() {
        assert_eq!(groups_for(16, 8), 8);
        assert_eq!(groups_for(12, 8), 6);
        assert_eq!(groups_for(3, 8), 3);
        assert_eq!(groups_for(7, 4), 1);
    }
}
