//! Integration tests against the real binary, a real Unix socket and a real SQLite file.
//! One test binary with a module per area keeps link times down.

mod alloc;
mod amqp;
mod bad_input;
mod bench;
mod busy;
mod cli;
mod config;
mod corpus;
mod crash;
mod drain;
mod events;
mod expiry;
mod held;
mod http;
mod identical;
mod market_data;
mod model;
mod projection;
mod protocol;
mod restart;
mod sessions;
mod signals;
mod stops;
mod support;
mod systemd;
mod trading;
#[path = "../../benches/common/workload.rs"]
mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the allocations of each thread, so that a test can tell whether the code it runs on
/// its own thread allocates, whatever the other tests do meanwhile.
struct Counting;

thread_local! {
    // `const` initialisation: reading it never allocates, which an allocator requires.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations made so far by the calling thread.
pub fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to the system allocator with the same arguments; the counter
// is a thread-local `Cell` that neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`, and `new_size` is the caller's, unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
