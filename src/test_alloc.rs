//! Tests only: the test binary's allocator, which can tell what the current
//! thread allocates: the largest allocation of a given alignment (to see the
//! size of a cell another crate allocates, tokio's task cell), and the bytes
//! still allocated at the end of a closure (what a session holds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// (alignment watched, largest size seen); const, so that reading it never allocates.
    static WATCH: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
    /// Bytes allocated less bytes freed on this thread, while counting.
    static NET: Cell<Option<isize>> = const { Cell::new(None) };
}

struct Watching;

fn note(size: usize, sign: isize) {
    let _ = NET.try_with(|n| {
        if let Some(net) = n.get() {
            n.set(Some(net.wrapping_add(sign.wrapping_mul(size as isize))));
        }
    });
}

/// Watched and counted, for an allocation either way (zeroed or not).
fn allocating(layout: Layout) {
    let _ = WATCH.try_with(|w| {
        if let Some((align, largest)) = w.get().filter(|&(align, _)| align == layout.align()) {
            w.set(Some((align, largest.max(layout.size()))));
        }
    });
    note(layout.size(), 1);
}

// SAFETY: every call goes to the system allocator unchanged; the counts only
// read the layout.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocating(layout);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocating(layout);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = System.realloc(ptr, layout, new_size);
        if !grown.is_null() {
            note(layout.size(), -1);
            note(new_size, 1);
        }
        grown
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f` and returns its result with the largest allocation of alignment
/// `align` it made on this thread (0 if none).
pub fn largest_aligned<R>(align: usize, f: impl FnOnce() -> R) -> (R, usize) {
    WATCH.with(|w| w.set(Some((align, 0))));
    let out = f();
    let largest = WATCH.with(|w| w.take().map_or(0, |(_, largest)| largest));
    (out, largest)
}

/// Runs `f` and returns its result with the bytes this thread allocated in it
/// and has not freed (requested sizes: without the allocator's own overhead).
/// On a one-thread runtime, so that what `f` sets going runs on this thread too.
pub async fn net_bytes<R>(f: impl std::future::Future<Output = R>) -> (R, isize) {
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    assert_eq!(flavor, tokio::runtime::RuntimeFlavor::CurrentThread, "counting needs a one-thread runtime");
    NET.with(|n| n.set(Some(0)));
    let out = f.await;
    let net = NET.with(|n| n.take().unwrap_or(0));
    (out, net)
}
