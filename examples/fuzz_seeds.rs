//! Write the fuzzers' seed inputs, all synthetic (no real scan ever enters the fuzz corpus, so
//! no crash input derived from one can be committed): a small DICOM series slice, a NIfTI
//! (.nii and .nii.gz) of the phantom, a PNG and a JPEG of one of its slices, and JPEG-LS streams
//! of it (lossless, near-lossless, and with a fill byte before EOI as dcmtk writes), each behind
//! the two size bytes the `jpegls` target reads.
//!
//! `cargo run --example fuzz_seeds -- fuzz/corpus`

use std::path::PathBuf;

use ctscreen::phantom::chest_phantom;
use ctscreen::preprocess::slice_to_grey;
use ctscreen::volume::{dicom, nii};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let vol = chest_phantom(24, 20, 3, 9);
    let d = out.join("dicom");
    std::fs::create_dir_all(&d)?;
    for (name, bytes) in dicom::write_series(&vol, "1.2.826.0.1.3680043.9.7434.7")? {
        std::fs::write(d.join(name), bytes)?;
    }
    let n = out.join("nifti");
    std::fs::create_dir_all(&n)?;
    std::fs::write(n.join("phantom.nii"), nii::write_hu_nii(&vol, false)?)?;
    std::fs::write(n.join("phantom.nii.gz"), nii::write_hu_nii(&vol, true)?)?;
    let i = out.join("image");
    std::fs::create_dir_all(&i)?;
    let g = slice_to_grey(&vol, 1);
    let img = image::GrayImage::from_raw(g.width as u32, g.height as u32, g.pixels)
        .ok_or("bad image size")?;
    img.save(i.join("slice.png"))?;
    img.save(i.join("slice.jpg"))?;
    let j = out.join("jpegls");
    std::fs::create_dir_all(&j)?;
    let (w, h) = (vol.dims[0], vol.dims[1]);
    // The stored values of a 12-bit CT (HU + 1024).
    let px: Vec<u16> = vol
        .slice(1)
        .iter()
        .map(|&v| (v + 1024).clamp(0, 4095) as u16)
        .collect();
    for near in [0u8, 2] {
        let mut opts = jpegls::EncodeOptions::default();
        opts.near = near;
        opts.precision = Some(12);
        let mut stream = vec![(w - 1) as u8, (h - 1) as u8];
        jpegls::encode_with_options(&px, w as u32, h as u32, &opts, &mut stream)?;
        std::fs::write(j.join(format!("near{near}.bin")), &stream)?;
        if near == 0 {
            let n = stream.len();
            stream.insert(n - 2, 0xFF);
            std::fs::write(j.join("fill-before-eoi.bin"), &stream)?;
        }
    }
    println!("seeds written under {}", out.display());
    Ok(())
}
