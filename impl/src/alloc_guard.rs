//! A global allocator that keeps a decoder's absurd up-front reservation from
//! killing the broker.
//!
//! kafka-protocol 0.18 decodes an array by `Vec::with_capacity(n)` with `n` read from
//! the wire before a single element is read (upstream kafka-protocol-rs pull requests
//! #152, #161 and #200, unreleased). A 12-byte request claiming 2^31 elements asks for
//! ~150 GB; the system allocator refuses, and Rust aborts the process. Here any
//! allocation above `HUGE` (far above anything the broker needs: requests are capped
//! at `max_request_bytes`) is served from an `mmap(MAP_NORESERVE)` mapping instead:
//! it costs address space only, the decoder fails on the short buffer right after,
//! and the mapping is released. Needs `vm.overcommit_memory` 0 or 1 (the default); under
//! strict accounting (2) the mapping fails and the old abort remains.
//! Remove once kafka-protocol bounds capacities by the bytes remaining.

use std::alloc::{GlobalAlloc, Layout, System};

const HUGE: usize = 4 << 30;
const PAGE: usize = 4096;

pub struct GuardedAlloc;

fn is_huge(layout: &Layout) -> bool {
    layout.size() > HUGE && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is allocated and freed by the same mechanism, chosen by the
// layout (which Rust passes unchanged to dealloc): huge ones by mmap/munmap, the
// rest by the system allocator.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Fresh anonymous pages are zero.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            unsafe {
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
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
