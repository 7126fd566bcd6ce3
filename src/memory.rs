//! Giving memory back to the system after a burst.
//!
//! A session closed with a large send queue (a slow reader at the cap holds up to
//! `max_queue_bytes`) frees hundreds of MiB at once. glibc keeps freed memory in its
//! arenas, so Node-RED's RSS would stay at the peak for good (measured: +270 MiB
//! after one slow reader at the 256 MiB cap). `malloc_trim` returns the free pages.
//! musl's allocator gives large blocks back by itself.

use parking_lot::{const_mutex, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Queues at least this big are worth a trim when they are dropped.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;
/// A trim walks all of glibc's free lists: at most one per this period.
const TRIM_EVERY: Duration = Duration::from_secs(1);

static TRIMMER: Trimmer = Trimmer::new(trim_off_the_workers);

/// A session has ended, and everything it held (its stream, its queue, its place
/// in the listener's table) is dropped: trims if it left `unsent` bytes worth it.
pub fn session_freed(unsent: usize) {
    if unsent >= TRIM_AFTER_BYTES {
        TRIMMER.request();
    }
}

fn trim_off_the_workers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only walks and releases glibc's own free lists.
        unsafe { libc::malloc_trim(0) };
    });
}

/// Runs `trim` at most once per `TRIM_EVERY`. A request inside that window is not
/// lost but deferred to its end, so that a second large queue freed just after a
/// trim is given back too.
pub struct Trimmer {
    state: Mutex<TrimState>,
    trim: fn(),
}

struct TrimState {
    last: Option<Instant>,
    /// A deferred trim is on its way; it covers every request until it runs.
    scheduled: bool,
}

impl Trimmer {
    pub const fn new(trim: fn()) -> Self {
        Trimmer { state: const_mutex(TrimState { last: None, scheduled: false }), trim }
    }

    /// Called from the runtime (a session's task).
    pub fn request(&'static self) {
        let wait = {
            let mut s = self.state.lock();
            if s.scheduled {
                return;
            }
            let now = Instant::now();
            match s.last {
                Some(last) if now < last + TRIM_EVERY => {
                    s.scheduled = true;
                    last + TRIM_EVERY - now
                }
                _ => {
                    s.last = Some(now);
                    Duration::ZERO
                }
            }
        };
        if wait.is_zero() {
            (self.trim)();
            return;
        }
        crate::listener::napi_or_tokio_spawn(async move {
            tokio::time::sleep(wait).await;
            {
                let mut s = self.state.lock();
                s.scheduled = false;
                s.last = Some(Instant::now());
            }
            (self.trim)();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static TRIMS: AtomicUsize = AtomicUsize::new(0);
    fn count() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
    }
    static COUNTED: Trimmer = Trimmer::new(count);

    #[tokio::test(start_paused = true)]
    async fn a_request_soon_after_a_trim_is_deferred_to_the_end_of_the_window_not_skipped() {
        let trims = || TRIMS.load(Ordering::SeqCst);
        COUNTED.request();
        assert_eq!(trims(), 1, "the first request trims at once");
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Two slow readers closed together: both within the window of the first trim.
        COUNTED.request();
        COUNTED.request();
        assert_eq!(trims(), 1, "at most one trim per window");
        tokio::time::sleep(Duration::from_millis(599)).await;
        assert_eq!(trims(), 1, "deferred to the end of the window");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(trims(), 2, "the deferred requests were trimmed, once");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(trims(), 2);
        COUNTED.request();
        assert_eq!(trims(), 3, "a window later, at once again");
    }
}
