//! One WebSocket connection: a single task that reads, writes and keeps time
//! (`conn::Session`), and the queue of encoded frames that senders fill.
//!
//! An idle session holds its socket, a small state struct and this module's
//! `Shared`: no read buffer (reads go to a per-thread scratch buffer, and only an
//! incomplete frame or message is kept), no channel, no second task.

mod conn;
#[cfg(test)]
mod tests;

use crate::codec;
use crate::inbox::Inbox;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub use conn::Session;

/// Close code reported when the connection ended without a close frame.
pub const ABNORMAL_CLOSURE: u16 = 1006;
/// The code of the idle timeout's close: the server leaves a connection that is
/// fine but unused, which is what 1001 says; clients reconnect after it as after
/// a restart. (1000 would claim the conversation was complete; 1008 and 1011 are
/// faults.) Reported to the flow as a close, not as an error.
pub const IDLE_CLOSE: u16 = 1001;
/// After a protocol error from the peer, how long replies still go out before the
/// close frame: the flow's answer to the messages that came before the bad frame
/// (Autobahn 3.2, 4.1.x, 5.15...) crosses to JS and back first, a few ms.
pub const ERROR_GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Ping every this often; a peer that sent nothing since the last ping is dropped.
    pub heartbeat: Option<Duration>,
    /// With no heartbeat: a peer that sends nothing for this long is closed (1001).
    pub idle: Option<Duration>,
    /// Bytes that may wait in one session's send queue before it is closed with 1008.
    pub max_queue_bytes: usize,
    /// Past the queue cap, drop (and count) what does not fit instead of closing.
    pub drop_when_full: bool,
    /// Largest message (and frame) accepted from the peer.
    pub max_message_bytes: usize,
    /// How long a close handshake may take before the socket is dropped.
    pub close_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat: None,
            idle: None,
            max_queue_bytes: 256 << 20,
            drop_when_full: false,
            // The `ws` package core uses accepts up to 100 MiB.
            max_message_bytes: 100 << 20,
            close_timeout: Duration::from_secs(2),
        }
    }
}

impl SessionConfig {
    /// For the client's handshake, which tungstenite does.
    pub fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(4096)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// What a session shares with those who send to it: frames encoded and waiting.
pub struct Shared {
    frames: Mutex<VecDeque<Bytes>>,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// The session's task, woken when the queue gains its first frame.
    waker: AtomicWaker,
    /// Messages dropped because the queue was full (drop policy).
    pub dropped: AtomicU64,
    /// The queue passed its cap (close policy): the session closes with 1008.
    overflow: AtomicBool,
    /// The session is over: nothing more is queued.
    ended: AtomicBool,
    /// Our close frame is queued: what is sent after it is discarded (it would
    /// never go out, and counted against the cap it could turn the close into a
    /// 1008). Set under the `frames` lock, so no frame gets in behind the close.
    closing: AtomicBool,
    /// This end is a client: its frames are masked.
    client: bool,
    /// Traffic and queue peak, for the editor's live view.
    pub stats: crate::stats::SessionStats,
}

impl Shared {
    /// Bytes queued and not yet written; after the session, what it left unsent.
    pub fn unsent(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// The sending side of a session.
pub struct SessionHandle {
    shared: Arc<Shared>,
    max_queue_bytes: usize,
    drop_when_full: bool,
    drops: Mutex<DropReport>,
}

/// Where drops are tallied for the flow (the config node's inbox and the session's
/// id), and those held until then: the flow hears of a session's drops only once
/// it has heard of the session.
#[derive(Default)]
struct DropReport {
    to: Option<(Arc<Inbox>, u32)>,
    held: u32,
}

impl SessionHandle {
    /// A session's sending side and the state its task takes; `client` for the
    /// client end of a connection.
    pub fn new(cfg: &SessionConfig, client: bool) -> (Self, Arc<Shared>) {
        let shared = Arc::new(Shared {
            frames: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
            dropped: AtomicU64::new(0),
            overflow: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            client,
            stats: Default::default(),
        });
        let handle = SessionHandle {
            shared: shared.clone(),
            max_queue_bytes: cfg.max_queue_bytes,
            drop_when_full: cfg.drop_when_full,
            drops: Mutex::default(),
        };
        (handle, shared)
    }

    /// From now on, report dropped messages to `inbox` as session `id` (drop
    /// policy), starting with those held so far. Called as the session opens.
    pub fn report_drops(&self, inbox: &Arc<Inbox>, id: u32) {
        let mut drops = self.drops.lock();
        if drops.held > 0 {
            inbox.count_drops(id, std::mem::take(&mut drops.held));
        }
        drops.to = Some((inbox.clone(), id));
    }

    /// Bytes queued and not yet written (see `Shared::unsent`).
    pub fn unsent(&self) -> usize {
        self.shared.unsent()
    }

    pub fn stats(&self) -> &crate::stats::SessionStats {
        &self.shared.stats
    }

    /// Messages dropped so far (drop policy).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// The queue passed its cap (close policy).
    pub fn overflowed(&self) -> bool {
        self.shared.overflow.load(Ordering::Relaxed)
    }

    /// The frames waiting, for tests that look at what is shared.
    #[cfg(test)]
    pub fn queued_frames(&self) -> Vec<Bytes> {
        self.shared.frames.lock().iter().cloned().collect()
    }

    /// Queue a text or binary message, encoded for this end.
    pub fn send(&self, msg: Message) -> bool {
        let client = self.shared.client;
        match msg {
            Message::Text(t) => self.send_frame(codec::data_frame(true, t.as_bytes(), client)),
            Message::Binary(b) => self.send_frame(codec::data_frame(false, &b, client)),
            _ => false,
        }
    }

    /// Queue an encoded frame (shared bytes: a broadcast's frame is encoded once);
    /// false if the session is gone, its queue overflowed, or the frame was dropped
    /// because the queue is full. A frame is always taken while nothing waits (as
    /// `ws` sends whatever its bufferedAmount), so a cap below one message's size
    /// still lets messages through one at a time.
    pub fn send_frame(&self, frame: Bytes) -> bool {
        self.send_frames(std::iter::once(frame)) == 1
    }

    /// `send_frame` for several frames, in order, under one lock and with one
    /// wake-up: a burst of broadcasts becomes one write. Returns how many were taken.
    pub fn send_frames(&self, frames: impl Iterator<Item = Bytes>) -> usize {
        let shared = &self.shared;
        if shared.ended.load(Ordering::Relaxed) {
            // The session has ended: nothing is queued, nothing counts as dropped.
            return 0;
        }
        let (mut taken, mut dropped, mut peak) = (0, 0, 0);
        let was_empty = {
            let mut queue = shared.frames.lock();
            if shared.closing.load(Ordering::Relaxed) {
                // After our close: discarded, and not counted as dropped.
                return 0;
            }
            let was_empty = queue.is_empty();
            for frame in frames {
                let len = frame.len();
                let waiting = shared.queued.fetch_add(len, Ordering::Relaxed);
                if waiting > 0 && waiting + len > self.max_queue_bytes {
                    shared.queued.fetch_sub(len, Ordering::Relaxed);
                    if !self.drop_when_full {
                        shared.overflow.store(true, Ordering::Relaxed);
                        break;
                    }
                    dropped += 1;
                    continue;
                }
                // Near the cap, or after a drop, a run of frames may be kept only in
                // part, and a frame from a shared block (`codec::blocks`) keeps its
                // whole block: copied. (A run split across calls, with the writer
                // draining between a drop and a keep, can still leave one block so.)
                let near = dropped > 0 || waiting + codec::blocks::BLOCK_MAX > self.max_queue_bytes;
                let frame =
                    if near && len <= codec::blocks::SHARED_UP_TO { Bytes::copy_from_slice(&frame) } else { frame };
                queue.push_back(frame);
                taken += 1;
                peak = waiting + len;
            }
            was_empty
        };
        if taken > 0 {
            crate::stats::count(&shared.stats.msgs_out, taken as u64);
            shared.stats.note_queued(peak);
        }
        if dropped > 0 {
            shared.dropped.fetch_add(dropped, Ordering::Relaxed);
            let mut drops = self.drops.lock();
            match &drops.to {
                Some((inbox, id)) => inbox.count_drops(*id, dropped as u32),
                None => drops.held = drops.held.saturating_add(dropped as u32),
            }
        }
        // A queue that was not empty is already the writer's business, unless it
        // just overflowed.
        if (was_empty && taken > 0) || shared.overflow.load(Ordering::Relaxed) {
            shared.waker.wake();
        }
        taken
    }

    /// Close with `code` after what is queued; sends after it are discarded. Only
    /// the first close counts.
    pub fn close(&self, code: u16) {
        self.close_with(code, "");
    }

    /// Close with `code` and `reason` (cut to what a close frame holds) after what
    /// is queued; sends after it are discarded. Only the first close counts.
    pub fn close_with(&self, code: u16, reason: &str) {
        let shared = &self.shared;
        let frame = codec::control_frame(Control::Close, &codec::close_payload(code, reason), shared.client);
        let was_empty = {
            let mut frames = shared.frames.lock();
            if shared.closing.swap(true, Ordering::Relaxed) {
                return;
            }
            shared.queued.fetch_add(frame.len(), Ordering::Relaxed);
            frames.push_back(frame);
            frames.len() == 1
        };
        // A queue that was not empty is already the writer's business.
        if was_empty {
            shared.waker.wake();
        }
    }
}

impl Drop for SessionHandle {
    /// Nobody can send any more: the session closes (1001) once its queue is out.
    fn drop(&mut self) {
        if !self.shared.ended.load(Ordering::Relaxed) {
            self.close(1001);
        }
    }
}

/// How a session ended: the close code, and an error worth reporting if any.
#[derive(Debug, Default)]
pub struct Ended {
    pub code: u16,
    pub error: Option<String>,
    /// The reason in the peer's close frame, when `code` is the peer's.
    pub reason: String,
}

impl Ended {
    pub fn new(code: u16, error: Option<String>) -> Self {
        Ended { code, error, reason: String::new() }
    }
}

/// Session ids are process-wide, so a `_session` from one listener never matches a
/// session of another; they start at a random point so ids differ across restarts.
pub fn next_id() -> u32 {
    use std::sync::OnceLock;
    static NEXT: OnceLock<std::sync::atomic::AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| std::sync::atomic::AtomicU32::new(rand::random::<u32>() | 1));
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}
