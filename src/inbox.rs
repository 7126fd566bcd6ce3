//! Inbound events of one config node, queued by session tasks and drained by the
//! JS thread in batches: one N-API crossing carries many messages.
//!
//! Batch layout (one Buffer, little-endian u32s):
//! `[count] [kind, session, len, extra] * count [payload bytes ...]`

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A session opened (listener: a client connected; client: the connection is up).
    /// The payload: the negotiated subprotocol (its first `extra` bytes), then what JS
    /// handed over to announce (a listener's connect info); empty for a listener
    /// session JS asked nothing of.
    Open = 1,
    /// A text message; `extra` is 1 if it is all ASCII (JS copies it into a string
    /// as Latin-1, which skips the UTF-8 decoder's scan), else 0.
    Text = 2,
    Binary = 3,
    /// A session ended; `extra` is the close code (1006 when none was received),
    /// the payload the peer's close reason.
    Close = 4,
    /// Something went wrong; the payload is the error text, `extra` 0.
    Error = 5,
    /// Client mode: a connection attempt started (status "connecting").
    Connecting = 6,
    /// Messages for the session were dropped because its send queue was full
    /// (drop policy); `extra` is how many since the last batch.
    Dropped = 7,
    /// The rooms a session is in, as the flow asked (`crate::commands::ROOMS`):
    /// `extra` of them, each a u32 (LE) byte length and the name's UTF-8.
    Rooms = 8,
    /// Client mode: not dialling until the flow asks (disconnected by a message,
    /// connecting on request only, or reconnecting turned off).
    Idle = 9,
}

#[derive(Debug)]
pub struct Event {
    pub kind: Kind,
    pub session: u32,
    pub data: Bytes,
    pub extra: u32,
}

impl Event {
    pub fn new(kind: Kind, session: u32, data: impl Into<Bytes>, extra: u32) -> Self {
        Event { kind, session, data: data.into(), extra }
    }
}

/// Caps of one batch: bigger batches cost more in young-generation GC than they save.
pub const BATCH_MAX_EVENTS: usize = 256;
pub const BATCH_MAX_BYTES: usize = 256 * 1024;
/// The largest payload one event may carry (and so the largest message): the
/// batch gives its length as a u32, and a batch of it alone must fit one Buffer
/// (Node's limit: 4 GiB on 64-bit, 1 GiB less one byte on 32-bit before Node 22).
#[cfg(target_pointer_width = "64")]
pub const MAX_EVENT_BYTES: usize = 4095 << 20;
#[cfg(not(target_pointer_width = "64"))]
pub const MAX_EVENT_BYTES: usize = 1023 << 20;
/// Queued payload bytes, or events, past which session readers wait (TCP then slows
/// the peers) until the flow has taken the queue down to half of both: readers then
/// refill it in one burst, rather than all waking for each batch the flow takes
/// (a wake-up per 16 messages of 64 B, each one preempting the JS thread). Reads
/// are capped at the room left below the bytes mark (`reserve`); the event count
/// is checked before each read.
pub const HIGH_WATER_BYTES: usize = 8 * 1024 * 1024;
pub const HIGH_WATER_EVENTS: usize = 32 * BATCH_MAX_EVENTS;
/// Room below the bytes mark too small for a read worth making: readers then wait
/// as if the mark were reached.
const MIN_READ: usize = 4096;

type Wake = Box<dyn Fn(Arc<Inbox>) + Send + Sync>;

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    bytes: usize,
    /// Drops per session since the last batch: one event each, however many drops.
    drops: HashMap<u32, u32>,
    /// JS has been woken and pulls until nothing is left: no wake-up is needed.
    scheduled: bool,
    /// Readers wait: the queue reached a high-water mark and is not yet down to half.
    full: bool,
    /// Bytes that readers are reading now (`reserve`), counted as queued: readers
    /// on other threads cannot be granted the same room.
    reserved: usize,
    closed: bool,
}

impl State {
    /// Queues `ev`; true if the JS thread must be woken for it.
    fn push(&mut self, ev: Event) -> bool {
        if self.closed {
            return false;
        }
        if ev.kind == Kind::Close && !self.drops.is_empty() {
            // A session's drops reach JS before its end.
            if let Some(count) = self.drops.remove(&ev.session) {
                self.queue.push_back(Event::new(Kind::Dropped, ev.session, Bytes::new(), count));
            }
        }
        self.bytes += ev.data.len();
        self.queue.push_back(ev);
        self.full |= self.bytes >= HIGH_WATER_BYTES || self.queue.len() >= HIGH_WATER_EVENTS;
        !std::mem::replace(&mut self.scheduled, true)
    }
}

pub struct Inbox {
    state: Mutex<State>,
    space: Notify,
    wake: Mutex<Option<Wake>>,
}

impl Inbox {
    pub fn new(wake: Wake) -> Arc<Self> {
        Arc::new(Inbox { state: Mutex::new(State::default()), space: Notify::new(), wake: Mutex::new(Some(wake)) })
    }

    /// Queue an event regardless of the high-water mark (control events, errors).
    pub fn push(self: &Arc<Self>, ev: Event) {
        self.push_all(std::iter::once(ev));
    }

    /// `push` for several events, in order, under one lock and with one wake-up.
    pub fn push_all(self: &Arc<Self>, events: impl Iterator<Item = Event>) {
        let wake_now = {
            let mut s = self.state.lock();
            events.fold(false, |wake, ev| s.push(ev) | wake)
        };
        if wake_now {
            self.wake();
        }
    }

    /// Count `n` messages dropped for `session`; they reach JS as one `Dropped`
    /// event per session and batch, so a flood of drops costs JS nothing more.
    pub fn count_drops(self: &Arc<Self>, session: u32, n: u32) {
        let wake_now = {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            let count = s.drops.entry(session).or_insert(0);
            *count = count.saturating_add(n);
            !std::mem::replace(&mut s.scheduled, true)
        };
        if wake_now {
            self.wake();
        }
    }

    /// How many bytes a reader may read now, up to `want`: the room left below the
    /// bytes mark, less what other readers are reading, so that what reads bring
    /// never takes the queue past it. 0: wait for `room`. Held until `release`,
    /// once what was read is decoded and queued. (A message assembled from several
    /// reads counts once it is complete, so such a message can still pass the mark.)
    pub fn reserve(&self, want: usize) -> usize {
        let mut s = self.state.lock();
        if s.closed {
            // Discarded anyway: read freely.
            return want;
        }
        if s.full {
            return 0;
        }
        let grant = want.min(HIGH_WATER_BYTES.saturating_sub(s.bytes + s.reserved));
        if grant < want.min(MIN_READ) {
            // Within a read of the mark: as good as full.
            s.full = true;
            return 0;
        }
        s.reserved += grant;
        grant
    }

    /// The read that `reserve` granted `granted` bytes is done.
    pub fn release(&self, granted: usize) {
        let resume = {
            let mut s = self.state.lock();
            s.reserved = s.reserved.saturating_sub(granted);
            // Full because of what readers held, not what is queued (many workers,
            // a small queue): nothing may ever `take`, so the room comes back here.
            let resume = s.full && s.bytes <= HIGH_WATER_BYTES / 2 && s.queue.len() <= HIGH_WATER_EVENTS / 2;
            s.full &= !resume;
            resume
        };
        if resume {
            self.space.notify_waiters();
        }
    }

    /// Waits until the queue has room again (or is closed). Owned, so a
    /// session can hold it while it waits and drop it when it does not.
    pub async fn room(self: Arc<Self>) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.state.lock();
                if s.closed || !s.full {
                    return;
                }
            }
            notified.await;
        }
    }

    /// True while the queue is full (readers are waiting for the flow).
    pub fn backed_up(&self) -> bool {
        self.state.lock().full
    }

    fn wake(self: &Arc<Self>) {
        if let Some(w) = self.wake.lock().as_ref() {
            w(self.clone());
        }
    }

    /// Tests: the payload bytes and the events queued.
    #[cfg(test)]
    pub fn queued(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.bytes, s.queue.len())
    }

    /// Tests: the payloads queued, as the events hold them.
    #[cfg(test)]
    pub fn queued_payloads(&self) -> Vec<Bytes> {
        self.state.lock().queue.iter().map(|ev| ev.data.clone()).collect()
    }

    /// Take one batch, encoded as described at the top of this file.
    #[cfg(test)]
    pub fn drain(self: &Arc<Self>) -> Vec<u8> {
        let batch = self.take();
        let mut out = vec![0; batch.encoded_len()];
        batch.encode_into(&mut out);
        out
    }

    /// Tests: a wake-up's batch, then what JS's pulls on the next turns come to:
    /// the pulling ends when nothing is left (the next event wakes JS again), or
    /// else the rest is announced as another wake-up.
    #[cfg(test)]
    pub fn drain_as_js(self: &Arc<Self>) -> Vec<u8> {
        let out = self.drain();
        let more = {
            let mut s = self.state.lock();
            let more = !(s.queue.is_empty() && s.drops.is_empty());
            s.scheduled = more;
            more
        };
        if more {
            self.wake();
        }
        out
    }

    /// Take one batch, to be encoded into the Buffer JS gets, on the JS thread
    /// after a wake-up. JS then pulls the rest (`pull`) until none is left; only
    /// then does a new event wake it again.
    pub fn take(self: &Arc<Self>) -> Batch {
        let (batch, resume) = {
            let mut s = self.state.lock();
            let mut events = Vec::with_capacity(s.queue.len().min(BATCH_MAX_EVENTS));
            let mut bytes = 0;
            while let Some(ev) = s.queue.front() {
                if !events.is_empty() && (events.len() == BATCH_MAX_EVENTS || bytes + ev.data.len() > BATCH_MAX_BYTES) {
                    break;
                }
                bytes += ev.data.len();
                events.push(s.queue.pop_front().expect("front exists"));
            }
            s.bytes -= bytes;
            if !s.drops.is_empty() {
                let room = BATCH_MAX_EVENTS.saturating_sub(events.len());
                let tallied: Vec<(u32, u32)> = s.drops.iter().take(room).map(|(&k, &v)| (k, v)).collect();
                for (session, count) in tallied {
                    s.drops.remove(&session);
                    events.push(Event::new(Kind::Dropped, session, Bytes::new(), count));
                }
            }
            let resume = s.full && s.bytes <= HIGH_WATER_BYTES / 2 && s.queue.len() <= HIGH_WATER_EVENTS / 2;
            s.full &= !resume;
            (Batch { events, bytes, inbox: self.clone() }, resume)
        };
        if resume {
            self.space.notify_waiters();
        }
        batch
    }

    /// The next batch, or None when nothing waits (the next event then wakes JS).
    /// JS pulls one batch per event-loop turn, after the msgs of the previous one
    /// are delivered. (A wake-up per batch, scheduled from the callback that took
    /// the previous one, made Node run up to 1000 of them in one turn: 256 000 msgs
    /// waiting in setImmediate, and scavenges that took a third of the JS thread.)
    pub fn pull(self: &Arc<Self>) -> Option<Batch> {
        {
            let mut s = self.state.lock();
            if s.queue.is_empty() && s.drops.is_empty() {
                s.scheduled = false;
                return None;
            }
        }
        Some(self.take())
    }

    /// The node is closing and JS takes nothing more: what is queued is dropped,
    /// and so is every event from now on, so readers never wait for room. Sessions
    /// then read their peers' answers to our close frames at once.
    pub fn discard(&self) {
        {
            let mut s = self.state.lock();
            s.closed = true;
            s.queue.clear();
            s.drops.clear();
            s.bytes = 0;
            s.full = false;
        }
        self.space.notify_waiters();
    }

    /// Events taken that JS could not get (see `Batch::deliver`) go back to the
    /// front of the queue, in order, to be taken again.
    fn put_back(&self, events: Vec<Event>, bytes: usize) {
        let mut s = self.state.lock();
        if s.closed {
            return;
        }
        s.bytes += bytes;
        for ev in events.into_iter().rev() {
            s.queue.push_front(ev);
        }
        s.full |= s.bytes >= HIGH_WATER_BYTES || s.queue.len() >= HIGH_WATER_EVENTS;
    }

    /// Discard everything (`discard`) and drop the wake-up (releasing the JS callback).
    pub fn close(&self) {
        self.discard();
        self.wake.lock().take();
    }
}

/// Events taken from the queue. JS gets them encoded into a Buffer of its own by one
/// copy, on the JS thread (the Buffer cannot be made elsewhere, and an external one
/// is not an option: TRANSPORT-NOTES §3).
pub struct Batch {
    events: Vec<Event>,
    /// Payload bytes of `events`.
    bytes: usize,
    /// Where the events go back if JS cannot get them.
    inbox: Arc<Inbox>,
}

impl Batch {
    /// Encodes the batch into the Buffer `alloc` gives for its length. Without one
    /// (JS could not allocate it) the events go back to the inbox, to be taken
    /// again, whole and in order; false then.
    pub fn deliver<'a>(self, alloc: impl FnOnce(usize) -> Option<&'a mut [u8]>) -> bool {
        match alloc(self.encoded_len()) {
            Some(out) => {
                self.encode_into(out);
                true
            }
            None => {
                self.inbox.put_back(self.events, self.bytes);
                false
            }
        }
    }

    pub fn encoded_len(&self) -> usize {
        4 + 16 * self.events.len() + self.bytes
    }

    /// Whether a binary message of `min` bytes or more is in the batch (JS hands
    /// those to the flow as views of the batch's memory).
    pub fn has_binary_from(&self, min: usize) -> bool {
        self.events.iter().any(|e| e.kind == Kind::Binary && e.data.len() >= min)
    }

    /// Writes the layout at the top of this file into `out`, which must be
    /// `encoded_len()` bytes long; anything else gets zeros, an empty batch (this
    /// runs in a callback on the JS thread, where a panic must not happen).
    pub fn encode_into(&self, out: &mut [u8]) {
        if out.len() != self.encoded_len() {
            out.fill(0);
            return;
        }
        let (head, mut payloads) = out.split_at_mut(4 + 16 * self.events.len());
        let (count, entries) = head.split_at_mut(4);
        count.copy_from_slice(&(self.events.len() as u32).to_le_bytes());
        for (e, entry) in self.events.iter().zip(entries.chunks_exact_mut(16)) {
            for (v, field) in
                [e.kind as u32, e.session, e.data.len() as u32, e.extra].into_iter().zip(entry.chunks_exact_mut(4))
            {
                field.copy_from_slice(&v.to_le_bytes());
            }
            let (dst, rest) = payloads.split_at_mut(e.data.len());
            dst.copy_from_slice(&e.data);
            payloads = rest;
        }
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn counting() -> (Arc<Inbox>, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        (
            Inbox::new(Box::new(move |_| {
                w.fetch_add(1, Ordering::SeqCst);
            })),
            wakes,
        )
    }

    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
    }

    #[test]
    fn one_wake_for_many_events_and_layout_is_stable() {
        let (inbox, wakes) = counting();
        inbox.push(Event::new(Kind::Open, 7, Bytes::new(), 0));
        inbox.push(Event::new(Kind::Text, 7, "hi", 0));
        inbox.push(Event::new(Kind::Close, 7, Bytes::new(), 1000));
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0), 3);
        assert_eq!((u32_at(&b, 20), u32_at(&b, 24), u32_at(&b, 28)), (Kind::Text as u32, 7, 2));
        assert_eq!(u32_at(&b, 36 + 12), 1000);
        assert_eq!(&b[4 + 48..], b"hi");
        inbox.push(Event::new(Kind::Text, 1, "x", 0));
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "JS pulls what came meanwhile: no wake-up");
        assert_eq!(inbox.pull().map(|b| b.encoded_len()), Some(4 + 16 + 1));
        assert!(inbox.pull().is_none());
        inbox.push(Event::new(Kind::Text, 1, "y", 0));
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "an inbox pulled empty wakes again");
    }

    #[test]
    fn a_batch_tells_whether_it_holds_a_binary_message_js_would_view() {
        let (inbox, _) = counting();
        inbox.push(Event::new(Kind::Text, 1, vec![b'x'; 5000], 0));
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; 4095], 0));
        let batch = inbox.pull().unwrap();
        assert!(!batch.has_binary_from(4096), "long text and a shorter binary: copies in JS");
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; 4096], 0));
        assert!(inbox.pull().unwrap().has_binary_from(4096));
    }

    #[test]
    fn batches_are_capped_and_the_rest_pulled_without_a_wake_up() {
        let (inbox, wakes) = counting();
        for _ in 0..BATCH_MAX_EVENTS + 10 {
            inbox.push(Event::new(Kind::Text, 1, "m", 0));
        }
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0) as usize, BATCH_MAX_EVENTS);
        let rest = inbox.pull().expect("the rest waits");
        assert_eq!(rest.encoded_len(), 4 + 10 * (16 + 1));
        assert!(inbox.pull().is_none());
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "one wake-up for all of it");
    }

    #[test]
    fn a_buffer_of_the_wrong_size_gets_an_empty_batch_not_a_panic() {
        let (inbox, _) = counting();
        inbox.push(Event::new(Kind::Text, 1, "hello", 0));
        let batch = inbox.take();
        for len in [0, 3, batch.encoded_len() - 1, batch.encoded_len() + 1] {
            let mut out = vec![0xff; len];
            batch.encode_into(&mut out);
            assert!(out.iter().all(|&b| b == 0), "{len} bytes");
        }
    }

    /// A batch's events as (kind, session, extra, payload).
    fn events_of(b: &[u8]) -> Vec<(u32, u32, u32, Vec<u8>)> {
        let mut at = 4 + 16 * u32_at(b, 0) as usize;
        (0..u32_at(b, 0) as usize)
            .map(|i| {
                let h = 4 + 16 * i;
                let len = u32_at(b, h + 8) as usize;
                at += len;
                (u32_at(b, h), u32_at(b, h + 4), u32_at(b, h + 12), b[at - len..at].to_vec())
            })
            .collect()
    }

    #[test]
    fn a_batch_js_could_not_allocate_is_taken_again_whole_and_in_order() {
        let (inbox, _) = counting();
        for i in 0..BATCH_MAX_EVENTS + 3 {
            inbox.push(Event::new(Kind::Text, 1, i.to_string(), 0));
        }
        inbox.count_drops(2, 5);
        assert_eq!(u32_at(&inbox.drain(), 0) as usize, BATCH_MAX_EVENTS);
        let lost = inbox.take();
        assert!(!lost.deliver(|_| None), "no Buffer: nothing delivered");
        // Meanwhile a session sent more, and dropped more.
        inbox.push(Event::new(Kind::Text, 1, "later", 0));
        inbox.count_drops(2, 1);
        let again = inbox.pull().expect("the events are still there");
        let mut out = vec![0; again.encoded_len()];
        let len = out.len();
        assert!(again.deliver(|n| (n == len).then_some(&mut out[..])));
        let text = |s: &str| (Kind::Text as u32, 1, 0, s.as_bytes().to_vec());
        let dropped = |n| (Kind::Dropped as u32, 2, n, Vec::new());
        assert_eq!(events_of(&out), [text("256"), text("257"), text("258"), dropped(5), text("later"), dropped(1)]);
        assert!(inbox.pull().is_none());
    }

    #[test]
    fn an_oversized_event_still_goes_alone() {
        let (inbox, _) = counting();
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; BATCH_MAX_BYTES * 2], 0));
        inbox.push(Event::new(Kind::Text, 1, "after", 0));
        assert_eq!(u32_at(&inbox.drain(), 0), 1);
        assert_eq!(u32_at(&inbox.drain(), 0), 1);
    }

    #[test]
    fn drops_are_tallied_into_one_event_per_session_after_the_queued_events() {
        let (inbox, wakes) = counting();
        inbox.push(Event::new(Kind::Text, 1, "m", 0));
        for _ in 0..1000 {
            inbox.count_drops(9, 1);
        }
        inbox.count_drops(4, 1);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0), 3);
        assert_eq!(u32_at(&b, 4), Kind::Text as u32);
        let mut drops: Vec<_> =
            (1..3).map(|i| (u32_at(&b, 4 + 16 * i), u32_at(&b, 8 + 16 * i), u32_at(&b, 16 + 16 * i))).collect();
        drops.sort();
        assert_eq!(drops, [(Kind::Dropped as u32, 4, 1), (Kind::Dropped as u32, 9, 1000)]);
        assert!(inbox.pull().is_none());
        inbox.count_drops(9, 1);
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "a drop after the inbox was pulled empty wakes JS again");
        inbox.count_drops(9, 1);
        inbox.push(Event::new(Kind::Close, 9, Bytes::new(), 1000));
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0), 2, "the drops come before the close, and only there");
        assert_eq!((u32_at(&b, 4), u32_at(&b, 16)), (Kind::Dropped as u32, 2));
        assert_eq!(u32_at(&b, 20), Kind::Close as u32);
    }

    #[test]
    fn readers_are_granted_the_room_left_below_the_mark_between_them() {
        let (inbox, _) = counting();
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; HIGH_WATER_BYTES - 100_000], 0));
        // Two readers at once, as on two worker threads: the second gets what is left.
        let first = inbox.reserve(64 * 1024);
        let second = inbox.reserve(64 * 1024);
        assert_eq!((first, second), (64 * 1024, 100_000 - 64 * 1024));
        assert!(!inbox.backed_up());
        assert_eq!(inbox.reserve(64 * 1024), 0, "no room left");
        assert!(inbox.backed_up(), "less than a read's worth of room is as good as full");
        inbox.release(first);
        inbox.release(second);
        assert_eq!(inbox.reserve(64 * 1024), 0, "full until the flow has taken half");
        inbox.drain();
        assert_eq!(inbox.reserve(64 * 1024), 64 * 1024, "the control: room again");
        // A discarding inbox never makes a reader wait.
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; HIGH_WATER_BYTES], 0));
        assert_eq!(inbox.reserve(100), 0);
        inbox.discard();
        assert_eq!(inbox.reserve(100), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_parked_by_other_readers_reservations_wake_when_those_are_released() {
        // As with 128 workers each holding a 64 KiB read: the queue itself is empty.
        let (inbox, _) = counting();
        let held: Vec<usize> = (0..128).map(|_| inbox.reserve(64 * 1024)).collect();
        assert_eq!(held.iter().sum::<usize>(), HIGH_WATER_BYTES);
        assert_eq!(inbox.reserve(64 * 1024), 0, "no room while the others read");
        let parked = tokio::spawn(inbox.clone().room());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!parked.is_finished(), "the control: parked while the reads are held");
        for granted in held {
            inbox.release(granted);
        }
        // Nothing was queued, so no `take` will ever come to end the wait.
        tokio::time::timeout(Duration::from_secs(5), parked).await.expect("still parked").unwrap();
        assert_eq!(inbox.reserve(64 * 1024), 64 * 1024);
    }
}
