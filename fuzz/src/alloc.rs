//! A counting global allocator, so a target can assert that a decoder's memory is
//! bounded by what it was given rather than by a length field it read.
//!
//! Two figures per thread (libFuzzer runs the target on one thread; `cargo test`
//! runs each target on its own):
//! - **reserved**: bytes asked of the allocator and not yet freed. A decoder that
//!   reserves `Vec::with_capacity(n)` for an `n` it read shows up here at once.
//! - **touched**: what was really written: small blocks count in full, and a block
//!   of `BIG` bytes or more, served by its own `mmap`, counts the pages the kernel
//!   made resident (`mincore` just before it is freed). A reservation that is never
//!   filled costs address space only, which is what the broker's `GuardedAlloc`
//!   relies on for kafka-protocol's up-front array capacities. Only the first
//!   64 MiB of such a block are writable: filling a lying reservation faults.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Blocks this large get their own mapping, so their resident pages can be counted.
const BIG: usize = 64 << 10;
const PAGE: usize = 4096;

pub struct Counting;

thread_local! {
    static RESERVED: Cell<isize> = const { Cell::new(0) };
    static RESERVED_PEAK: Cell<isize> = const { Cell::new(0) };
    static SMALL: Cell<isize> = const { Cell::new(0) };
    static SMALL_PEAK: Cell<isize> = const { Cell::new(0) };
    static BIG_TOUCHED: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// What one call of a target cost, above what was live when it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The most bytes reserved at once.
    pub reserved_peak: usize,
    /// An upper bound on the bytes written at once: the peak of small blocks plus
    /// every big block's resident pages.
    pub touched_peak: usize,
    /// The largest single request.
    pub largest: usize,
}

/// Runs `f` and reports its memory use on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    let reserved = RESERVED.with(Cell::get);
    let small = SMALL.with(Cell::get);
    RESERVED_PEAK.with(|p| p.set(reserved));
    SMALL_PEAK.with(|p| p.set(small));
    BIG_TOUCHED.with(|t| t.set(0));
    LARGEST.with(|l| l.set(0));
    let out = f();
    let grown = |peak: isize, base: isize| usize::try_from(peak - base).unwrap_or(0);
    let usage = Usage {
        reserved_peak: grown(RESERVED_PEAK.with(Cell::get), reserved),
        touched_peak: grown(SMALL_PEAK.with(Cell::get), small) + BIG_TOUCHED.with(Cell::get),
        largest: LARGEST.with(Cell::get),
    };
    (out, usage)
}

/// Panics (a finding) when `usage` passes `cap` bytes on the figure a target bounds.
pub fn assert_within(what: &str, figure: usize, cap: usize, input_len: usize) {
    assert!(
        figure <= cap,
        "{what}: {figure} bytes for a {input_len}-byte input (cap {cap})"
    );
}

// Thread-locals with const initialisers and no destructor never fail to be reached,
// but `try_with` keeps the allocator from panicking during a thread's teardown.
fn add(
    cell: &'static std::thread::LocalKey<Cell<isize>>,
    peak: &'static std::thread::LocalKey<Cell<isize>>,
    delta: isize,
) {
    let _ = cell.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = peak.try_with(|p| p.set(p.get().max(now)));
    });
}

fn on_alloc(size: usize) {
    add(&RESERVED, &RESERVED_PEAK, size as isize);
    if size < BIG {
        add(&SMALL, &SMALL_PEAK, size as isize);
    }
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

fn on_free(size: usize) {
    add(&RESERVED, &RESERVED_PEAK, -(size as isize));
    if size < BIG {
        add(&SMALL, &SMALL_PEAK, -(size as isize));
    }
}

fn is_big(layout: &Layout) -> bool {
    layout.size() >= BIG && layout.align() <= PAGE
}

/// Only this much of a big block can be written: the rest of its mapping is
/// PROT_NONE, so a write there (a decoder filling a reservation it read from the
/// input) is a fault the fuzzer reports, and counting resident pages stays cheap.
const WRITABLE: usize = 64 << 20;

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    // SAFETY: the prefix lies inside the mapping just made.
    let writable = size.min(WRITABLE);
    if unsafe { libc::mprotect(p, writable, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        unsafe { libc::munmap(p, size) };
        return std::ptr::null_mut();
    }
    p.cast()
}

/// Resident bytes of a mapping made by [`map`], asked a chunk at a time through a
/// buffer on the stack (allocating here would count itself) and counted a word at
/// a time (this code is instrumented too, and runs on every big free).
unsafe fn resident(ptr: *mut u8, size: usize) -> usize {
    const CHUNK: usize = 4096;
    let mut pages = [0u64; CHUNK / 8];
    let size = size.min(WRITABLE);
    let mut count = 0;
    let mut at = 0;
    while at < size {
        let len = (size - at).min(CHUNK * PAGE);
        pages.fill(0);
        // SAFETY: `ptr + at` is page-aligned inside a live mapping of `size` bytes,
        // and `pages` has a byte for each of the `len / PAGE` pages asked about.
        let ok = unsafe { libc::mincore(ptr.add(at).cast(), len, pages.as_mut_ptr().cast()) } == 0;
        if !ok {
            return size;
        }
        let low_bits = 0x0101_0101_0101_0101u64;
        count += pages
            .iter()
            .map(|w| (w & low_bits).count_ones() as usize)
            .sum::<usize>();
        at += len;
    }
    count * PAGE
}

// SAFETY: each block is allocated and freed by the same mechanism, chosen by its
// layout (which Rust passes unchanged to dealloc): big ones by mmap/munmap, the rest
// by the system allocator. The counting touches only const thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        if is_big(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        if is_big(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        if is_big(&layout) {
            unsafe {
                let touched = resident(ptr, layout.size());
                let _ = BIG_TOUCHED.try_with(|t| t.set(t.get() + touched));
                libc::munmap(ptr.cast(), layout.size());
            }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_big(&layout) && !is_big(&new_layout) {
            on_free(layout.size());
            on_alloc(new_size);
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                // Past WRITABLE nothing was written (it would have faulted), and
                // reading there would fault too.
                let kept = layout.size().min(new_size).min(WRITABLE);
                std::ptr::copy_nonoverlapping(ptr, new, kept);
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
