//! The session's task: one future that reads, writes and keeps the session's
//! time, polled by hand so that its state is exactly the fields below.

use super::{Ended, SessionConfig, Shared, ABNORMAL_CLOSURE, ERROR_GRACE, IDLE_CLOSE};
use crate::codec::{self, Decoder, Fault, Item};
use crate::inbox::{Event, Inbox, Kind};
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;
use write::Wrote;

mod write;

/// Every read goes to this worker thread's buffer; a session keeps only what an
/// incomplete frame leaves over, so an idle one holds no buffer at all.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Pong frames waiting for a frame boundary, past which only the latest is kept.
const MAX_PONGS_BYTES: usize = 2048;
/// How long the close frame that reports a fault may take to write.
const FAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
    /// `Received::messages`, kept between reads (emptied) rather than grown anew for each.
    static RECEIVED: RefCell<Vec<(Kind, u32, Held)>> = const { RefCell::new(Vec::new()) };
}
/// A kept `RECEIVED` list beyond this many entries (a read of tiny messages) is let go.
const RECEIVED_KEPT: usize = 1024;

/// The messages of one read, handed to the inbox together: those whole within
/// the read share one allocation (not one each), and the inbox is locked once.
struct Received {
    /// Payloads that lay whole within the read, side by side.
    arena: BytesMut,
    messages: Vec<(Kind, u32, Held)>,
}

enum Held {
    /// In `arena`, from..to.
    Arena(usize, usize),
    /// Assembled from several reads or fragments.
    Own(Bytes),
}

impl Received {
    fn new() -> Self {
        Received { arena: BytesMut::new(), messages: RECEIVED.with(|kept| kept.take()) }
    }

    fn add(&mut self, kind: Kind, payload: codec::Payload<'_>, extra: u32, read_len: usize) {
        let held = match payload {
            codec::Payload::Borrowed(b) if !b.is_empty() => {
                if self.arena.capacity() == 0 {
                    // The read bounds what it can hold: one allocation per read.
                    self.arena.reserve(read_len);
                }
                let from = self.arena.len();
                self.arena.extend_from_slice(b);
                Held::Arena(from, self.arena.len())
            }
            own => Held::Own(own.into_bytes()),
        };
        self.messages.push((kind, extra, held));
    }

    /// Queues the messages for session `id`; returns how many there were.
    fn deliver(mut self, id: u32, inbox: &Arc<Inbox>) -> u64 {
        let count = self.messages.len() as u64;
        if count == 0 {
            return 0;
        }
        // Mostly headers or a frame left incomplete: an exact copy, so a read's
        // events keep at most about twice the bytes the inbox counts for them.
        let arena = if self.arena.len() < self.arena.capacity() / 2 {
            Bytes::copy_from_slice(&self.arena)
        } else {
            std::mem::take(&mut self.arena).freeze()
        };
        inbox.push_all(self.messages.drain(..).map(|(kind, extra, held)| {
            let data = match held {
                Held::Arena(from, to) => arena.slice(from..to),
                Held::Own(bytes) => bytes,
            };
            Event::new(kind, id, data, extra)
        }));
        count
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if self.messages.capacity() <= RECEIVED_KEPT {
            self.messages.clear();
            let list = std::mem::take(&mut self.messages);
            // During a thread's teardown the list just goes.
            let _ = RECEIVED.try_with(|kept| kept.replace(list));
        }
    }
}

/// Where the session is in its life.
#[derive(Debug)]
enum State {
    Open,
    /// The peer broke the protocol: no more reading; replies still go out until
    /// the grace ends (see `ERROR_GRACE`).
    Faulted,
    /// Writing our last close frame (`ctl`), ahead of the queue; then the end
    /// (`Rare::then`).
    Failing,
    /// We sent our close frame (the flow's, in queue order); waiting for the peer's.
    Closing,
    /// The peer sent its close frame; writing the reply (`ctl`).
    Replying,
    /// Close frames exchanged; a client waits for the server to close TCP.
    AwaitEof,
}

struct Beat {
    period: Duration,
    next: Instant,
    last_heard: u32,
    silent: u32,
}

struct Idle {
    after: Duration,
    next: Instant,
    last_heard: u32,
    since: Instant,
}

/// What the session times: boxed, as most sessions time nothing until they close.
#[derive(Default)]
struct Clock {
    beat: Option<Beat>,
    idle: Option<Idle>,
    /// The end of the error grace, of a close handshake, of our last close frame.
    deadline: Option<Instant>,
    /// Set to the earliest of the above.
    timer: Option<Pin<Box<Sleep>>>,
}

/// What a session needs only while it waits for the flow, answers pings, closes
/// or faults: boxed, and let go of once nothing is left in it.
#[derive(Default)]
struct Rare {
    /// Control frames that go at the next frame boundary: the replies to the
    /// peer's pings, or (winding down) our last close frame, ahead of the queue.
    ctl: Option<Bytes>,
    /// The peer's protocol error; whatever then ends the session, this is reported.
    fault: Option<Fault>,
    /// The reason in the peer's close frame, if it gave one.
    peer_reason: Option<Box<str>>,
    /// How the session ends once our last close frame is out (`State::Failing`).
    then: Option<Ended>,
    /// Waiting for the flow to take events: the socket is not read meanwhile.
    room: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.ctl.is_none()
            && self.fault.is_none()
            && self.peer_reason.is_none()
            && self.then.is_none()
            && self.room.is_none()
    }
}

/// A running session; resolves to how it ended. Its size is the task's share of
/// what an idle connection costs (see `an_idle_tcp_session_holds_under_800_bytes`
/// in listener.rs): what most sessions never need is in `rare` and `clock`.
pub struct Session<S> {
    io: S,
    id: u32,
    shared: Arc<Shared>,
    inbox: Arc<Inbox>,
    decoder: Decoder,
    /// Milliseconds (a u32 is 49 days).
    close_timeout_ms: u32,
    state: State,
    /// Reads that brought bytes, wrapping: the heartbeat and the idle timeout
    /// compare it with what it was.
    heard: u32,
    rare: Option<Box<Rare>>,
    clock: Option<Box<Clock>>,
    /// The peer's close code (1005: its close frame had none), 0 before it came.
    peer_code: u16,
    /// Frames at the queue's front left from the last batch (the first maybe
    /// partly written); `carried_close`: the last of them is our close frame.
    carried: u8,
    carried_close: bool,
    ping_due: bool,
    /// Our close frame is out: nothing more is written.
    close_out: bool,
    /// What our close frame being out means was acted on.
    close_noted: bool,
    dirty: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session on `io`, which has read `head` already; `shared` from `SessionHandle::new`.
    pub fn new(io: S, head: Vec<u8>, id: u32, shared: Arc<Shared>, inbox: Arc<Inbox>, cfg: &SessionConfig) -> Self {
        let now = Instant::now();
        let beat = cfg.heartbeat.map(|period| Beat { period, next: now + period, last_heard: 0, silent: 0 });
        let idle = cfg.idle.filter(|_| cfg.heartbeat.is_none()).map(|after| Idle {
            after,
            next: now + (after / 4).max(Duration::from_millis(1)),
            last_heard: 0,
            since: now,
        });
        let clock =
            (beat.is_some() || idle.is_some()).then(|| Box::new(Clock { beat, idle, deadline: None, timer: None }));
        // Rounded up: a timeout below a millisecond is not none.
        let close_timeout_ms = u32::try_from(cfg.close_timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX);
        let mut session = Session {
            io,
            id,
            decoder: Decoder::new(!shared.client, cfg.max_message_bytes),
            shared,
            inbox,
            close_timeout_ms,
            state: State::Open,
            heard: 0,
            rare: None,
            clock,
            peer_code: 0,
            carried: 0,
            carried_close: false,
            ping_due: false,
            close_out: false,
            close_noted: false,
            dirty: false,
        };
        let mut head = head;
        session.decode(&mut head);
        session
    }

    fn set_deadline(&mut self, at: Option<Instant>) {
        if at.is_some() || self.clock.is_some() {
            self.clock.get_or_insert_with(Default::default).deadline = at;
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.clock.as_ref().and_then(|c| c.deadline)
    }

    fn client(&self) -> bool {
        self.shared.client
    }

    fn close_timeout(&self) -> Duration {
        Duration::from_millis(self.close_timeout_ms.into())
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    /// Lets go of `rare` once nothing is left in it: an idle session holds none.
    fn tidy(&mut self) {
        if self.rare.as_ref().is_some_and(|r| r.is_empty()) {
            self.rare = None;
        }
    }

    /// The session's end: reported with the peer's fault if there was one.
    fn end(&mut self, code: u16, error: Option<String>) -> Ended {
        let (fault, peer_reason) = match self.rare.as_mut() {
            Some(r) => (r.fault.take(), r.peer_reason.take()),
            None => (None, None),
        };
        let ended = match fault {
            Some(fault) => Ended::new(ABNORMAL_CLOSURE, Some(fault.text)),
            None if code == self.peer_code => {
                Ended { code, error, reason: peer_reason.map(String::from).unwrap_or_default() }
            }
            None => Ended::new(code, error),
        };
        self.shared.ended.store(true, Ordering::Relaxed);
        // What was left unsent is freed now; its owner trims after the session
        // (`memory::session_freed` with `Shared::unsent`).
        let frames = std::mem::take(&mut *self.shared.frames.lock());
        drop(frames);
        ended
    }

    /// The end `fail` planned.
    fn end_as_planned(&mut self) -> Ended {
        let then = self.rare.as_mut().and_then(|r| r.then.take());
        debug_assert!(then.is_some(), "failing without a planned end");
        let then = then.unwrap_or_else(|| Ended::new(ABNORMAL_CLOSURE, None));
        self.end(then.code, then.error)
    }

    fn peer_gone(&mut self) -> Ended {
        let code = if self.peer_code == 0 { ABNORMAL_CLOSURE } else { self.peer_code };
        self.end(code, None)
    }

    /// Stop everything but writing `close` (ahead of the queue), then end as `then`.
    fn fail(&mut self, code: u16, reason: &str, then: Ended) {
        if matches!(self.state, State::Failing) {
            return;
        }
        let close = codec::control_frame(Control::Close, &codec::close_payload(code, reason), self.client());
        let rare = self.rare();
        (rare.ctl, rare.then) = (Some(close), Some(then));
        self.state = State::Failing;
        self.set_deadline(Some(Instant::now() + FAULT_CLOSE_TIMEOUT));
    }

    /// Decodes bytes from the peer, handing messages to the inbox.
    fn decode(&mut self, bytes: &mut [u8]) {
        if !matches!(self.state, State::Open | State::Closing) {
            return;
        }
        let (client, read_len) = (self.shared.client, bytes.len());
        let (rare, mut closed) = (&mut self.rare, None);
        let mut got = Received::new();
        let result = self.decoder.feed(bytes, &mut |item| match item {
            Item::Text(p, ascii) => got.add(Kind::Text, p, ascii as u32, read_len),
            Item::Binary(p) => got.add(Kind::Binary, p, 0, read_len),
            Item::Ping(p) => {
                // Every ping is answered (pongs queue up, as frames back to back),
                // up to a few; past that only the latest, as RFC 6455 §5.5.3 allows.
                let reply = codec::control_frame(Control::Pong, p, client);
                let pong = &mut rare.get_or_insert_with(Default::default).ctl;
                *pong = Some(match pong.take() {
                    Some(earlier) if earlier.len() < MAX_PONGS_BYTES => [&earlier[..], &reply[..]].concat().into(),
                    _ => reply,
                });
            }
            Item::Pong => {}
            Item::Close(p) => closed = Some(p.to_vec()),
        });
        let messages = got.deliver(self.id, &self.inbox);
        if messages > 0 {
            crate::stats::count(&self.shared.stats.msgs_in, messages);
        }
        if let Err(fault) = result {
            self.rare().fault = Some(fault);
            self.state = State::Faulted;
            self.set_deadline(Some(Instant::now() + ERROR_GRACE));
            return;
        }
        let Some(payload) = closed else { return };
        self.peer_code = match payload[..] {
            [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
            _ => 1005,
        };
        // The decoder checked the reason is UTF-8.
        if let Some(reason) = payload.get(2..).filter(|r| !r.is_empty()) {
            self.rare().peer_reason = std::str::from_utf8(reason).ok().map(Into::into);
        }
        match self.state {
            State::Open => {
                // The reply echoes the peer's close, ahead of anything queued.
                self.rare().ctl = Some(codec::control_frame(Control::Close, &payload, self.client()));
                self.state = State::Replying;
                self.set_deadline(Some(Instant::now() + self.close_timeout()));
            }
            State::Closing if self.close_out => self.closed_both_ways(),
            _ => {}
        }
    }

    /// Both close frames went; a server drops TCP now, a client waits for it.
    fn closed_both_ways(&mut self) {
        self.state = State::AwaitEof;
        let at = if self.client() {
            self.deadline().unwrap_or(Instant::now() + self.close_timeout())
        } else {
            Instant::now()
        };
        self.set_deadline(Some(at));
    }

    fn reading(&self) -> bool {
        matches!(self.state, State::Open | State::Closing) || (self.client() && matches!(self.state, State::AwaitEof))
    }

    /// Reads once, as much as the inbox has room for. Ready(false): the peer is gone.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if !self.reading() {
            return Poll::Pending;
        }
        let room = loop {
            if let Some(waiting) = self.rare.as_mut().and_then(|r| r.room.as_mut()) {
                // Waiting for the flow: the socket is not read, so TCP slows the peer.
                std::task::ready!(waiting.as_mut().poll(cx));
                self.rare().room = None;
            }
            match self.inbox.reserve(SCRATCH_BYTES) {
                0 => self.rare().room = Some(Box::pin(self.inbox.clone().room())),
                n => break n,
            }
        };
        let read = SCRATCH.with(|scratch| {
            let mut own;
            let mut borrowed = scratch.try_borrow_mut();
            let buf: &mut [u8] = match borrowed.as_mut() {
                Ok(b) => b,
                Err(_) => {
                    own = vec![0; SCRATCH_BYTES];
                    &mut own
                }
            };
            let mut read = ReadBuf::new(&mut buf[..room]);
            let n = match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(())) => read.filled().len(),
            };
            if n == 0 {
                return Poll::Ready(false);
            }
            self.heard = self.heard.wrapping_add(1);
            crate::stats::count(&self.shared.stats.bytes_in, n as u64);
            self.decode(&mut buf[..n]);
            Poll::Ready(true)
        });
        self.inbox.release(room);
        read
    }

    /// Our close frame is out: what that means in each state.
    fn after_close_out(&mut self) -> Option<Ended> {
        match std::mem::replace(&mut self.state, State::Open) {
            State::Failing => return Some(self.end_as_planned()),
            // The flow closed during the grace: the fault is what is reported.
            State::Faulted => return Some(self.end(ABNORMAL_CLOSURE, None)),
            State::Replying => self.closed_both_ways(),
            State::Closing if self.peer_code != 0 => self.closed_both_ways(),
            other => self.state = other,
        }
        None
    }

    /// Heartbeat, idle timeout and deadlines, as due at `now`.
    fn on_time(&mut self, now: Instant) -> Option<Ended> {
        let backed_up = self.inbox.backed_up();
        let clock = self.clock.as_mut()?;
        if let Some(beat) = clock.beat.as_mut().filter(|b| b.next <= now) {
            // Dropped after two whole intervals without a byte from the peer. A
            // backed-up inbox means readers wait for the flow, not for the peer.
            if self.heard != beat.last_heard || backed_up {
                (beat.last_heard, beat.silent) = (self.heard, 0);
            } else {
                beat.silent += 1;
            }
            beat.next = now + beat.period;
            if beat.silent >= 2 && matches!(self.state, State::Faulted) {
                // The grace is cut short: the close frame still reports the fault.
                clock.deadline = Some(now);
            } else if beat.silent >= 2 {
                return Some(self.end(ABNORMAL_CLOSURE, Some("heartbeat timeout: no answer to ping".into())));
            }
            self.ping_due = matches!(self.state, State::Open | State::Closing);
        }
        let mut idle_out = false;
        if let Some(idle) = clock.idle.as_mut().filter(|i| i.next <= now) {
            // Checked four times per period: closed after one to one and a quarter.
            idle.next = now + (idle.after / 4).max(Duration::from_millis(1));
            if self.heard != idle.last_heard || backed_up {
                (idle.last_heard, idle.since) = (self.heard, now);
            } else {
                idle_out = now - idle.since >= idle.after && matches!(self.state, State::Open);
            }
        }
        let due = clock.deadline.filter(|&d| d <= now).is_some();
        if idle_out {
            self.fail(IDLE_CLOSE, "idle timeout", Ended::new(IDLE_CLOSE, None));
        }
        if due {
            self.set_deadline(None);
            match std::mem::replace(&mut self.state, State::Open) {
                State::Faulted => {
                    let fault = self.rare.as_ref().and_then(|r| r.fault.as_ref());
                    let (code, text) = fault.map(|f| (f.code, f.text.clone())).unwrap_or_default();
                    self.fail(code, &text, Ended::new(ABNORMAL_CLOSURE, None));
                }
                State::Failing => return Some(self.end_as_planned()),
                State::Closing => return Some(self.end(ABNORMAL_CLOSURE, None)),
                _ => return Some(self.peer_gone()),
            }
        }
        None
    }

    /// Polls the one timer, set to the earliest of what is due; true if it fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(clock) = self.clock.as_mut() else { return false };
        let next = [clock.beat.as_ref().map(|b| b.next), clock.idle.as_ref().map(|i| i.next), clock.deadline];
        let Some(at) = next.into_iter().flatten().min() else {
            clock.timer = None;
            return false;
        };
        let timer = clock.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn poll_session(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        self.shared.waker.register(cx.waker());
        loop {
            if self.shared.overflow.load(Ordering::Relaxed) && !matches!(self.state, State::Failing) {
                let text = "peer too slow: send queue full";
                self.fail(1008, text, Ended::new(ABNORMAL_CLOSURE, Some(text.into())));
            }
            if self.poll_timer(cx) {
                if let Some(ended) = self.on_time(Instant::now()) {
                    return Poll::Ready(ended);
                }
                continue;
            }
            match self.poll_write(cx) {
                Wrote::Failed => {
                    return Poll::Ready(match std::mem::replace(&mut self.state, State::Open) {
                        State::Failing => self.end_as_planned(),
                        _ => self.peer_gone(),
                    })
                }
                Wrote::Done if self.close_out && !self.close_noted => {
                    self.close_noted = true;
                    if let Some(ended) = self.after_close_out() {
                        return Poll::Ready(ended);
                    }
                    continue;
                }
                _ => {}
            }
            match self.poll_read(cx) {
                Poll::Ready(true) => continue,
                Poll::Ready(false) => {
                    return Poll::Ready(match self.state {
                        State::Closing if self.peer_code == 0 => self.end(ABNORMAL_CLOSURE, None),
                        _ => self.peer_gone(),
                    })
                }
                Poll::Pending => {
                    self.tidy();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Session<S> {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        self.get_mut().poll_session(cx)
    }
}
