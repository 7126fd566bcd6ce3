//! Giving memory back to the system after a burst.
//!
//! A session closed with a large send queue (a slow reader at the cap holds up to
//! `max_queue_bytes`) frees hundreds of MiB at once. glibc keeps freed memory in its
//! arenas, so Node-RED's RSS would stay at the peak for good (measured: +270 MiB
//! after one slow reader at the 256 MiB cap). `malloc_trim` returns the free pages.
//! musl's allocator gives large blocks back by itself.
//!
//! A burst of upgrades leaves glibc's heap full of holes too: Node frees each
//! upgraded socket's objects (and Node-RED's runtime only lets go of them after its
//! `inboundWebSocketTimeout`, 5 s), while the sessions' small allocations, made
//! between them, stay. Measured at 5 000 idle connections: ~0.5 KiB per connection
//! of free but resident pages, which a trim after the burst returns.

use parking_lot::{const_mutex, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Queues at least this big are worth a trim when they are dropped.
pub const TRIM_AFTER_BYTES: usize = 8 << 20;
/// A trim walks all of glibc's free lists: at most one per this period.
const TRIM_EVERY: Duration = Duration::from_secs(1);

static TRIMMER: Trimmer = Trimmer::new(trim_off_the_workers);
static AFTER_BURST: BurstTrimmer = BurstTrimmer::new(trim_off_the_workers);

/// Sessions adopted since the last burst's trims that make a burst.
const BURST: usize = 256;
/// After the last session of a burst: one trim for what the handshakes left, and a
/// later one for what Node frees once Node-RED's runtime has let go of the sockets
/// and V8 has collected them (its memory reducer runs some seconds after a burst).
const BURST_TRIMS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(30)];

/// A session has ended, and everything it held (its stream, its queue, its place
/// in the listener's table) is dropped: trims if it left `unsent` bytes worth it.
pub fn session_freed(unsent: usize) {
    if unsent >= TRIM_AFTER_BYTES {
        TRIMMER.request();
    }
}

/// A session was adopted from Node's HTTP server (called from the JS thread).
pub fn session_adopted() {
    AFTER_BURST.adopted();
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

/// Trims after a burst of adoptions has ended: at each of `BURST_TRIMS` after the
/// last adoption. A new burst meanwhile starts the schedule over once it ends.
pub struct BurstTrimmer {
    state: Mutex<BurstState>,
    trim: fn(),
}

struct BurstState {
    /// Adoptions since the schedule last ran to its end.
    count: usize,
    last: Option<Instant>,
    /// A task is waiting to trim; it reads `last` when it wakes.
    scheduled: bool,
}

impl BurstTrimmer {
    pub const fn new(trim: fn()) -> Self {
        BurstTrimmer { state: const_mutex(BurstState { count: 0, last: None, scheduled: false }), trim }
    }

    pub fn adopted(&'static self) {
        {
            let mut s = self.state.lock();
            let now = Instant::now();
            // Only adoptions close together make a burst: a slow trickle never does.
            if s.last.is_some_and(|last| now - last > BURST_TRIMS[1]) {
                s.count = 0;
            }
            s.count += 1;
            s.last = Some(now);
            if s.scheduled || s.count < BURST {
                return;
            }
            s.scheduled = true;
        }
        // Also if the runtime drops the task, polled or not: a later burst schedules anew.
        let done = Unscheduled(self);
        crate::listener::napi_or_tokio_spawn(async move { done.0.schedule(done).await });
    }

    /// Two trims per burst, whatever comes after it: a trim holds glibc's arena
    /// locks (milliseconds with many connections), so connections that keep
    /// arriving must not keep causing them.
    async fn schedule(&'static self, _done: Unscheduled) {
        // The first once adoptions have paused.
        loop {
            let last = self.state.lock().last.unwrap_or_else(Instant::now);
            tokio::time::sleep_until(last + BURST_TRIMS[0]).await;
            if self.state.lock().last == Some(last) {
                break;
            }
        }
        (self.trim)();
        // The second once the burst's sockets have been let go of and collected.
        tokio::time::sleep(BURST_TRIMS[1] - BURST_TRIMS[0]).await;
        (self.trim)();
        self.state.lock().count = 0;
    }
}

/// Clears `scheduled` when the trimming task ends.
struct Unscheduled(&'static BurstTrimmer);

impl Drop for Unscheduled {
    fn drop(&mut self) {
        self.0.state.lock().scheduled = false;
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

    static BURST_TRIMS_DONE: AtomicUsize = AtomicUsize::new(0);
    fn count_burst() {
        BURST_TRIMS_DONE.fetch_add(1, Ordering::SeqCst);
    }
    static BURSTS: BurstTrimmer = BurstTrimmer::new(count_burst);

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_adoptions_is_trimmed_after_it_ends_twice_and_a_trickle_is_not() {
        let trims = || BURST_TRIMS_DONE.load(Ordering::SeqCst);
        let ms = Duration::from_millis;
        for _ in 0..BURST - 1 {
            BURSTS.adopted();
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(trims(), 0, "fewer than a burst: no trim");
        // The burst goes on for 3 s: no trim while it does.
        for _ in 0..30 {
            BURSTS.adopted();
            tokio::time::sleep(ms(100)).await;
        }
        assert_eq!(trims(), 0, "no trim during the burst");
        tokio::time::sleep(BURST_TRIMS[0] - ms(101)).await;
        assert_eq!(trims(), 0);
        tokio::time::sleep(ms(2)).await;
        assert_eq!(trims(), 1, "trimmed once the burst was over");
        tokio::time::sleep(BURST_TRIMS[1] - BURST_TRIMS[0] - ms(2)).await;
        assert_eq!(trims(), 1);
        tokio::time::sleep(ms(2)).await;
        assert_eq!(trims(), 2, "and again later");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(trims(), 2, "then no more");
        for _ in 0..BURST {
            BURSTS.adopted();
        }
        tokio::time::sleep(BURST_TRIMS[1] + ms(1)).await;
        assert_eq!(trims(), 4, "the next burst is trimmed the same way");
        // A burst, then a trickle that never stops: its two trims, and no more.
        for _ in 0..BURST {
            BURSTS.adopted();
        }
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            BURSTS.adopted();
        }
        assert_eq!(trims(), 6, "a trickle after a burst keeps trimming");
        // Adoptions further apart than a burst's window never add up to one.
        tokio::time::sleep(Duration::from_secs(60)).await;
        for _ in 0..BURST {
            BURSTS.adopted();
            tokio::time::sleep(BURST_TRIMS[1] + ms(1)).await;
        }
        assert_eq!(trims(), 6, "spread-out adoptions made a burst");
    }
}
