//! The C allocation functions the JPEG 2000 decoder (openjp2, a Rust port of OpenJPEG) calls.
//!
//! On wasm32-unknown-unknown there is no libc, so its `malloc`/`calloc`/`realloc`/`free`/`strcpy`
//! calls would become imports from a JavaScript module named `env` that nobody provides (the
//! bundle then fails to load). They are served here from Rust's allocator. Each block carries its
//! size in a 16-byte header, which `free` and `realloc` need to rebuild the layout.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc as rust_realloc};

const HEADER: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// # Safety
/// C semantics: the result is null or a block of `size` bytes for [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut u8 {
    let Some(l) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `l` has a non-zero size (the header).
    unsafe {
        let p = alloc(l);
        if p.is_null() {
            return p;
        }
        (p as *mut usize).write(size);
        p.add(HEADER)
    }
}

/// # Safety
/// C semantics.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(l) = n.checked_mul(size).and_then(layout) else {
        return std::ptr::null_mut();
    };
    // SAFETY: as in `malloc`.
    unsafe {
        let p = alloc_zeroed(l);
        if p.is_null() {
            return p;
        }
        (p as *mut usize).write(n * size);
        p.add(HEADER)
    }
}

/// # Safety
/// `p` is null or came from this module's `malloc`/`calloc`/`realloc` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: the header written at allocation holds the size that made the layout.
    unsafe {
        let base = p.sub(HEADER);
        let size = (base as *const usize).read();
        if let Some(l) = layout(size) {
            dealloc(base, l);
        }
    }
}

/// # Safety
/// As for [`free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: see `malloc` and `free`.
    unsafe {
        if p.is_null() {
            return malloc(new_size);
        }
        let base = p.sub(HEADER);
        let old = (base as *const usize).read();
        let (Some(l), Some(_)) = (layout(old), layout(new_size)) else {
            return std::ptr::null_mut();
        };
        let q = rust_realloc(base, l, new_size + HEADER);
        if q.is_null() {
            return q;
        }
        (q as *mut usize).write(new_size);
        q.add(HEADER)
    }
}

/// # Safety
/// C semantics: `src` is NUL-terminated and `dst` large enough.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strcpy(dst: *mut u8, src: *const u8) -> *mut u8 {
    // SAFETY: the caller guarantees a terminated source and room in `dst`.
    unsafe {
        let mut i = 0;
        loop {
            let c = *src.add(i);
            *dst.add(i) = c;
            if c == 0 {
                break;
            }
            i += 1;
        }
    }
    dst
}

// The global allocator in the browser is `alloc_cap::CappedAlloc` (lib.rs), which also makes
// freeing a null pointer a no-op, as openjp2 needs here.
