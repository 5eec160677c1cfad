//! An allocation budget while a reader runs, so that no input can make a reader allocate more
//! than its own size can justify.
//!
//! Why an allocator and not more checks in front of the parser: dicom-rs reads element lengths
//! from the file and reserves them before reading the bytes (`SmallVec::try_reserve_exact` with
//! a forged 4 GB length: 424 bytes of input took 4.1 GB of resident memory). A pre-scan that
//! walks the bytes the way it expects dicom-rs to walk them is a second parser that disagrees
//! with the first (implicit VR, odd groups, `FFFF,FFFF` tags): fuzzing found inputs that passed
//! it. A budget holds whatever path the parser takes. dicom-rs, nifti-rs and the image codecs
//! reserve fallibly where the size comes from the file, so a refused reservation becomes an
//! ordinary parse error — natively and in wasm, where a wasm memory that grew never shrinks.
//!
//! [`CappedAlloc`] wraps the system allocator and must be the program's global allocator for the
//! budget to hold: the CLI, the wasm module (see `lib.rs`), the fuzz targets and the regression
//! tests declare it. Without it, [`with_budget`] runs its closure unbudgeted ([`installed`]
//! says which). The accounting is per thread (the readers run on the calling thread) and costs
//! a thread-local check per allocation outside a budget.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The system allocator with a per-thread budget (see the module docs).
pub struct CappedAlloc;

static INSTALLED: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy)]
struct Scope {
    /// Bytes the scope may hold at once; `usize::MAX` outside any budget.
    budget: usize,
    /// Bytes allocated minus bytes freed on this thread since the scope began (never below 0:
    /// freeing what was allocated before the scope gives no credit).
    live: usize,
    /// Highest `live` seen since the scope began.
    peak: usize,
    /// Allocations refused since the scope began.
    refused: usize,
}

const OPEN: Scope = Scope {
    budget: usize::MAX,
    live: 0,
    peak: 0,
    refused: 0,
};

/// Allocations below this size always pass (and count): a budget spent by a forged reservation
/// must not turn the parser's own small, infallible allocations (its error values, their
/// backtraces, strings) into aborts — found by fuzzing: a reservation just under the budget, then
/// a 1.8 KB backtrace frame vector refused, aborted the process. Small allocations cannot blow
/// the memory up on their own: the parser makes them as it walks bytes the file really holds.
pub const ALWAYS_ADMITTED: usize = 256 << 10;

thread_local! {
    // `const` and no destructor: reading it never allocates, so the allocator may use it.
    static SCOPE: Cell<Scope> = const { Cell::new(OPEN) };
}

impl CappedAlloc {
    /// Whether an allocation of `size` more bytes fits the thread's budget; counts it if so.
    #[inline]
    fn admit(size: usize) -> bool {
        SCOPE
            .try_with(|c| {
                let mut s = c.get();
                if s.budget == usize::MAX {
                    return true;
                }
                let live = s.live.saturating_add(size);
                if live > s.budget && size >= ALWAYS_ADMITTED {
                    s.refused += 1;
                    c.set(s);
                    return false;
                }
                s.live = live;
                s.peak = s.peak.max(live);
                c.set(s);
                true
            })
            .unwrap_or(true)
    }

    #[inline]
    fn release(size: usize) {
        let _ = SCOPE.try_with(|c| {
            let mut s = c.get();
            if s.live > 0 {
                s.live = s.live.saturating_sub(size);
                c.set(s);
            }
        });
    }
}

// SAFETY: every call is forwarded to `System` unchanged, or refused with a null pointer, which
// the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Freeing null is a no-op, as in C: openjp2 frees never-allocated code-block buffers (a
        // null pointer with a zeroed layout) when it tears a tile down, and wasm32's allocator
        // trapped on it ("memory access out of bounds" decoding JPEG 2000 in the browser).
        if ptr.is_null() {
            return;
        }
        Self::release(layout.size());
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                Self::release(new_size - old);
            }
        } else if new_size < old {
            Self::release(old - new_size);
        }
        p
    }
}

/// Whether [`CappedAlloc`] is the global allocator of this program (it has served at least one
/// allocation).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// What a budgeted run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Most bytes held at once by allocations made inside the run (on this thread).
    pub peak_bytes: usize,
    /// Allocations the budget refused.
    pub refused: usize,
}

/// Run `f` with at most `budget` bytes held at once by what it allocates on this thread (nested
/// budgets: the tighter one holds). An allocation of [`ALWAYS_ADMITTED`] bytes or more past the
/// budget fails: a fallible reservation returns an error, an infallible one aborts (none of the
/// readers' size-from-the-file paths is infallible: the fuzz regressions check that); smaller
/// ones always pass. Returns `f`'s result and what it used.
pub fn with_budget<T>(budget: usize, f: impl FnOnce() -> T) -> (T, Usage) {
    let outer = SCOPE.with(|c| c.get());
    let inner_budget = budget.min(outer.budget.saturating_sub(outer.live));
    SCOPE.with(|c| {
        c.set(Scope {
            budget: inner_budget,
            live: 0,
            peak: 0,
            refused: 0,
        })
    });
    let out = f();
    let inner = SCOPE.with(|c| c.get());
    // An enclosing budget goes on counting what the inner run still holds; outside any budget
    // nothing is counted.
    SCOPE.with(|c| {
        if outer.budget == usize::MAX {
            c.set(OPEN);
            return;
        }
        let live = outer.live.saturating_add(inner.live);
        c.set(Scope {
            live,
            peak: outer.peak.max(live),
            refused: outer.refused + inner.refused,
            ..outer
        })
    });
    (
        out,
        Usage {
            peak_bytes: inner.peak,
            refused: inner.refused,
        },
    )
}

/// Measure the peak bytes `f` holds at once on this thread, without a budget.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    with_budget(usize::MAX - 1, f)
}

/// Budget of a reader working on `input_len` bytes that decodes at most `output_bytes`: a base
/// for the parser's own bookkeeping, the input copied a few times over (a parsed DICOM object
/// holds its values; an inflated stream), and the output a few times over (raw samples, then
/// f32, then the caller's buffer).
pub fn reader_budget(input_len: usize, output_bytes: usize) -> usize {
    const BASE: usize = 32 << 20;
    BASE.saturating_add(input_len.saturating_mul(4))
        .saturating_add(output_bytes.saturating_mul(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside a program that installs the allocator nothing is refused; the budget logic is
    /// checked in `tests/fuzz_regressions.rs`, whose binary installs it.
    #[test]
    fn budgets_nest_and_report() {
        let ((), u) = with_budget(1 << 20, || {
            let v: Vec<u8> = Vec::with_capacity(1000);
            drop(v);
        });
        if installed() {
            assert!(u.peak_bytes >= 1000);
        }
        assert_eq!(u.refused, 0);
        assert!(reader_budget(10, 0) > 32 << 20);
    }
}
