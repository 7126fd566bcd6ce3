//! One WebSocket connection: a reader and a writer running concurrently in one
//! task, an unbounded send queue with a byte cap, and the heartbeat.

use crate::inbox::{Event, Inbox, Kind};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Close code reported when the connection ended without a close frame.
pub const ABNORMAL_CLOSURE: u16 = 1006;
/// The code of the idle timeout's close: the server leaves a connection that is
/// fine but unused, which is what 1001 says; clients reconnect after it as after
/// a restart. (1000 would claim the conversation was complete; 1008 and 1011 are
/// faults.) Reported to the flow as a close, not as an error.
pub const IDLE_CLOSE: u16 = 1001;
/// tungstenite zero-fills its whole read buffer before every read attempt, so its
/// 128 KiB default cost a 128 KiB memset per small read (22% of worker time in the
/// echo benchmark; echo +14% at 4 KiB) and made 128 KiB resident per connection,
/// since the fill touches every page.
/// Bigger frames still grow the buffer as needed.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Messages written per flush: a burst becomes one write syscall, but stays bounded.
const FLUSH_EVERY: usize = 64;
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
    pub fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

pub enum Outgoing {
    Msg(Message),
    Close(u16),
}

/// State shared between a session's task and whoever sends to it.
#[derive(Default)]
pub struct Shared {
    /// Counts reads that brought bytes from the peer; the heartbeat compares it
    /// between ticks, so liveness follows tokio's clock (paused in tests).
    pub heard: Arc<AtomicU64>,
    queued: AtomicUsize,
    /// Messages dropped because the queue was full (drop policy).
    pub dropped: AtomicU64,
    overflow: AtomicBool,
    /// Signalled when the queue passes its cap; wakes the watchdog even while the
    /// writer is stuck on a peer that does not read.
    overflowed: Notify,
}

impl Shared {
    /// Bytes queued and not yet written; after the session, what it left unsent.
    pub fn unsent(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// The sending side of a session.
pub struct SessionHandle {
    tx: mpsc::UnboundedSender<Outgoing>,
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
    pub fn new(cfg: &SessionConfig) -> (Self, mpsc::UnboundedReceiver<Outgoing>, Arc<Shared>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let handle = SessionHandle {
            tx,
            shared: shared.clone(),
            max_queue_bytes: cfg.max_queue_bytes,
            drop_when_full: cfg.drop_when_full,
            drops: Mutex::default(),
        };
        (handle, rx, shared)
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

    /// Queue a message; false if the session is gone, its queue overflowed, or the
    /// message was dropped because the queue is full. A message is always taken
    /// while nothing waits (as `ws` sends whatever its bufferedAmount), so a cap
    /// below one message's size still lets messages through one at a time.
    pub fn send(&self, msg: Message) -> bool {
        if self.tx.is_closed() {
            // The session has ended: nothing is queued, nothing counts as dropped.
            return false;
        }
        let len = msg.len();
        let waiting = self.shared.queued.fetch_add(len, Ordering::Relaxed);
        let full = waiting > 0 && waiting + len > self.max_queue_bytes;
        if full && self.drop_when_full {
            // Only one task sends to a session, so taking it back is exact.
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            let mut drops = self.drops.lock();
            match &drops.to {
                Some((inbox, id)) => inbox.count_drops(*id, 1),
                None => drops.held = drops.held.saturating_add(1),
            }
            return false;
        }
        if full {
            if !self.shared.overflow.swap(true, Ordering::Relaxed) {
                self.shared.overflowed.notify_one();
            }
            return false;
        }
        self.tx.send(Outgoing::Msg(msg)).is_ok()
    }

    pub fn close(&self, code: u16) {
        let _ = self.tx.send(Outgoing::Close(code));
    }
}

/// How a session ended: the close code, and an error worth reporting if any.
#[derive(Debug)]
pub struct Ended {
    pub code: u16,
    pub error: Option<String>,
}

/// What a read or write error means: `None` for a peer that just went away (core
/// reports nothing then), else the close code to send and the text to report.
fn classify(e: WsError) -> Option<(u16, String)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::Io(e) if crate::utf8_watch::InvalidUtf8::is(&e) => Some((1007, e.to_string())),
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => None,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing) => None,
        WsError::Utf8(_) => Some((1007, "invalid UTF-8 in a text message".into())),
        WsError::Capacity(c) => Some((1009, format!("message too big: {c}"))),
        WsError::Protocol(p) => Some((1002, format!("protocol error: {p}"))),
        other => Some((1011, other.to_string())),
    }
}

pub async fn run<S>(
    ws: WebSocketStream<S>,
    id: u32,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    inbox: Arc<Inbox>,
    cfg: SessionConfig,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let heard = &shared.heard;
    let ping_due = Notify::new();
    // The peer's protocol error, kept here so that however the session then ends
    // (the grace, a write that fails, the heartbeat), the error is what it reports.
    let fault: Mutex<Option<(u16, (u16, String))>> = Mutex::new(None);
    let faulted = Notify::new();

    // A protocol error stops the reading but not the writer: see `grace`.
    let reader = async {
        let mut code = ABNORMAL_CLOSURE;
        while let Some(next) = stream.next().await {
            match next {
                Ok(Message::Text(t)) => inbox.push_data(Event::new(Kind::Text, id, Bytes::from(t), 0)).await,
                Ok(Message::Binary(b)) => inbox.push_data(Event::new(Kind::Binary, id, b, 0)).await,
                Ok(Message::Close(frame)) => code = frame.map_or(1005, |f| u16::from(f.code)),
                Ok(_) => {}
                Err(e) => match classify(e) {
                    None => return (Ended { code, error: None }, None),
                    Some(f) => {
                        *fault.lock() = Some((code, f));
                        faulted.notify_one();
                        return std::future::pending().await;
                    }
                },
            }
        }
        (Ended { code, error: None }, None)
    };

    // The replies queued, and those the flow sends within ERROR_GRACE, go out before
    // the close frame that reports a protocol error.
    let grace = async {
        faulted.notified().await;
        tokio::time::sleep(ERROR_GRACE).await;
        (Ended { code: ABNORMAL_CLOSURE, error: None }, None)
    };

    let writer = async {
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = ping_due.notified() => {
                    if let Err(e) = sink.send(Message::Ping(Bytes::new())).await {
                        return write_failed(e, &cfg).await;
                    }
                    continue;
                }
            };
            let close = match first {
                None => 1001,
                Some(Outgoing::Close(code)) => code,
                Some(Outgoing::Msg(m)) => {
                    let mut written = m.len();
                    let mut result = sink.feed(m).await;
                    let mut close = None;
                    for _ in 1..FLUSH_EVERY {
                        if result.is_err() {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(Outgoing::Msg(m)) => {
                                written += m.len();
                                result = sink.feed(m).await;
                            }
                            Ok(Outgoing::Close(code)) => {
                                close = Some(code);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if result.is_ok() {
                        result = sink.flush().await;
                    }
                    shared.queued.fetch_sub(written, Ordering::Relaxed);
                    if let Err(e) = result {
                        return write_failed(e, &cfg).await;
                    }
                    match close {
                        Some(code) => code,
                        None => continue,
                    }
                }
            };
            let frame = CloseFrame { code: CloseCode::from(close), reason: Utf8Bytes::from_static("") };
            let _ = tokio::time::timeout(cfg.close_timeout, sink.send(Message::Close(Some(frame)))).await;
            // Give the peer time to answer; the reader ends the session when it does.
            tokio::time::sleep(cfg.close_timeout).await;
            return (Ended { code: ABNORMAL_CLOSURE, error: None }, None);
        }
    };

    // Runs beside reader and writer, so a peer that stops reading (the writer
    // blocked in a flush) is still found: by the queue cap or by the heartbeat.
    let watchdog = async {
        let mut beat = cfg.heartbeat.map(|p| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + p, p);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let (mut last_heard, mut silent_ticks) = (heard.load(Ordering::Relaxed), 0u32);
        // The idle timeout, checked four times per period: a silent peer is closed
        // after one to one and a quarter periods. The heartbeat, when on, rules.
        let idle = cfg.idle.filter(|_| cfg.heartbeat.is_none());
        let mut idle_check = idle.map(|d| tokio::time::interval((d / 4).max(Duration::from_millis(1))));
        let (mut idle_heard, mut quiet_since) = (heard.load(Ordering::Relaxed), tokio::time::Instant::now());
        loop {
            tokio::select! {
                _ = shared.overflowed.notified() => {
                    return (Ended { code: ABNORMAL_CLOSURE, error: None }, Some((1008, "peer too slow: send queue full".into())));
                }
                _ = async { idle_check.as_mut().expect("guarded").tick().await }, if idle_check.is_some() => {
                    let now_heard = heard.load(Ordering::Relaxed);
                    if now_heard != idle_heard || inbox.backed_up() {
                        (idle_heard, quiet_since) = (now_heard, tokio::time::Instant::now());
                    } else if idle.is_some_and(|d| quiet_since.elapsed() >= d) {
                        return (Ended { code: IDLE_CLOSE, error: None }, Some((IDLE_CLOSE, "idle timeout".into())));
                    }
                }
                _ = async { beat.as_mut().expect("guarded").tick().await }, if beat.is_some() => {
                    // Dropped after two whole intervals without a byte from the peer. A
                    // backed-up inbox means readers wait for the flow, not for the peer.
                    let now_heard = heard.load(Ordering::Relaxed);
                    if now_heard != last_heard || inbox.backed_up() {
                        (last_heard, silent_ticks) = (now_heard, 0);
                    } else {
                        silent_ticks += 1;
                    }
                    if silent_ticks >= 2 {
                        return (Ended { code: ABNORMAL_CLOSURE, error: Some("heartbeat timeout: no answer to ping".into()) }, None);
                    }
                    ping_due.notify_one();
                }
            }
        }
    };

    let (mut ended, failure) = tokio::select! {
        ended = reader => ended,
        ended = writer => ended,
        ended = watchdog => ended,
        ended = grace => ended,
    };
    // A peer's protocol error is what ended the session, whichever branch saw the
    // end: the grace, a write that failed once the peer was gone, the heartbeat.
    let failure = match fault.into_inner() {
        Some((code, f)) => {
            ended.code = code;
            Some(f)
        }
        None => failure,
    };
    if let Some((code, text)) = failure {
        // Tell the peer why before dropping the connection (1007, 1009, 1002, 1008...).
        let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(truncate(&text, 120)) };
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
        if code != IDLE_CLOSE {
            ended.error = Some(text);
        }
    }
    ended
}

/// A write failed. If the peer has started closing, what is left unsent is dropped
/// and the reader, which sees the close handshake through, ends the session with
/// the peer's code; this waits at most the close timeout for it.
async fn write_failed(e: WsError, cfg: &SessionConfig) -> (Ended, Option<(u16, String)>) {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let closing = matches!(
        e,
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Protocol(ProtocolError::SendAfterClosing)
    );
    if closing {
        tokio::time::sleep(cfg.close_timeout).await;
        return (Ended { code: ABNORMAL_CLOSURE, error: None }, None);
    }
    (Ended { code: ABNORMAL_CLOSURE, error: None }, classify(e))
}

/// A close reason must fit in a control frame (123 bytes); cut at a char boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
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

#[cfg(test)]
mod tests;
