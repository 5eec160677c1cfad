//! `ctscreen calibrate-ood`: the out-of-distribution threshold from validation images.

use serde_json::json;

use ctscreen::data::{self, Split};
use ctscreen::device::Backend;
use ctscreen::error::{Error, Result};
use ctscreen::evaluate;
use ctscreen::weights;

use crate::common::load_model;

pub fn calibrate_ood(
    model_dir: &std::path::Path,
    root: &std::path::Path,
    percentile: f64,
    backend: Backend,
) -> Result<()> {
    let device = backend.device()?;
    let mut loaded = load_model(model_dir, &device)?;
    let size = loaded.config.input_size;
    let seg = data::load_seg_dir(&root.join("medseg-covid/train"), Split::Val)?;
    let cls = data::load_cls_dir(&root.join("ucsd-covid-ct"), Split::Val)?;
    let images = seg
        .iter()
        .map(|i| &i.image)
        .chain(cls.iter().map(|i| &i.image));
    let errors = evaluate::recon_errors(&loaded.model, images, size, 8, &device)?;
    let threshold = evaluate::quantile(&errors, percentile / 100.0);
    loaded.config.ood_threshold = Some(threshold as f32);
    let path = model_dir.join(weights::CONFIG_FILE);
    burn::config::Config::save(&loaded.config, &path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    println!(
        "{}",
        json!({"n": errors.len(), "percentile": percentile, "ood_threshold": threshold,
               "median": evaluate::quantile(&errors, 0.5), "max": evaluate::quantile(&errors, 1.0)})
    );
    Ok(())
}
