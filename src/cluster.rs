//! Broadcasts, room publishes and replies across Node-RED instances, through
//! Redis Pub/Sub (the `redis` crate speaks the protocol; nothing of it is ours).
//!
//! Each instance (one per process, `instance_id`) delivers its own sends locally
//! at once and publishes a copy on the listener's channel, `prefix + path`.
//! Every instance receives every listener's channel (one pattern subscription),
//! drops what it published itself, and hands the rest to its listener of that
//! path: a broadcast to every session, a room publish to the local members of
//! those rooms (membership never leaves the instance that holds the session),
//! a direct send to the named sessions when it is the instance addressed.
//! Pub/Sub delivers at most once: what is published while an instance is cut off
//! from Redis does not reach it (see README, "Several Node-RED instances"). The
//! opt-in Streams mode (streams.rs) replays it instead.

mod streams;
mod wire;

use crate::commands::Op;
use crate::listener::{napi_or_tokio_spawn, Listener};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
pub use wire::Wire;

/// Publishes sent to Redis in one round trip (a pipeline), at most.
const BATCH: usize = 512;
/// Bytes of publishes waiting for Redis past which new ones are dropped.
const MAX_PENDING_BYTES: usize = 64 << 20;
/// What a queued publish holds beyond its bytes and its channel's: the
/// queue's entry, the allocations' headers, the pipeline's command (about).
const ENTRY_OVERHEAD: usize = 128;

/// What a queued publish counts against MAX_PENDING_BYTES.
fn cost(channel: &str, data: &[u8]) -> usize {
    data.len() + channel.len() + ENTRY_OVERHEAD
}

/// The largest copy sent to Redis, by default: one message over Redis's
/// `client-output-buffer-limit pubsub` (32 MiB by default) would disconnect
/// every subscriber, the sender's own included. Larger ones stay local.
pub const MAX_MESSAGE: usize = 8 << 20;
/// A warning of one kind is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Waits between reconnection attempts: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);
/// A link up this long has recovered: the next outage starts from RETRY_FIRST.
const STABLE: Duration = Duration::from_secs(10);
/// A connection attempt or a publish round trip that takes longer has failed.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The subscribed connection is pinged this often.
const HEALTH_CHECK: Duration = Duration::from_secs(5);

/// This process's id in the cluster: 48 bits of which 47 random, bit 44 set so
/// that it never is 0 nor short of 12 hex digits (in session ids).
pub fn instance_id() -> u64 {
    static ID: OnceLock<u64> = OnceLock::new();
    *ID.get_or_init(|| (rand::random::<u64>() & 0xffff_ffff_ffff) | (1 << 44))
}

#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// redis://… or rediss://… (TLS).
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM: roots to trust (absent: the system's), a client certificate and key.
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Channel (or stream) names start with this.
    pub prefix: String,
    pub mode: Mode,
    /// The largest message sent to other instances (0: MAX_MESSAGE).
    pub max_message: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Mode {
    /// At most once: nothing is kept for an instance cut off.
    #[default]
    PubSub,
    /// A stream per path, trimmed to about `retention` entries; replays gaps.
    Streams { retention: usize },
}

/// What JS hears: the link to Redis (on each change), and warnings.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Connected,
    Disconnected(String),
    /// The stream of this path was gone or restarted: history lost.
    Lost(String),
    /// Entries of this path were trimmed before this instance read them.
    Trimmed(String),
    /// Publishes are being dropped, and why (once until one gets through again).
    Dropped(String),
    /// A room publish named a room over 64 KiB, or more than 65 535 rooms:
    /// those were left out of the copy for other instances (at most once a minute).
    RoomsTooLong,
    /// A message of `size` bytes was over the `limit`: it stayed local (at most once a minute).
    TooLarge {
        size: usize,
        limit: usize,
    },
}

/// Lets a warning through at most once per WARN_EVERY (on tokio's clock).
#[derive(Default)]
struct RateLimit(Mutex<Option<tokio::time::Instant>>);

impl RateLimit {
    fn allow(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self.0.lock();
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

pub struct Cluster {
    prefix: String,
    instance: u64,
    /// Each with the token `attach` gave, so that a listener closing late (a
    /// redeploy) never detaches its successor on the same path.
    listeners: Mutex<HashMap<Arc<str>, (u64, Listener)>>,
    /// Woken when a listener is attached (the Streams reader has one more stream to follow).
    attached: Arc<Notify>,
    mode: Mode,
    /// Channel or stream, sequence number (Streams mode), message.
    out: mpsc::UnboundedSender<(String, u64, Vec<u8>)>,
    /// What waits for Redis, counted by `cost`: at most MAX_PENDING_BYTES.
    pending: AtomicUsize,
    connected: AtomicBool,
    /// Publishes dropped (Redis unreachable, or too many waiting), for diagnostics.
    dropped: AtomicUsize,
    /// A drop was reported and nothing has got through since.
    overflowed: AtomicBool,
    max_message: usize,
    /// Messages over `max_message`, delivered locally only.
    too_large: AtomicUsize,
    warn_too_large: RateLimit,
    warn_dropped: RateLimit,
    warn_rooms: RateLimit,
    on_event: OnEvent,
    /// Set by close(); reports and events check it under this lock.
    closed: Mutex<bool>,
    stop: watch::Sender<bool>,
}

pub type OnEvent = Arc<dyn Fn(Event) + Send + Sync>;

impl Cluster {
    /// Starts connecting at once; `on_event` hears of each change of the link, and of losses.
    pub fn start(cfg: ClusterConfig, on_event: OnEvent) -> crate::error::Result<Arc<Cluster>> {
        if !prefix_ok(&cfg.prefix) {
            return Err(crate::error::Error::InvalidArgument(
                "cluster: the channel prefix must not be empty, nor hold a \"/\"".into(),
            ));
        }
        let client = client_of(&cfg)?;
        let (out, rx) = mpsc::unbounded_channel();
        let (stop, _) = watch::channel(false);
        let cluster = Arc::new(Cluster {
            prefix: cfg.prefix,
            instance: instance_id(),
            listeners: Mutex::new(HashMap::new()),
            attached: Arc::new(Notify::new()),
            mode: cfg.mode,
            out,
            pending: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            dropped: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            max_message: if cfg.max_message == 0 { MAX_MESSAGE } else { cfg.max_message },
            too_large: AtomicUsize::new(0),
            warn_too_large: RateLimit::default(),
            warn_dropped: RateLimit::default(),
            warn_rooms: RateLimit::default(),
            on_event: on_event.clone(),
            closed: Mutex::new(false),
            stop,
        });
        let weak = Arc::downgrade(&cluster);
        let (c, stop) = (client.clone(), cluster.stop.subscribe());
        match cfg.mode {
            Mode::PubSub => napi_or_tokio_spawn(publisher(weak.clone(), c, rx, stop)),
            Mode::Streams { retention } => {
                napi_or_tokio_spawn(streams::publisher(weak.clone(), c, rx, stop, retention))
            }
        };
        napi_or_tokio_spawn(subscriber(weak, client, on_event, cluster.stop.subscribe()));
        Ok(cluster)
    }

    /// Messages for listener `path` from other instances go to `listener`; the
    /// token to detach it with.
    pub fn attach(&self, path: &str, listener: Listener) -> u64 {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let token = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
        self.listeners.lock().insert(path.into(), (token, listener));
        self.attached.notify_one();
        token
    }

    pub fn detach(&self, path: &str, token: u64) {
        let mut all = self.listeners.lock();
        if all.get(path).is_some_and(|(t, _)| *t == token) {
            all.remove(path);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Messages other instances did not get: Redis unreachable, too many
    /// waiting, refused, or too large.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Of those, messages over the size limit.
    pub fn too_large(&self) -> usize {
        self.too_large.load(Ordering::Relaxed)
    }

    /// Stops both tasks; the link closes. Nothing is reported after it.
    pub fn close(&self) {
        *self.closed.lock() = true;
        // Nothing is queued for a publisher that is stopping.
        self.connected.store(false, Ordering::Release);
        self.stop.send_replace(true);
        self.listeners.lock().clear();
    }

    /// Publishes a copy of what listener `path` sent locally, for the other
    /// instances. Never waits. Pub/Sub: dropped when Redis is unreachable (at
    /// most once); Streams: kept until Redis is back, up to MAX_PENDING_BYTES.
    pub fn send(&self, path: &str, what: Wire<'_>) {
        if !what.rooms_fit() && self.warn_rooms.allow() {
            // Members here got it; members elsewhere of the rooms left out do not.
            self.emit(Event::RoomsTooLong);
        }
        for part in what.split() {
            self.send_one(path, part);
        }
    }

    fn send_one(&self, path: &str, what: Wire<'_>) {
        let size = what.encoded_len();
        if size > self.max_message {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if self.warn_too_large.allow() {
                self.emit(Event::TooLarge { size, limit: self.max_message });
            }
            return;
        }
        let streams = matches!(self.mode, Mode::Streams { .. });
        if !streams && !self.is_connected() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let data = what.encode(self.instance);
        let channel = format!("{}{}", self.prefix, path);
        let cost = cost(&channel, &data);
        if self.pending.fetch_add(cost, Ordering::AcqRel) + cost > MAX_PENDING_BYTES {
            self.pending.fetch_sub(cost, Ordering::AcqRel);
            self.dropping(1, format!("more than {} MiB waiting for Redis", MAX_PENDING_BYTES >> 20));
            return;
        }
        let seq = if streams { streams::next_seq() } else { 0 };
        if self.out.send((channel, seq, data)).is_err() {
            // The publisher has stopped (closed): nothing waits after all.
            self.pending.fetch_sub(cost, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` publishes dropped and warns: once until one gets through
    /// again, and at most once a minute (a link that keeps failing).
    fn dropping(&self, n: usize, why: String) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        if !self.overflowed.swap(true, Ordering::AcqRel) && self.warn_dropped.allow() {
            self.emit(Event::Dropped(why));
        }
    }

    /// A publish got through: the next drop is news again.
    fn got_through(&self) {
        self.overflowed.store(false, Ordering::Release);
    }

    fn emit(&self, e: Event) {
        let closed = self.closed.lock();
        if !*closed {
            (self.on_event)(e);
        }
    }

    /// Picks out of a listener's program what other instances must see too.
    pub fn send_ops(&self, path: &str, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Send(batch) => {
                    for (target, frame) in batch {
                        if *target == 0 {
                            self.send(path, Wire::Broadcast { frame: frame.clone() });
                        }
                    }
                }
                Op::Publish { rooms, frame } => {
                    self.send(path, Wire::Publish { rooms: rooms.iter().map(|r| &**r).collect(), frame: frame.clone() })
                }
                _ => {}
            }
        }
    }

    /// A message on `channel` from Redis, for one of our listeners.
    fn deliver(&self, channel: &[u8], data: &[u8]) {
        let Some(path) = channel.strip_prefix(self.prefix.as_bytes()) else { return };
        let Ok(path) = std::str::from_utf8(path) else { return };
        let Some((origin, what)) = Wire::decode(data) else { return };
        if origin == self.instance {
            // Ours: its local sessions had it already.
            return;
        }
        self.hand(path, what);
    }

    /// A message of another instance to our listener of `path`.
    fn hand(&self, path: &str, what: Wire<'_>) {
        let Some(listener) = self.listeners.lock().get(path).map(|(_, l)| l.clone()) else { return };
        match what {
            Wire::Broadcast { frame } => listener.send_frames(vec![(0, frame)]),
            Wire::Publish { rooms, frame } => {
                listener.run(vec![Op::Publish { rooms: rooms.into_iter().map(Arc::from).collect(), frame }])
            }
            Wire::Direct { instance, ids, frame } => {
                if instance == self.instance {
                    listener.send_frames(ids.into_iter().filter(|&id| id != 0).map(|id| (id, frame.clone())).collect());
                }
            }
        }
    }
}

fn client_of(cfg: &ClusterConfig) -> crate::error::Result<redis::Client> {
    use crate::error::Error;
    use redis::IntoConnectionInfo;
    let bad = |e: redis::RedisError| Error::InvalidArgument(format!("cluster: {e}"));
    let mut info = cfg.url.as_str().into_connection_info().map_err(bad)?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = cfg.username.as_deref().filter(|u| !u.is_empty()) {
        settings = settings.set_username(u);
    }
    if let Some(p) = cfg.password.as_deref().filter(|p| !p.is_empty()) {
        settings = settings.set_password(p);
    }
    info = info.set_redis_settings(settings);
    if !cfg.url.starts_with("rediss://") {
        return redis::Client::open(info).map_err(bad);
    }
    tls_client(cfg, info).map_err(bad)
}

#[cfg(target_os = "linux")]
fn tls_client(cfg: &ClusterConfig, info: redis::ConnectionInfo) -> redis::RedisResult<redis::Client> {
    let client_tls = match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => {
            Some(redis::ClientTlsConfig { client_cert: c.clone().into_bytes(), client_key: k.clone().into_bytes() })
        }
        _ => None,
    };
    let certs = redis::TlsCertificates { client_tls, root_cert: cfg.ca.clone().map(String::into_bytes) };
    redis::Client::build_with_tls(info, certs)
}

#[cfg(not(target_os = "linux"))]
fn tls_client(_: &ClusterConfig, _: redis::ConnectionInfo) -> redis::RedisResult<redis::Client> {
    Err(redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "rediss:// (TLS) is built for Linux only")))
}

/// The publishing connection: reconnects by itself, first used on the first
/// publish. Made on the runtime (it spawns its reconnections).
fn manager(client: redis::Client) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_max_delay(RETRY_LAST);
    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
}

/// Sends what `Cluster::send` queued, many publishes per round trip. While the
/// link is down a batch fails and is dropped (Pub/Sub keeps nothing either),
/// each of its messages counted.
async fn publisher(
    cluster: std::sync::Weak<Cluster>,
    client: redis::Client,
    mut rx: mpsc::UnboundedReceiver<(String, u64, Vec<u8>)>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut conn) = manager(client) else { return };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        let mut pipe = redis::pipe();
        let mut bytes = 0;
        let n = batch.len();
        for (channel, _, data) in batch.drain(..) {
            bytes += cost(&channel, &data);
            pipe.publish(channel, data).ignore();
        }
        let sent = tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        let Some(cluster) = cluster.upgrade() else { return };
        cluster.pending.fetch_sub(bytes, Ordering::AcqRel);
        // Each message of a failed batch is lost: counted, and warned of even
        // while the subscription looks connected.
        match sent {
            Ok(Ok(())) => cluster.got_through(),
            Ok(Err(e)) => cluster.dropping(n, e.to_string()),
            Err(_) => cluster.dropping(n, "no answer from Redis".into()),
        }
    }
}

/// Tells JS of changes of the link only: a Redis that stays down is reported once.
/// Nothing is reported once the cluster is closed, even by a connection that
/// completes afterwards.
struct Reporter {
    on_event: OnEvent,
    last: Option<Event>,
    /// When the link last came up.
    up_since: Option<tokio::time::Instant>,
}

impl Reporter {
    fn new(on_event: OnEvent) -> Reporter {
        Reporter { on_event, last: None, up_since: None }
    }

    fn report(&mut self, state: Event, cluster: &Cluster) {
        // Held while reporting: close() waits for a report under way, and none follows it.
        let closed = cluster.closed.lock();
        if *closed {
            return;
        }
        cluster.connected.store(state == Event::Connected, Ordering::Release);
        let changed = match (&self.last, &state) {
            (Some(Event::Disconnected(_)), Event::Disconnected(_)) => false,
            (a, b) => a.as_ref() != Some(b),
        };
        if changed {
            if state == Event::Connected {
                self.up_since = Some(tokio::time::Instant::now());
            }
            (self.on_event)(state.clone());
        }
        self.last = Some(state);
    }

    /// How long the link was up before this outage (None: it did not come up).
    fn up_for(&mut self) -> Option<Duration> {
        self.up_since.take().map(|t| t.elapsed())
    }
}

/// The waits between reconnection attempts: doubling from RETRY_FIRST to
/// RETRY_LAST, and back to RETRY_FIRST only after the link stayed up STABLE, so
/// that a link that keeps dropping at once is not retried (and logged) every 100 ms.
struct Backoff(Duration);

impl Backoff {
    fn next(&mut self, up_for: Option<Duration>) -> Duration {
        if up_for.is_some_and(|d| d >= STABLE) {
            self.0 = RETRY_FIRST;
        }
        let wait = self.0;
        self.0 = (self.0 * 2).min(RETRY_LAST);
        wait
    }
}

/// Holds the subscription: connects, subscribes to every listener's channel,
/// delivers, and on any failure reports it and tries again, for as long as the
/// cluster lives. The link's state is this connection's.
async fn subscriber(
    cluster: std::sync::Weak<Cluster>,
    client: redis::Client,
    on_event: OnEvent,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff(RETRY_FIRST);
    let mut reporter = Reporter::new(on_event);
    let mut follow = streams::Follow::default();
    loop {
        let Some((pattern, mode)) = cluster.upgrade().map(|c| (pattern(&c.prefix), c.mode)) else {
            return;
        };
        let run = async {
            match mode {
                Mode::PubSub => Some(listen(&cluster, &client, &pattern, &mut reporter).await),
                Mode::Streams { .. } => streams::follow(&cluster, &client, &mut follow, &mut reporter).await,
            }
        };
        let ended = tokio::select! {
            _ = stop.changed() => return,
            ended = run => ended,
        };
        // A listener attached (Streams mode): at once, on a fresh connection.
        let Some(ended) = ended else { continue };
        let Some(c) = cluster.upgrade() else { return };
        let wait = backoff.next(reporter.up_for());
        reporter.report(Event::Disconnected(ended), &c);
        drop(c);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One subscribed connection, until it fails; why it ended.
async fn listen(
    cluster: &std::sync::Weak<Cluster>,
    client: &redis::Client,
    pattern: &str,
    reporter: &mut Reporter,
) -> String {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(pattern).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "no answer from Redis".into(),
    };
    match cluster.upgrade() {
        Some(c) => reporter.report(Event::Connected, &c),
        None => return String::new(),
    }
    let (mut sink, mut messages) = pubsub.split();
    // A link cut without a reset (a partition, a host gone) shows no end of stream:
    // a ping unanswered within TIMEOUT ends it.
    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return "connection to Redis lost".into() };
                let Some(c) = cluster.upgrade() else { return String::new() };
                c.deliver(msg.get_channel_name().as_bytes(), msg.get_payload_bytes());
            }
            _ = health.tick() => {
                if !matches!(tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                    return "no answer from Redis".into();
                }
            }
        }
    }
}

/// Whether no two clusters' channels (or stream keys) can be the same or match
/// each other's pattern: a channel is `prefix + path`, a path starts with `/`,
/// so a prefix without `/` is what comes before the channel's first `/`.
fn prefix_ok(prefix: &str) -> bool {
    !prefix.is_empty() && !prefix.contains('/')
}

/// The pattern of every listener's channel of the cluster with `prefix`, and no other.
fn pattern(prefix: &str) -> String {
    format!("{}/*", glob_escape(prefix))
}

/// `prefix` matched literally in a PSUBSCRIBE pattern.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Frames of a direct send, for tests: `Bytes` of the text `t`.
#[cfg(test)]
fn text(t: &str) -> bytes::Bytes {
    crate::codec::data_frame(true, t.as_bytes(), false)
}

#[cfg(test)]
mod tests;
