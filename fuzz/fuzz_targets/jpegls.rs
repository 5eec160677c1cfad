//! The JPEG-LS frame decoder (pure_jpegls and the fill-byte retry): two bytes of size, then the
//! stream, so the fuzzer also varies the Rows×Columns it is cross-checked against.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: ctscreen::alloc_cap::CappedAlloc = ctscreen::alloc_cap::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let [c, r, stream @ ..] = data else { return };
    let (cols, rows) = (u32::from(*c) + 1, u32::from(*r) + 1);
    let _ = ctscreen::volume::dicom::jpeg_ls_frame(stream, cols, rows);
});
