//! Giving memory back to the system after a burst.
//!
//! A session closed with a large send queue (a slow reader at the cap holds up to
//! `max_queue_bytes`) frees hundreds of MiB at once. glibc keeps freed memory in its
//! arenas, so Node-RED's RSS would stay at the peak for good (measured: +270 MiB
//! after one slow reader at the 256 MiB cap). `malloc_trim` returns the free pages.
//! musl's allocator gives large blocks back by itself.

use std::sync::atomic::{AtomicU64, Ordering};

/// Queues at least this big are worth a trim when they are dropped.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;

/// Returns freed memory to the system, at most once a second, off the async workers.
pub fn release_freed() {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = BASE.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1000;
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 1000
        || LAST_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only walks and releases glibc's own free lists.
        unsafe { libc::malloc_trim(0) };
    });
}
