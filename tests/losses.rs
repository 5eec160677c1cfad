//! Masked multi-task losses: a task contributes nothing where its label is absent.
#![cfg(feature = "train")]

use burn::prelude::*;
use burn::tensor::Distribution;
use ctscreen::training::multitask_loss;

fn scalar(t: Tensor<1>) -> f32 {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()[0]
}

struct Inputs {
    seg_logits: Tensor<4>,
    cls_logits: Tensor<2>,
    recon: Tensor<4>,
    clean: Tensor<4>,
}

fn inputs(device: &Device) -> Inputs {
    Inputs {
        seg_logits: Tensor::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), device),
        cls_logits: Tensor::random([2, 2], Distribution::Normal(0.0, 1.0), device),
        recon: Tensor::random([2, 1, 8, 8], Distribution::Default, device),
        clean: Tensor::random([2, 1, 8, 8], Distribution::Default, device),
    }
}

fn onehot(device: &Device, class: usize) -> Tensor<4> {
    let mut v = vec![0.0f32; 2 * 3 * 64];
    for n in 0..2 {
        for p in 0..64 {
            v[(n * 3 + class) * 64 + p] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(v, [2, 3, 8, 8]), device)
}

#[test]
fn unlabelled_samples_contribute_no_loss() {
    let device = Device::flex();
    let x = inputs(&device);
    let zeros1 = Tensor::<1>::zeros([2], &device);
    let weak = Tensor::<4>::zeros([2, 1, 8, 8], &device);
    let run = |seg_t: Tensor<4>, cls_t: Tensor<2>, seg_w: Tensor<1>, cls_w: Tensor<1>| {
        multitask_loss(
            x.seg_logits.clone(),
            seg_t,
            seg_w,
            weak.clone(),
            zeros1.clone(),
            x.cls_logits.clone(),
            cls_t,
            cls_w,
            Some((x.recon.clone(), x.clean.clone())),
            [1.0, 1.0, 1.0, 1.0],
        )
    };
    let cls_a = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [2, 2]),
        &device,
    );
    let cls_b = Tensor::<2>::from_data(
        TensorData::new(vec![0.0f32, 1.0, 0.0, 1.0], [2, 2]),
        &device,
    );
    // No labels at all: seg, weak and cls are exactly zero; only reconstruction remains.
    let l = run(
        onehot(&device, 0),
        cls_a.clone(),
        zeros1.clone(),
        zeros1.clone(),
    );
    assert_eq!(scalar(l.seg), 0.0);
    assert_eq!(scalar(l.weak), 0.0);
    assert_eq!(scalar(l.cls), 0.0);
    let recon = scalar(l.recon);
    assert!(recon > 0.0);
    assert!((scalar(l.total) - recon).abs() < 1e-6);
    // Changing the targets of unlabelled samples changes nothing.
    let l2 = run(
        onehot(&device, 2),
        cls_b.clone(),
        zeros1.clone(),
        zeros1.clone(),
    );
    assert_eq!(
        scalar(l2.total),
        scalar(
            run(
                onehot(&device, 0),
                cls_a.clone(),
                zeros1.clone(),
                zeros1.clone()
            )
            .total
        )
    );
    // With labels, the targets matter.
    let ones = Tensor::<1>::ones([2], &device);
    let la = scalar(run(onehot(&device, 0), cls_a, ones.clone(), ones.clone()).total);
    let lb = scalar(run(onehot(&device, 2), cls_b, ones.clone(), ones).total);
    assert!((la - lb).abs() > 1e-3);
}

#[test]
fn perfect_segmentation_has_low_loss() {
    let device = Device::flex();
    // Logits strongly favouring class 1 everywhere, target class 1: CE ≈ 0 and Dice ≈ 1.
    let mut v = vec![-10.0f32; 2 * 3 * 64];
    for n in 0..2 {
        for p in 0..64 {
            v[(n * 3 + 1) * 64 + p] = 10.0;
        }
    }
    let logits = Tensor::<4>::from_data(TensorData::new(v, [2, 3, 8, 8]), &device);
    let ones = Tensor::<1>::ones([2], &device);
    let l = multitask_loss(
        logits,
        onehot(&device, 1),
        ones.clone(),
        Tensor::zeros([2, 1, 8, 8], &device),
        Tensor::zeros([2], &device),
        Tensor::zeros([2, 2], &device),
        Tensor::zeros([2, 2], &device),
        Tensor::zeros([2], &device),
        None,
        [1.0, 1.0, 1.0, 1.0],
    );
    let seg = scalar(l.seg);
    assert!(seg < 1e-3, "{seg}");
}
