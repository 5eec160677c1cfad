//! A binary volume at one bit a voxel, read and written a slice at a time: the lung mask's
//! dark voxels, which at a byte a voxel were a third of its peak memory (a 512²×1500 series in
//! a browser tab is what this is for). Each slice starts on a word, so slices are independent.

pub(super) struct PlaneBits {
    words: Vec<u64>,
    n2: usize,
    per_slice: usize,
}

impl PlaneBits {
    /// `nz` empty slices of `n2` voxels.
    pub(super) fn new(n2: usize, nz: usize) -> Self {
        let per_slice = n2.div_ceil(64);
        PlaneBits {
            words: vec![0; per_slice * nz],
            n2,
            per_slice,
        }
    }

    /// Slice `z` as bytes, 1 where set, into `out` (`n2` long).
    pub(super) fn unpack(&self, z: usize, out: &mut [u8]) {
        let words = &self.words[z * self.per_slice..(z + 1) * self.per_slice];
        for (i, o) in out[..self.n2].iter_mut().enumerate() {
            *o = ((words[i / 64] >> (i % 64)) & 1) as u8;
        }
    }

    /// Set slice `z` from bytes (non-zero is set).
    pub(super) fn pack(&mut self, z: usize, src: &[u8]) {
        let words = &mut self.words[z * self.per_slice..(z + 1) * self.per_slice];
        words.iter_mut().for_each(|w| *w = 0);
        for (i, &v) in src[..self.n2].iter().enumerate() {
            if v != 0 {
                words[i / 64] |= 1 << (i % 64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_round_trip_independently() {
        let n2 = 70; // not a multiple of 64: each slice pads its last word
        let mut p = PlaneBits::new(n2, 3);
        let a: Vec<u8> = (0..n2).map(|i| u8::from(i % 3 == 0)).collect();
        let b: Vec<u8> = (0..n2).map(|i| u8::from(i % 5 != 0) * 7).collect();
        p.pack(0, &a);
        p.pack(2, &b);
        let mut out = vec![9u8; n2];
        p.unpack(0, &mut out);
        assert_eq!(out, a);
        p.unpack(1, &mut out);
        assert!(out.iter().all(|&v| v == 0));
        p.unpack(2, &mut out);
        assert_eq!(out, b.iter().map(|&v| u8::from(v != 0)).collect::<Vec<_>>());
    }
}
