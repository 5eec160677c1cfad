//! `model.q8`: the model's parameters as 8-bit integers, what the page downloads and the CLI
//! runs (3.8 M parameters: 3.9 MB, against 7.6 MB for the f16 burnpack, which barely
//! compresses). Weight-only, symmetric, one scale per slice along the first axis (a
//! convolution's output channel); biases, norms and other small tensors stay f32. Computation
//! stays f32: the tensors are dequantized when the model is built.
//!
//! Layout (little-endian): `b"CTQ8"`, `u32` version (1), `u32` tensor count, then per tensor,
//! in the module's visiting order: `u8` rank (1–4), `rank × u32` dims, `u8` kind, and
//! - kind 0: `n × f32` values;
//! - kind 1: `dims[0] × f32` scales, then `n × i8` values (value = i8 × its slice's scale).
//!
//! The reader checks every length against the bytes it has before allocating, and the shapes
//! against the architecture: corrupt or mismatched files are errors, never panics.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

const MAGIC: &[u8; 4] = b"CTQ8";
const VERSION: u32 = 1;
/// Tensors smaller than this stay f32: biases and norms cost little and are the most
/// sensitive to rounding.
const MIN_QUANTIZED: usize = 1024;

/// Whether `bytes` are a `model.q8` (rather than a burnpack).
pub fn is_int8(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// One parameter as stored.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    dims: Vec<usize>,
    values: Vec<f32>,
}

/// Every float parameter of `model`, in visiting order, as int8 bytes.
pub fn encode<M: Module>(model: &M) -> Vec<u8> {
    struct Collect(Vec<Stored>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let dims = t.dims().to_vec();
            let values = t.into_data().convert::<f32>().iter::<f32>().collect();
            self.0.push(Stored { dims, values });
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(c.0.len() as u32).to_le_bytes());
    for s in &c.0 {
        out.push(s.dims.len() as u8);
        for &d in &s.dims {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        if s.dims.len() >= 2 && s.values.len() >= MIN_QUANTIZED {
            out.push(1);
            let rows = s.dims[0];
            let per = s.values.len() / rows;
            let scales: Vec<f32> = s
                .values
                .chunks_exact(per)
                .map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0)
                .collect();
            for sc in &scales {
                out.extend_from_slice(&sc.to_le_bytes());
            }
            for (r, row) in s.values.chunks_exact(per).enumerate() {
                let sc = scales[r];
                out.extend(row.iter().map(|&v| {
                    let q = if sc > 0.0 { (v / sc).round() } else { 0.0 };
                    q.clamp(-127.0, 127.0) as i8 as u8
                }));
            }
        } else {
            out.push(0);
            for v in &s.values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

/// A bounds-checked reader over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, String> {
        let len = n.checked_mul(4).ok_or("tensor too large")?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

/// Parse `model.q8` bytes into tensors (dequantized), checking lengths only.
fn decode(bytes: &[u8]) -> Result<Vec<Stored>, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err("not a ctscreen int8 weights file".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!(
            "int8 weights version {version}, this build reads {VERSION}"
        ));
    }
    let count = r.u32()? as usize;
    let mut out = Vec::new();
    for k in 0..count {
        let rank = r.u8()? as usize;
        if !(1..=4).contains(&rank) {
            return Err(format!("tensor {k}: rank {rank}"));
        }
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor {k}: dims {dims:?} overflow"))?;
        let values = match r.u8()? {
            0 => r.f32s(n)?,
            1 if n > 0 && dims[0] > 0 => {
                let scales = r.f32s(dims[0])?;
                let per = n / dims[0];
                r.take(n)?
                    .chunks_exact(per)
                    .zip(&scales)
                    .flat_map(|(row, &sc)| row.iter().map(move |&q| f32::from(q as i8) * sc))
                    .collect()
            }
            kind => return Err(format!("tensor {k}: unknown kind {kind}")),
        };
        out.push(Stored { dims, values });
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} bytes after the last tensor",
            bytes.len() - r.at
        ));
    }
    Ok(out)
}

/// Load `model.q8` bytes into `model` (built from its configuration): every parameter in
/// visiting order, shapes checked.
pub fn load<M: Module>(model: M, bytes: &[u8], device: &Device) -> Result<M, String> {
    struct Fill<'a> {
        tensors: std::vec::IntoIter<Stored>,
        device: &'a Device,
        error: Option<String>,
        seen: usize,
    }
    impl ModuleMapper for Fill<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.seen += 1;
            if self.error.is_some() {
                return param;
            }
            let want = param.val().dims();
            match self.tensors.next() {
                Some(s) if s.dims == want => {
                    let device = self.device;
                    param.map(|_| Tensor::from_data(TensorData::new(s.values, want), device))
                }
                Some(s) => {
                    self.error = Some(format!(
                        "parameter {} is {:?} in the file, {:?} in the architecture",
                        self.seen, s.dims, want
                    ));
                    param
                }
                None => {
                    self.error = Some(format!("the file ends before parameter {}", self.seen));
                    param
                }
            }
        }
    }
    let tensors = decode(bytes)?;
    let count = tensors.len();
    let mut fill = Fill {
        tensors: tensors.into_iter(),
        device,
        error: None,
        seen: 0,
    };
    let model = model.map(&mut fill);
    if let Some(e) = fill.error {
        return Err(e);
    }
    if fill.seen != count {
        return Err(format!(
            "the file holds {count} parameters, the architecture {}",
            fill.seen
        ));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(dims: &[usize], f: impl Fn(usize) -> f32) -> Stored {
        let n = dims.iter().product();
        Stored {
            dims: dims.to_vec(),
            values: (0..n).map(f).collect(),
        }
    }

    #[test]
    fn int8_rows_round_trip_within_half_a_step_and_small_tensors_exactly() {
        let device = Device::default();
        // A conv-like weight (above MIN_QUANTIZED) whose rows differ in range by 100×, and a bias.
        let w = stored(&[16, 8, 3, 3], |i| {
            ((i * 37 % 101) as f32 - 50.0) * 10f32.powi((i / 72) as i32 % 3 - 1)
        });
        let b = stored(&[4], |i| i as f32 * 0.123 - 0.2);
        // A tiny module with the same two parameters, through the real encoder and loader.
        #[derive(Module, Debug)]
        struct Tiny {
            w: Param<Tensor<4>>,
            b: Param<Tensor<1>>,
        }
        let make = |s: &Stored, device: &Device| {
            Tensor::<4>::from_data(TensorData::new(s.values.clone(), [16, 8, 3, 3]), device)
        };
        let tiny = Tiny {
            w: Param::from_tensor(make(&w, &device)),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(b.values.clone(), [4]),
                &device,
            )),
        };
        let bytes = encode(&tiny);
        assert!(is_int8(&bytes));
        // 1152 int8 + 16 scales + 4 f32 + headers: about a quarter of f32.
        assert!(bytes.len() < 1152 + 64 + 16 + 64, "{} bytes", bytes.len());
        let blank = Tiny {
            w: Param::from_tensor(Tensor::zeros([16, 8, 3, 3], &device)),
            b: Param::from_tensor(Tensor::zeros([4], &device)),
        };
        let back = load(blank, &bytes, &device).unwrap();
        let wv = back.w.val().into_data().iter::<f32>().collect::<Vec<_>>();
        for (r, (orig, got)) in w.values.chunks(72).zip(wv.chunks(72)).enumerate() {
            let step = orig.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (a, g) in orig.iter().zip(got) {
                assert!(
                    (a - g).abs() <= step * 0.5001 + 1e-6,
                    "row {r}: {a} → {g} (step {step})"
                );
            }
        }
        assert_eq!(
            back.b.val().into_data().iter::<f32>().collect::<Vec<_>>(),
            b.values
        );
    }

    #[test]
    fn corrupt_or_mismatched_files_are_errors() {
        let device = Device::default();
        #[derive(Module, Debug)]
        struct One {
            w: Param<Tensor<2>>,
        }
        let one = |n: usize| One {
            w: Param::from_tensor(Tensor::ones([n, 64], &device)),
        };
        let bytes = encode(&one(32));
        // Every truncation fails cleanly, as do trailing bytes and a wrong shape.
        for cut in 0..bytes.len() {
            assert!(
                load(one(32), &bytes[..cut], &device).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(
            load(one(32), &long, &device)
                .unwrap_err()
                .contains("after the last tensor")
        );
        assert!(
            load(one(16), &bytes, &device)
                .unwrap_err()
                .contains("in the architecture")
        );
        // Dims that claim 2³² × 2³² values are refused before any allocation.
        let mut huge = bytes[..12].to_vec();
        huge.extend_from_slice(&[2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert!(load(one(32), &huge, &device).is_err());
    }
}
