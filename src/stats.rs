//! Live counters for the editor's WebSockets view (issue 14). A session counts in
//! its own shared struct (relaxed atomics, touched only by its task and its
//! senders); a config node counts opens, closes and refusals as they happen and
//! adds up its live sessions only when asked. The figures are a view and never
//! decide anything, so no ordering beyond `Relaxed` is needed.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// One session's traffic. Messages out are those taken into its queue; bytes are
/// wire bytes (frame headers and control frames included).
#[derive(Debug)]
pub struct SessionStats {
    pub msgs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// The most bytes its queue has held.
    pub queued_peak: AtomicUsize,
    /// Milliseconds since the Unix epoch when the session began.
    pub since_ms: u64,
    /// Subprotocol and peer address, set as the session opens: one allocation,
    /// `protocol` NUL `remote`, as a session's idle memory is what users count
    /// (issue 12). A protocol never holds a NUL: a listener's is a header token, a
    /// client's a header value, which the HTTP parser refuses with a NUL in it.
    about: Mutex<Option<Box<str>>>,
}

#[derive(Debug, Default, Clone)]
pub struct About {
    pub remote: String,
    pub protocol: String,
}

fn join_about(protocol: &str, remote: &str) -> Box<str> {
    [protocol, "\0", remote].concat().into_boxed_str()
}

/// (protocol, remote) of what `join_about` made.
fn split_about(about: &str) -> (&str, &str) {
    about.split_once('\0').unwrap_or((about, ""))
}

/// A hot-path counter update: relaxed, and compiled out under the `no-stats`
/// feature (the bench's build without counters).
#[inline(always)]
pub fn count(counter: &AtomicU64, n: u64) {
    #[cfg(not(feature = "no-stats"))]
    counter.fetch_add(n, Relaxed);
    #[cfg(feature = "no-stats")]
    let _ = (counter, n);
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Default for SessionStats {
    fn default() -> Self {
        SessionStats {
            msgs_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            msgs_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            queued_peak: AtomicUsize::new(0),
            since_ms: now_ms(),
            about: Mutex::new(None),
        }
    }
}

impl SessionStats {
    /// A load, and a store only when the peak rises: no read-modify-write per send.
    #[inline]
    pub fn note_queued(&self, queued: usize) {
        if cfg!(not(feature = "no-stats")) && queued > self.queued_peak.load(Relaxed) {
            self.queued_peak.store(queued, Relaxed);
        }
    }

    pub fn set_remote(&self, remote: &str) {
        let mut about = self.about.lock();
        let protocol = about.as_deref().map_or("", |a| split_about(a).0);
        *about = Some(join_about(protocol, remote));
    }

    pub fn set_protocol(&self, protocol: &str) {
        debug_assert!(!protocol.contains('\0'), "a subprotocol with a NUL");
        if !protocol.is_empty() {
            let mut about = self.about.lock();
            let remote = about.as_deref().map_or("", |a| split_about(a).1);
            *about = Some(join_about(protocol, remote));
        }
    }

    pub fn about(&self) -> About {
        let about = self.about.lock();
        let (protocol, remote) = about.as_deref().map_or(("", ""), split_about);
        About { remote: remote.to_owned(), protocol: protocol.to_owned() }
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            msgs_in: self.msgs_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            msgs_out: self.msgs_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.msgs_in += o.msgs_in;
        self.bytes_in += o.bytes_in;
        self.msgs_out += o.msgs_out;
        self.bytes_out += o.bytes_out;
    }
}

/// Why a connection was refused or a message dropped, as counted in Rust (the
/// origin list and `webSocketNodeVerifyClient` refuse in JS, which counts those).
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// At the listener's connection limit (503).
    TooMany = 0,
    /// Not a valid WebSocket handshake, or no common subprotocol.
    Handshake = 1,
    /// A client's connection attempt failed (refused, timed out, bad answer).
    ConnectFailed = 2,
    /// Without a valid credential (401).
    Unauthorized = 3,
}

/// A config node's counters.
#[derive(Debug, Default)]
pub struct NodeStats {
    opens: AtomicU64,
    open_now: AtomicUsize,
    peak: AtomicUsize,
    closes: Mutex<BTreeMap<u16, u64>>,
    /// The traffic, drops and queue peaks of sessions that have ended.
    ended: Mutex<Ended>,
    refused: [AtomicU64; 4],
    /// Sessions closed (1008) because their queue passed its cap.
    queue_full: AtomicU64,
}

#[derive(Debug, Default)]
struct Ended {
    traffic: Traffic,
    dropped: u64,
    queued_peak: usize,
}

/// What one live session contributes to its node's figures.
pub struct Live<'a> {
    pub stats: &'a SessionStats,
    pub queued: usize,
}

/// A config node's figures at one moment.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub connections: usize,
    pub peak: usize,
    pub opens: u64,
    pub closes: Vec<(u16, u64)>,
    pub traffic: Traffic,
    pub queued: usize,
    pub queued_peak: usize,
    pub dropped: u64,
    pub queue_full: u64,
    pub refused_too_many: u64,
    pub refused_handshake: u64,
    pub refused_auth: u64,
    pub connect_failed: u64,
}

impl NodeStats {
    pub fn opened(&self) {
        self.opens.fetch_add(1, Relaxed);
        let now = self.open_now.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    /// A session that had opened ended with `code`; what it did joins the totals.
    pub fn closed(&self, code: u16, stats: &SessionStats, dropped: u64, queue_full: bool) {
        self.open_now.fetch_sub(1, Relaxed);
        *self.closes.lock().entry(code).or_default() += 1;
        let mut ended = self.ended.lock();
        ended.traffic += stats.traffic();
        ended.dropped += dropped;
        ended.queued_peak = ended.queued_peak.max(stats.queued_peak.load(Relaxed));
        if queue_full {
            self.queue_full.fetch_add(1, Relaxed);
        }
    }

    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// The figures, with the live sessions' added to those of the ended ones.
    /// `live` are the sessions still in the table (open or closing); each gives
    /// its `dropped` count too.
    pub fn snapshot<'a>(&self, live: impl Iterator<Item = (Live<'a>, u64)>) -> Snapshot {
        let (mut traffic, dropped, queued_peak) = {
            let e = self.ended.lock();
            (e.traffic, e.dropped, e.queued_peak)
        };
        let mut s = Snapshot { traffic: Traffic::default(), dropped, queued_peak, ..Default::default() };
        for (l, dropped) in live {
            traffic += l.stats.traffic();
            s.queued += l.queued;
            s.queued_peak = s.queued_peak.max(l.stats.queued_peak.load(Relaxed));
            s.dropped += dropped;
        }
        s.traffic = traffic;
        s.connections = self.open_now.load(Relaxed);
        s.peak = self.peak.load(Relaxed);
        s.opens = self.opens.load(Relaxed);
        s.closes = self.closes.lock().iter().map(|(&c, &n)| (c, n)).collect();
        s.queue_full = self.queue_full.load(Relaxed);
        s.refused_too_many = self.refused[Refusal::TooMany as usize].load(Relaxed);
        s.refused_handshake = self.refused[Refusal::Handshake as usize].load(Relaxed);
        s.refused_auth = self.refused[Refusal::Unauthorized as usize].load(Relaxed);
        s.connect_failed = self.refused[Refusal::ConnectFailed as usize].load(Relaxed);
        s
    }
}

/// A row of a session list.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: u32,
    pub about: About,
    pub since_ms: u64,
    pub traffic: Traffic,
    pub queued: usize,
    pub queued_peak: usize,
    pub dropped: u64,
    pub rooms: Vec<String>,
}

/// How a session list is ordered before it is cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    Queued,
    MsgsIn,
    MsgsOut,
    Since,
}

impl Order {
    pub fn parse(s: Option<&str>) -> Option<Order> {
        Some(match s.unwrap_or("queued") {
            "queued" => Order::Queued,
            "in" => Order::MsgsIn,
            "out" => Order::MsgsOut,
            "since" => Order::Since,
            _ => return None,
        })
    }

    /// The key a session sorts by, largest first (oldest first for `Since`).
    pub fn key(self, stats: &SessionStats, queued: usize) -> u64 {
        match self {
            Order::Queued => queued as u64,
            Order::MsgsIn => stats.msgs_in.load(Relaxed),
            Order::MsgsOut => stats.msgs_out.load(Relaxed),
            Order::Since => u64::MAX - stats.since_ms,
        }
    }
}

/// Builds the rows for the `limit` sessions first in `order` among `live`
/// (id, stats, queued, dropped); `rooms_of` is asked only for those kept. Ties
/// go to the lower id, so a page is stable between polls.
pub fn top_sessions<'a>(
    live: impl Iterator<Item = (u32, &'a SessionStats, usize, u64)>,
    order: Order,
    limit: usize,
    mut rooms_of: impl FnMut(u32) -> Vec<String>,
) -> Vec<SessionRow> {
    let mut all: Vec<_> = live.map(|(id, s, q, d)| (order.key(s, q), id, s, q, d)).collect();
    let cmp = |a: &(u64, u32, &SessionStats, usize, u64), b: &(u64, u32, &SessionStats, usize, u64)| {
        b.0.cmp(&a.0).then(a.1.cmp(&b.1))
    };
    if all.len() > limit {
        all.select_nth_unstable_by(limit, cmp);
        all.truncate(limit);
    }
    all.sort_unstable_by(cmp);
    all.into_iter()
        .map(|(_, id, s, queued, dropped)| SessionRow {
            id,
            about: s.about(),
            since_ms: s.since_ms,
            traffic: s.traffic(),
            queued,
            queued_peak: s.queued_peak.load(Relaxed),
            dropped,
            rooms: rooms_of(id),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_protocol_and_remote_are_kept_in_either_order() {
        let about = |s: &SessionStats| {
            let a = s.about();
            (a.protocol, a.remote)
        };
        let s = SessionStats::default();
        assert_eq!(about(&s), (String::new(), String::new()));
        s.set_protocol("");
        s.set_remote("127.0.0.1:4000");
        assert_eq!(about(&s), ("".into(), "127.0.0.1:4000".into()));
        s.set_protocol("mqtt");
        assert_eq!(about(&s), ("mqtt".into(), "127.0.0.1:4000".into()));
        s.set_remote("[::1]:5");
        assert_eq!(about(&s), ("mqtt".into(), "[::1]:5".into()));
        let t = SessionStats::default();
        t.set_protocol("chat.v2");
        assert_eq!(about(&t), ("chat.v2".into(), String::new()));
        t.set_remote("");
        assert_eq!(about(&t), ("chat.v2".into(), String::new()));
    }

    #[test]
    fn a_node_adds_its_live_sessions_to_those_that_ended() {
        let node = NodeStats::default();
        let (a, b) = (SessionStats::default(), SessionStats::default());
        node.opened();
        node.opened();
        a.msgs_in.store(3, Relaxed);
        a.bytes_out.store(10, Relaxed);
        a.note_queued(100);
        node.closed(1000, &a, 2, false);
        b.msgs_out.store(5, Relaxed);
        b.note_queued(40);
        b.note_queued(7);
        node.opened();
        let s = node.snapshot(std::iter::once((Live { stats: &b, queued: 7 }, 1)));
        assert_eq!((s.connections, s.peak, s.opens), (2, 2, 3));
        assert_eq!(s.closes, vec![(1000, 1)]);
        assert_eq!(s.traffic, Traffic { msgs_in: 3, bytes_in: 0, msgs_out: 5, bytes_out: 10 });
        assert_eq!((s.queued, s.queued_peak, s.dropped), (7, 100, 3));
    }

    #[test]
    fn a_session_list_keeps_the_first_in_order_and_breaks_ties_by_id() {
        let stats: Vec<SessionStats> = (0..10).map(|_| SessionStats::default()).collect();
        let live = || stats.iter().enumerate().map(|(i, s)| (i as u32 + 1, s, (i % 4) * 10, 0));
        let rows = top_sessions(live(), Order::Queued, 3, |id| vec![format!("r{id}")]);
        let got: Vec<_> = rows.iter().map(|r| (r.id, r.queued)).collect();
        assert_eq!(got, vec![(4, 30), (8, 30), (3, 20)]);
        assert_eq!(rows[0].rooms, vec!["r4"]);
        assert_eq!(top_sessions(live(), Order::Queued, 50, |_| vec![]).len(), 10);
        assert_eq!(Order::parse(Some("bogus")), None);
    }
}

#[cfg(test)]
mod listener_tests {
    use crate::handshake::sample_request;
    use crate::inbox::Inbox;
    use crate::listener::{Listener, ListenerConfig};
    use crate::stats::Order;
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    async fn open(listener: &Listener) -> Result<WebSocketStream<DuplexStream>, u16> {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        listener.adopt_stream(ours, Vec::new(), &sample_request()).unwrap().map_err(|r| r.status)?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(theirs.read_u8().await.unwrap());
        }
        Ok(WebSocketStream::from_raw_socket(theirs, Role::Client, None).await)
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_counts_what_its_sessions_did_live_and_after_they_end() {
        let cfg = ListenerConfig { max_connections: Some(2), ..Default::default() };
        let listener = Listener::new(cfg, Inbox::new(Box::new(|_| {})));
        let mut a = open(&listener).await.unwrap();
        let _b = open(&listener).await.unwrap();
        assert_eq!(open(&listener).await.err(), Some(503), "the third is refused");
        for text in ["one", "two", "six"] {
            a.send(Message::text(text)).await.unwrap();
        }
        settle().await;
        let (total, rows) = listener.sessions(Order::MsgsIn, 10);
        assert_eq!((total, rows.len(), rows[0].traffic.msgs_in), (2, 2, 3));
        // Masked from the client: 2 header bytes, 4 of mask, 3 of text.
        assert_eq!(rows[0].traffic.bytes_in, 3 * 9);
        listener.send_many(vec![(rows[0].id, Message::text("hi")), (0, Message::text("all"))]);
        assert_eq!(a.next().await.unwrap().unwrap().to_text().unwrap(), "hi");
        assert_eq!(a.next().await.unwrap().unwrap().to_text().unwrap(), "all");
        let live = listener.stats();
        assert_eq!((live.connections, live.peak, live.opens, live.refused_too_many), (2, 2, 2, 1));
        assert_eq!((live.traffic.msgs_in, live.traffic.msgs_out), (3, 3));
        assert_eq!(live.traffic.bytes_out, 4 + 5 + 5, "a's two frames and b's one");
        let bye = CloseFrame { code: CloseCode::from(4000), reason: "bye".into() };
        a.close(Some(bye)).await.unwrap();
        while a.next().await.is_some() {}
        settle().await;
        let after = listener.stats();
        assert_eq!((after.connections, after.peak, after.opens), (1, 2, 2));
        assert_eq!(after.closes, vec![(4000, 1)]);
        // What `a` did stays counted after it has gone; its close frame added bytes.
        assert_eq!((after.traffic.msgs_in, after.traffic.msgs_out), (3, 3));
        assert!(after.traffic.bytes_out > live.traffic.bytes_out);
        assert_eq!(listener.sessions(Order::Queued, 10).0, 1);
        listener.close(1001).await;
    }
}
