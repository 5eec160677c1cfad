//! Shape contract of each head on a tiny configuration (CPU backend).

use burn::prelude::*;
use ctscreen::model::{MultiTaskConfig, flops_per_slice};

fn tiny() -> MultiTaskConfig {
    MultiTaskConfig::new()
        .with_base_width(4)
        .with_levels(3)
        .with_cls_hidden(8)
}

#[test]
fn every_head_has_the_documented_shape() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let x = Tensor::<4>::zeros([2, 1, 32, 48], &device);
    let out = model.forward(x);
    assert_eq!(out.seg_logits.dims(), [2, 3, 32, 48]);
    assert_eq!(out.cls_logits.dims(), [2, 2]);
    let recon = out.recon.expect("forward computes the reconstruction");
    assert_eq!(recon.dims(), [2, 1, 32, 48]);
    let r: Vec<f32> = recon
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    assert!(
        r.iter().all(|v| (0.0..=1.0).contains(v)),
        "reconstruction is a sigmoid output"
    );
}

#[test]
fn reconstruction_can_be_skipped_and_other_heads_are_unchanged() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let x = Tensor::<4>::random([1, 1, 16, 16], burn::tensor::Distribution::Default, &device);
    let with = model.forward_with(x.clone(), true);
    let without = model.forward_with(x, false);
    assert!(without.recon.is_none());
    with.cls_logits.into_data().assert_approx_eq::<f32>(
        &without.cls_logits.into_data(),
        burn::tensor::Tolerance::absolute(1e-6),
    );
}

#[test]
fn flops_grow_with_width_and_recon() {
    let c = tiny();
    assert!(flops_per_slice(&c, 64, true) > flops_per_slice(&c, 64, false));
    assert!(
        flops_per_slice(&c.clone().with_base_width(8), 64, false)
            > 3.0 * flops_per_slice(&c, 64, false)
    );
}

#[test]
fn invalid_configs_are_rejected() {
    assert!(MultiTaskConfig::new().with_levels(1).validate().is_err());
    assert!(
        MultiTaskConfig::new()
            .with_base_width(0)
            .validate()
            .is_err()
    );
    assert!(MultiTaskConfig::new().with_dropout(1.0).validate().is_err());
    assert!(MultiTaskConfig::new().validate().is_ok());
}
