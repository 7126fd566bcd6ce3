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
    Open = 1,
    Text = 2,
    Binary = 3,
    /// A session ended; `extra` is the close code (1006 when none was received).
    Close = 4,
    /// Something went wrong; the payload is the error text, `extra` 0.
    Error = 5,
    /// Client mode: a connection attempt started (status "connecting").
    Connecting = 6,
    /// Messages for the session were dropped because its send queue was full
    /// (drop policy); `extra` is how many since the last batch.
    Dropped = 7,
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
/// Queued payload bytes past which session readers wait (TCP then slows the peers).
pub const HIGH_WATER_BYTES: usize = 8 * 1024 * 1024;

type Wake = Box<dyn Fn(Arc<Inbox>) + Send + Sync>;

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    bytes: usize,
    /// Drops per session since the last batch: one event each, however many drops.
    drops: HashMap<u32, u32>,
    /// A wake-up is on its way to the JS thread; do not send another.
    scheduled: bool,
    closed: bool,
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
        let wake_now = {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            if ev.kind == Kind::Close && !s.drops.is_empty() {
                // A session's drops reach JS before its end.
                if let Some(count) = s.drops.remove(&ev.session) {
                    s.queue.push_back(Event::new(Kind::Dropped, ev.session, Bytes::new(), count));
                }
            }
            s.bytes += ev.data.len();
            s.queue.push_back(ev);
            !std::mem::replace(&mut s.scheduled, true)
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

    /// Queue a message, waiting while the queue is above the high-water mark.
    pub async fn push_data(self: &Arc<Self>, ev: Event) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.state.lock();
                if s.closed || s.bytes < HIGH_WATER_BYTES {
                    drop(s);
                    self.push(ev);
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until the queue is below the high-water mark (or closed). Owned, so a
    /// session can hold it while it waits and drop it when it does not.
    pub async fn room(self: Arc<Self>) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.state.lock();
                if s.closed || s.bytes < HIGH_WATER_BYTES {
                    return;
                }
            }
            notified.await;
        }
    }

    /// True while the queue is above the high-water mark (readers are waiting).
    pub fn backed_up(&self) -> bool {
        self.state.lock().bytes >= HIGH_WATER_BYTES
    }

    fn wake(self: &Arc<Self>) {
        if let Some(w) = self.wake.lock().as_ref() {
            w(self.clone());
        }
    }

    /// Take one batch, encoded as described at the top of this file. Called on the
    /// JS thread; schedules another wake-up when events remain.
    pub fn drain(self: &Arc<Self>) -> Vec<u8> {
        let (events, more) = {
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
            let more = !s.queue.is_empty() || !s.drops.is_empty();
            s.scheduled = more;
            (events, more)
        };
        self.space.notify_waiters();
        if more {
            self.wake();
        }
        encode(&events)
    }

    /// Stop accepting events and drop the wake-up (releasing the JS callback).
    pub fn close(&self) {
        {
            let mut s = self.state.lock();
            s.closed = true;
            s.queue.clear();
            s.drops.clear();
            s.bytes = 0;
        }
        self.space.notify_waiters();
        self.wake.lock().take();
    }
}

fn encode(events: &[Event]) -> Vec<u8> {
    let header = 4 + 16 * events.len();
    let payload: usize = events.iter().map(|e| e.data.len()).sum();
    let mut out = Vec::with_capacity(header + payload);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        for v in [e.kind as u32, e.session, e.data.len() as u32, e.extra] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    for e in events {
        out.extend_from_slice(&e.data);
    }
    out
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "a drained inbox wakes again");
    }

    #[test]
    fn batches_are_capped_and_the_rest_rescheduled() {
        let (inbox, wakes) = counting();
        for _ in 0..BATCH_MAX_EVENTS + 10 {
            inbox.push(Event::new(Kind::Text, 1, "m", 0));
        }
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0) as usize, BATCH_MAX_EVENTS);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(u32_at(&inbox.drain(), 0), 10);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
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
        inbox.count_drops(9, 1);
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "a drop after the drain wakes JS again");
        inbox.count_drops(9, 1);
        inbox.push(Event::new(Kind::Close, 9, Bytes::new(), 1000));
        let b = inbox.drain();
        assert_eq!(u32_at(&b, 0), 2, "the drops come before the close, and only there");
        assert_eq!((u32_at(&b, 4), u32_at(&b, 16)), (Kind::Dropped as u32, 2));
        assert_eq!(u32_at(&b, 20), Kind::Close as u32);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_wait_above_the_high_water_mark() {
        let (inbox, _) = counting();
        inbox.push(Event::new(Kind::Binary, 1, vec![0u8; HIGH_WATER_BYTES], 0));
        let i2 = inbox.clone();
        let waiter = tokio::spawn(async move { i2.push_data(Event::new(Kind::Text, 1, "late", 0)).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "push_data must wait while the queue is full");
        inbox.drain();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(u32_at(&inbox.drain(), 0), 1);
    }
}
