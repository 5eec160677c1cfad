//! Weights round-trip through bytes, and bad weights or configs are errors, never panics.

use burn::prelude::*;
use ctscreen::inference::predict;
use ctscreen::model::MultiTaskConfig;
use ctscreen::weights::{self, ShippedConfig, config_from_bytes, model_from_bytes, to_bytes};

fn tiny() -> MultiTaskConfig {
    MultiTaskConfig::new()
        .with_base_width(4)
        .with_levels(3)
        .with_cls_hidden(8)
}

fn input(size: usize) -> Vec<f32> {
    (0..size * size)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect()
}

#[test]
fn f16_bytes_reload_to_nearly_the_same_outputs() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let bytes = to_bytes(&model).unwrap();
    let reloaded = model_from_bytes(&tiny(), bytes, &device, "mem").unwrap();
    let x = input(32);
    let a = predict(&model, &[x.as_slice()], 32, true, &device).unwrap();
    let b = predict(&reloaded, &[x.as_slice()], 32, true, &device).unwrap();
    for (p, q) in a[0].seg_probs.iter().zip(&b[0].seg_probs) {
        assert!(
            (p - q).abs() < 2e-2,
            "f16 storage changes probabilities by < 0.02: {p} vs {q}"
        );
    }
    assert!((a[0].p_covid() - b[0].p_covid()).abs() < 2e-2);
}

#[test]
fn truncated_and_garbage_weights_are_errors() {
    let device = Device::flex();
    let bytes = to_bytes(&tiny().init(&device)).unwrap();
    for bad in [
        bytes[..bytes.len() / 2].to_vec(),
        b"not a burnpack".to_vec(),
        Vec::new(),
    ] {
        let err = model_from_bytes(&tiny(), bad, &device, "bad.bpk").unwrap_err();
        assert!(err.to_string().contains("bad.bpk"), "{err}");
    }
}

#[test]
fn weights_that_do_not_fit_the_config_are_errors() {
    let device = Device::flex();
    let bytes = to_bytes(&tiny().init(&device)).unwrap();
    let wider = tiny().with_base_width(8);
    let err = model_from_bytes(&wider, bytes, &device, "w.bpk").unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
}

#[test]
fn config_json_round_trips_and_bad_json_is_an_error() {
    let cfg = ShippedConfig::new("t".into(), tiny()).with_ood_threshold(Some(0.01));
    let dir = std::env::temp_dir().join(format!("ctscreen-w-{}", std::process::id()));
    let device = Device::flex();
    weights::save_dir(&dir, &cfg, &tiny().init(&device)).unwrap();
    let loaded = weights::load_dir(&dir, &device).unwrap();
    assert_eq!(loaded.config, cfg);
    assert!(config_from_bytes(b"{not json", "c.json").is_err());
    assert!(config_from_bytes(br#"{"version":"x","model":{"base_width":0}}"#, "c.json").is_err());
    std::fs::remove_dir_all(&dir).ok();
}
