//! One WebSocket connection: a reader and a writer running concurrently in one
//! task, an unbounded send queue with a byte cap, and the heartbeat.

use crate::inbox::{Event, Inbox, Kind};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
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

/// The sending side of a session.
pub struct SessionHandle {
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<Shared>,
    max_queue_bytes: usize,
    drop_when_full: bool,
    /// Where drops are tallied for the flow: the config node's inbox and this session's id.
    drops_to: Option<(Arc<Inbox>, u32)>,
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
            drops_to: None,
        };
        (handle, rx, shared)
    }

    /// Report dropped messages to `inbox` as session `id` (drop policy).
    pub fn reporting_drops(mut self, inbox: Arc<Inbox>, id: u32) -> Self {
        self.drops_to = Some((inbox, id));
        self
    }

    /// Queue a message; false if the session is gone, its queue overflowed, or the
    /// message was dropped because the queue is full.
    pub fn send(&self, msg: Message) -> bool {
        let len = msg.len();
        let queued = self.shared.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.max_queue_bytes && self.drop_when_full {
            // Only one task sends to a session, so taking it back is exact.
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some((inbox, id)) = &self.drops_to {
                inbox.count_drop(*id);
            }
            return false;
        }
        if queued > self.max_queue_bytes {
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
    let (fault_tx, fault_rx) = tokio::sync::oneshot::channel();

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
                    Some(fault) => {
                        let _ = fault_tx.send((code, fault));
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
        match fault_rx.await {
            Ok((code, fault)) => {
                tokio::time::sleep(ERROR_GRACE).await;
                (Ended { code, error: None }, Some(fault))
            }
            Err(_) => std::future::pending().await,
        }
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
    if let Some((code, text)) = failure {
        // Tell the peer why before dropping the connection (1007, 1009, 1002, 1008...).
        let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(truncate(&text, 120)) };
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
        if code != IDLE_CLOSE {
            ended.error = Some(text);
        }
    }
    let held = shared.queued.load(Ordering::Relaxed);
    drop(rx);
    if held >= crate::memory::TRIM_AFTER_BYTES {
        crate::memory::release_freed();
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
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn inbox() -> Arc<Inbox> {
        Inbox::new(Box::new(|_| {}))
    }

    /// A server session whose peer never reads (a 1 KiB pipe it leaves full).
    async fn stalled(cfg: SessionConfig) -> (SessionHandle, tokio::task::JoinHandle<Ended>, tokio::io::DuplexStream) {
        let (ours, peer) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(cfg.websocket_config())).await;
        let (handle, rx, shared) = SessionHandle::new(&cfg);
        let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
        (handle, task, peer)
    }

    #[tokio::test(start_paused = true)]
    async fn sending_while_the_peer_closes_ends_with_its_code_and_no_error() {
        // A client session: the server closes (1000); after the client's reply the
        // flow sends one more message, then the server drops TCP.
        let cfg = SessionConfig::default();
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Client, Some(cfg.websocket_config())).await;
        let (handle, rx, shared) = SessionHandle::new(&cfg);
        let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
        let mut server = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
        let bye = CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("bye") };
        server.send(Message::Close(Some(bye))).await.unwrap();
        // The client has replied to the close: its sending side is closed now.
        while let Some(Ok(m)) = server.next().await {
            if m.is_close() {
                break;
            }
        }
        handle.send(Message::Text("one more".into()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(server); // the server closes TCP first, as RFC 6455 says
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended in time").unwrap();
        assert_eq!(ended.code, 1000, "{ended:?}");
        assert!(ended.error.is_none(), "{ended:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_message_is_refused_with_1009() {
        let cfg = SessionConfig { max_message_bytes: 1024, ..Default::default() };
        let (ours, peer) = tokio::io::duplex(64 * 1024);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(cfg.websocket_config())).await;
        let (_handle, rx, shared) = SessionHandle::new(&cfg);
        let task = tokio::spawn(run(ws, 1, rx, shared, inbox(), cfg));
        let mut client = WebSocketStream::from_raw_socket(peer, Role::Client, None).await;
        client.send(Message::Binary(vec![7u8; 4096].into())).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended in time").unwrap();
        assert!(ended.error.unwrap_or_default().contains("too big"));
        let close = loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(close, Some(1009));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_drops_a_peer_that_stopped_reading_even_mid_write() {
        let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
        let (handle, task, _peer) = stalled(cfg).await;
        assert!(handle.send(Message::Binary(vec![0u8; 64 * 1024].into())));
        let ended = tokio::time::timeout(Duration::from_secs(3), task).await.expect("dropped in time").unwrap();
        assert!(ended.error.unwrap_or_default().contains("heartbeat"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_frame_still_arriving_counts_as_a_live_peer() {
        use tokio::io::AsyncWriteExt;
        // Heartbeat 50 ms: two silent intervals would drop the peer. It uploads one
        // 60 000-byte frame in pieces over 400 ms and never answers a ping.
        let cfg = SessionConfig { heartbeat: Some(Duration::from_millis(50)), ..Default::default() };
        let (ours, mut peer) = tokio::io::duplex(256 * 1024);
        let (handle, rx, shared) = SessionHandle::new(&cfg);
        let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
        let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let inbox = Inbox::new(Box::new(move |i| {
            let _ = tx.send(i);
        }));
        let task = tokio::spawn(run(ws, 1, rx, shared, inbox, cfg));
        let len: usize = 60_000;
        let mut header = vec![0x82, 0x80 | 126];
        header.extend_from_slice(&(len as u16).to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: payload sent as is
        peer.write_all(&header).await.unwrap();
        for _ in 0..20 {
            peer.write_all(&[b'a'; 3000]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!task.is_finished(), "dropped while the frame was still arriving");
        }
        let inbox = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
        let batch = inbox.drain();
        assert_eq!(u32::from_le_bytes(batch[4..8].try_into().unwrap()), Kind::Binary as u32);
        assert_eq!(u32::from_le_bytes(batch[12..16].try_into().unwrap()) as usize, len);
        // The control: the same peer, silent from now on, is dropped.
        let ended = tokio::time::timeout(Duration::from_secs(2), task).await.expect("dropped in time").unwrap();
        assert!(ended.error.unwrap_or_default().contains("heartbeat"));
        drop(handle);
    }

    /// A server session on a `Prefixed` stream, and the inbox's wake-ups.
    async fn served(
        cfg: SessionConfig,
    ) -> (SessionHandle, tokio::task::JoinHandle<Ended>, tokio::io::DuplexStream, mpsc::UnboundedReceiver<Arc<Inbox>>)
    {
        let (ours, peer) = tokio::io::duplex(64 * 1024);
        let (handle, rx, shared) = SessionHandle::new(&cfg);
        let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
        let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
        let (tx, wakes) = mpsc::unbounded_channel();
        let inbox = Inbox::new(Box::new(move |i| {
            let _ = tx.send(i);
        }));
        (handle, tokio::spawn(run(ws, 1, rx, shared, inbox, cfg)), peer, wakes)
    }

    /// A masked text frame with mask key 0, so the payload goes as it is.
    fn text_frame_header(len: usize) -> Vec<u8> {
        assert!(len < 126);
        vec![0x81, 0x80 | len as u8, 0, 0, 0, 0]
    }

    /// Reads the next frame the server sent, as (opcode, payload), within 5 s.
    async fn next_frame(peer: &mut tokio::io::DuplexStream) -> (u8, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut head = [0u8; 2];
            peer.read_exact(&mut head).await.unwrap();
            assert!(head[1] < 126, "short frames only here");
            let mut payload = vec![0u8; head[1] as usize];
            peer.read_exact(&mut payload).await.unwrap();
            (head[0] & 0x0f, payload)
        };
        tokio::time::timeout(Duration::from_secs(5), read).await.expect("a frame within 5 s")
    }

    #[tokio::test(start_paused = true)]
    async fn the_flows_reply_goes_out_before_the_close_that_reports_a_protocol_error() {
        use tokio::io::AsyncWriteExt;
        let (handle, task, mut peer, mut wakes) = served(SessionConfig::default()).await;
        // As Autobahn 3.2: a good message, then a frame with a reserved bit set.
        let mut bytes = text_frame_header(5);
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0xa1, 0x80, 0, 0, 0, 0]);
        peer.write_all(&bytes).await.unwrap();
        // The flow answers 10 ms after the message reaches it, and again after the grace.
        let inbox = wakes.recv().await.unwrap();
        assert_eq!(u32::from_le_bytes(inbox.drain()[4..8].try_into().unwrap()), Kind::Text as u32);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(handle.send(Message::text("echo")));
        let (opcode, payload) = next_frame(&mut peer).await;
        assert_eq!((opcode, payload.as_slice()), (1, &b"echo"[..]), "the reply comes first");
        tokio::time::sleep(ERROR_GRACE).await;
        handle.send(Message::text("too late"));
        let (opcode, payload) = next_frame(&mut peer).await;
        assert_eq!(opcode, 8, "then the close frame, not the late reply");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
        assert!(ended.error.unwrap_or_default().contains("protocol error"));
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_utf8_fails_while_its_frame_is_still_arriving() {
        use tokio::io::AsyncWriteExt;
        let (_handle, task, mut peer, _wakes) = served(SessionConfig::default()).await;
        // As Autobahn 6.4.3: one text frame in three chops a second apart, the second
        // making it invalid (f4 90: past U+10FFFF).
        let good = "κόσμε".as_bytes();
        let mut bytes = text_frame_header(good.len() + 4 + 6);
        bytes.extend_from_slice(good);
        peer.write_all(&bytes).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!task.is_finished(), "a valid start is accepted");
        peer.write_all(b"\xf4\x90\x80\x80").await.unwrap();
        let (opcode, payload) = tokio::time::timeout(Duration::from_secs(1), next_frame(&mut peer))
            .await
            .expect("closed before the rest of the frame came");
        assert_eq!(opcode, 8);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
        assert!(ended.error.unwrap_or_default().contains("UTF-8"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_read_with_the_start_of_bad_text_is_still_delivered() {
        use tokio::io::AsyncWriteExt;
        let (_handle, task, mut peer, mut wakes) = served(SessionConfig::default()).await;
        let mut bytes = text_frame_header(2);
        bytes.extend_from_slice(b"ok");
        bytes.extend_from_slice(&text_frame_header(10));
        bytes.extend_from_slice(b"ab\xff");
        peer.write_all(&bytes).await.unwrap();
        let batch = wakes.recv().await.unwrap().drain();
        assert_eq!(u32::from_le_bytes(batch[0..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(batch[4..8].try_into().unwrap()), Kind::Text as u32);
        assert_eq!(&batch[batch.len() - 2..], b"ok");
        let (opcode, payload) = next_frame(&mut peer).await;
        assert_eq!((opcode, u16::from_be_bytes([payload[0], payload[1]])), (8, 1007));
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("ended").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn queue_cap_closes_a_peer_that_stopped_reading() {
        let cfg = SessionConfig { max_queue_bytes: 100 * 1024, ..Default::default() };
        let (handle, task, _peer) = stalled(cfg).await;
        let refused = (0..20).filter(|_| !handle.send(Message::Binary(vec![0u8; 16 * 1024].into()))).count();
        assert!(refused > 0, "sends past the cap are refused");
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("closed in time").unwrap();
        assert!(ended.error.unwrap_or_default().contains("send queue full"));
    }

    /// A server session over a pipe, with its peer's side as a client stream.
    async fn pair(cfg: SessionConfig) -> (tokio::task::JoinHandle<Ended>, WebSocketStream<tokio::io::DuplexStream>) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (handle, rx, shared) = SessionHandle::new(&cfg);
        let wire = crate::stream::Prefixed::new(Bytes::new(), ours, shared.heard.clone());
        let ws = WebSocketStream::from_raw_socket(wire, Role::Server, Some(cfg.websocket_config())).await;
        let task = tokio::spawn(async move {
            let _keep = handle;
            run(ws, 1, rx, shared, inbox(), cfg).await
        });
        (task, WebSocketStream::from_raw_socket(theirs, Role::Client, None).await)
    }

    async fn close_frame(peer: &mut WebSocketStream<tokio::io::DuplexStream>) -> Option<(u16, String)> {
        loop {
            match peer.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| (u16::from(f.code), f.reason.to_string())),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_closes_a_silent_peer_with_1001_and_spares_a_talking_one() {
        let cfg = SessionConfig { idle: Some(Duration::from_millis(100)), ..Default::default() };
        let (silent_task, mut silent) = pair(cfg.clone()).await;
        let (talking_task, mut talking) = pair(cfg).await;
        let talker = tokio::spawn(async move {
            for i in 0..25 {
                talking.send(Message::text(format!("{i}"))).await.unwrap();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            talking
        });
        let ended = tokio::time::timeout(Duration::from_secs(1), silent_task).await.expect("closed in time").unwrap();
        assert_eq!(ended.code, IDLE_CLOSE);
        assert!(ended.error.is_none(), "an idle close is not an error: {ended:?}");
        assert_eq!(close_frame(&mut silent).await, Some((1001, "idle timeout".into())));
        // The control: the peer that kept talking for the whole second is still there.
        let _talking = talker.await.unwrap();
        assert!(!talking_task.is_finished(), "a peer that talks was closed");
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_heartbeat_on_the_idle_timeout_gives_way_to_it() {
        let cfg = SessionConfig {
            heartbeat: Some(Duration::from_millis(100)),
            idle: Some(Duration::from_millis(10)),
            ..Default::default()
        };
        // This peer sends nothing of its own, but reads, so it answers pings.
        let (answering_task, mut answering) = pair(cfg.clone()).await;
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = answering.next().await {} });
        let (_handle, mute_task, _mute) = stalled(cfg).await;
        let ended = tokio::time::timeout(Duration::from_secs(2), mute_task).await.expect("dropped in time").unwrap();
        assert!(
            ended.error.unwrap_or_default().contains("heartbeat"),
            "the heartbeat, not the idle timeout, drops the mute peer"
        );
        assert!(!answering_task.is_finished(), "a peer answering pings was closed as idle");
        reader.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_drop_policy_keeps_a_peer_that_stopped_reading_and_counts_the_drops() {
        let cap = 100 * 1024;
        let (tx, mut wakes) = tokio::sync::mpsc::unbounded_channel();
        let inbox = Inbox::new(Box::new(move |i| {
            let _ = tx.send(i);
        }));
        let dropping = SessionConfig { max_queue_bytes: cap, drop_when_full: true, ..Default::default() };
        let (ours, _peer) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Server, Some(dropping.websocket_config())).await;
        let (handle, rx, shared) = SessionHandle::new(&dropping);
        let handle = handle.reporting_drops(inbox.clone(), 7);
        let task = tokio::spawn(run(ws, 7, rx, shared.clone(), inbox, dropping));
        // The control: the same stalled peer under the close policy is closed.
        let (closing, closing_task, _closing_peer) =
            stalled(SessionConfig { max_queue_bytes: cap, ..Default::default() }).await;
        let chunk = Message::Binary(vec![0u8; 16 * 1024].into());
        let refused = (0..20).filter(|_| !handle.send(chunk.clone())).count();
        assert!(refused > 0, "sends past the cap are dropped");
        for _ in 0..20 {
            let _ = closing.send(chunk.clone());
        }
        let closed = tokio::time::timeout(Duration::from_secs(5), closing_task).await.expect("closed in time").unwrap();
        assert!(closed.error.unwrap_or_default().contains("send queue full"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!task.is_finished(), "the drop policy closed the session");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), refused as u64);
        let batch = wakes.recv().await.unwrap().drain();
        let word = |i: usize| u32::from_le_bytes(batch[i..i + 4].try_into().unwrap());
        assert_eq!((word(0), word(4), word(8), word(16)), (1, Kind::Dropped as u32, 7, refused as u32));
        // What was queued before the cap still fits in: room again once the peer reads.
        assert!(shared.queued.load(Ordering::Relaxed) <= cap);
    }
}
