//! The sessions of one `websocket-listener`: adopting upgraded connections from
//! Node's HTTP server, the handshake answer, reply and broadcast, and closing.

use crate::auth::Auth;
use crate::commands::Op;
use crate::error::{Error, Result};
use crate::handshake::{self, Rejection, UpgradeRequest};
use crate::inbox::{Event, Inbox, Kind};
use crate::rooms::Rooms;
use crate::session::{self, Session, SessionConfig, SessionHandle};
use crate::stats::{NodeStats, Order, Refusal, SessionRow, Snapshot};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;

mod ops;

#[derive(Clone, Debug, Default)]
pub struct ListenerConfig {
    pub session: SessionConfig,
    /// Subprotocols this listener speaks; empty means "answer the client's first".
    pub protocols: Vec<String>,
    /// Open sessions (those still closing included) past which new ones get 503.
    pub max_connections: Option<usize>,
    /// Checked after the handshake request itself, before the subprotocol (401).
    pub auth: Auth,
}

/// What a listener at its connection limit answers.
const FULL: Rejection =
    Rejection { status: 503, reason: Cow::Borrowed("Too many connections to this WebSocket listener") };

struct Entry {
    handle: Arc<SessionHandle>,
    /// Set right after the task is spawned; used only to stop stragglers at close.
    abort: OnceLock<AbortHandle>,
}

struct Shared {
    cfg: ListenerConfig,
    inbox: Arc<Inbox>,
    sessions: RwLock<HashMap<u32, Entry>>,
    /// Changes whenever a session joins or leaves, so a broadcast can reuse its snapshot.
    generation: AtomicU64,
    closing: AtomicBool,
    /// Signalled each time a session leaves the table.
    left: Notify,
    /// Taken by the dispatcher, and by a session leaving the table (after it has).
    rooms: Mutex<Rooms<Arc<SessionHandle>>>,
    stats: NodeStats,
}

/// Work for the listener's dispatcher task, which owns all sending so that the JS
/// thread pays one channel send per batch, however many sessions receive it.
enum Command {
    /// `(session, encoded frame)` in order; session 0 means every session.
    Send(Vec<(u32, Bytes)>),
    /// Close every session with this code (after everything sent before).
    Close(u16),
    /// A flow's requests of one turn, in order (`crate::commands`).
    Ops(Vec<Op>),
}

#[derive(Clone)]
pub struct Listener {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

/// Removes the session from the table and reports its end, even if the task panics.
struct Departure {
    shared: Arc<Shared>,
    id: u32,
    opened: bool,
    finished: bool,
}

impl Departure {
    /// The session ended so: it leaves the table and the flow hears of it.
    fn finish(&mut self, ended: session::Ended) {
        let unsent = self.leave(ended);
        // The session leaves the table, its handle and queue with it; then trim.
        crate::memory::session_freed(unsent);
    }

    /// Leaves the table and reports the end; what the session left unsent.
    fn leave(&mut self, ended: session::Ended) -> usize {
        self.finished = true;
        let entry = {
            let mut sessions = self.shared.sessions.write();
            let entry = sessions.remove(&self.id);
            // Folded into the totals under the same lock a snapshot reads the table
            // under, so no snapshot misses this session's traffic.
            if let (true, Some(e)) = (self.opened, &entry) {
                let h = &e.handle;
                self.shared.stats.closed(ended.code, h.stats(), h.dropped(), h.overflowed());
            }
            entry
        };
        if entry.is_some() {
            self.shared.generation.fetch_add(1, Ordering::Release);
        }
        // Out of the table first: a join that looks for it under this lock then fails.
        self.shared.rooms.lock().ended(self.id);
        if let Some(err) = ended.error {
            self.shared.inbox.push(Event::new(Kind::Error, self.id, err, 0));
        }
        if self.opened {
            let reason = Bytes::from(ended.reason.into_bytes());
            self.shared.inbox.push(Event::new(Kind::Close, self.id, reason, ended.code as u32));
        }
        self.shared.left.notify_waiters();
        entry.map_or(0, |e| e.handle.unsent())
    }
}

impl Drop for Departure {
    fn drop(&mut self) {
        if !self.finished {
            // Not `finish`: this may run as the runtime shuts down, with no trim to start.
            let error = Some("session task stopped unexpectedly".into());
            self.leave(session::Ended::new(session::ABNORMAL_CLOSURE, error));
        }
    }
}

impl Listener {
    pub fn new(cfg: ListenerConfig, inbox: Arc<Inbox>) -> Self {
        let shared = Arc::new(Shared {
            cfg,
            inbox,
            sessions: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            left: Notify::new(),
            rooms: Mutex::new(Rooms::default()),
            stats: NodeStats::default(),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        napi_or_tokio_spawn(dispatch(shared.clone(), rx));
        Listener { shared, commands }
    }

    /// Take over a plain TCP connection Node has upgraded: the descriptor is
    /// duplicated (close-on-exec), so JS may then destroy its own handle.
    #[cfg(unix)]
    pub fn adopt_fd(
        &self,
        fd: i32,
        head: Vec<u8>,
        req: &UpgradeRequest,
    ) -> Result<std::result::Result<u32, Rejection>> {
        use std::os::fd::FromRawFd;
        self.check_open()?;
        let answer = match self.answer(req) {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        };
        if fd < 0 {
            return Err(Error::InvalidArgument(format!("not a socket descriptor: {fd}")));
        }
        // SAFETY: fcntl on a caller-provided descriptor; a bad one yields -1, checked below.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `dup` is a fresh descriptor owned by nobody else.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(dup) };
        std_stream.set_nonblocking(true)?;
        // Refused past the connection limit: the duplicate is dropped unused, which
        // closes only our descriptor; JS answers on its own.
        Ok(self.start(req, answer, head, move || {
            let tcp = tokio::net::TcpStream::from_std(std_stream)?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }))
    }

    /// Take over a connection given as any byte stream (the HTTPS bridge, tests).
    pub fn adopt_stream<S>(
        &self,
        stream: S,
        head: Vec<u8>,
        req: &UpgradeRequest,
    ) -> Result<std::result::Result<u32, Rejection>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.check_open()?;
        let answer = match self.answer(req) {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        };
        Ok(self.start(req, answer, head, move || Ok(stream)))
    }

    /// Checks the request and its credential; the subprotocol to answer with and
    /// the verified identity (JWT claims) if any, or the refusal.
    fn answer(&self, req: &UpgradeRequest) -> std::result::Result<Answer, Rejection> {
        let stats = &self.shared.stats;
        handshake::validate(req).inspect_err(|_| stats.refused(Refusal::Handshake))?;
        let identity = self.shared.cfg.auth.check(&req.authorization, &req.target).map_err(|refusal| {
            stats.refused(Refusal::Unauthorized);
            Rejection { status: 401, reason: Cow::Owned(refusal.0) }
        })?;
        let protocol = handshake::answer_protocol(&req.protocol, &self.shared.cfg.protocols)
            .inspect_err(|_| stats.refused(Refusal::Handshake))?;
        Ok(Answer { protocol, identity })
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Registers the session and starts its task, or refuses it at the connection
    /// limit. The count is the session table's, checked and raised under one lock.
    fn start<S, F>(
        &self,
        req: &UpgradeRequest,
        answer: Answer,
        head: Vec<u8>,
        make_stream: F,
    ) -> std::result::Result<u32, Rejection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: FnOnce() -> std::io::Result<S> + Send + 'static,
    {
        let shared = &self.shared;
        let Answer { protocol, identity } = answer;
        let response = handshake::accept_response(&req.key, protocol.as_deref());
        let id = session::next_id();
        let (handle, session_shared) = SessionHandle::new(&shared.cfg.session, false);
        session_shared.stats.set_protocol(protocol.as_deref().unwrap_or(""));
        {
            // Registered before we return: JS may reply to this session at once.
            let mut sessions = shared.sessions.write();
            if shared.cfg.max_connections.is_some_and(|max| sessions.len() >= max) {
                shared.stats.refused(Refusal::TooMany);
                return Err(FULL);
            }
            sessions.insert(id, Entry { handle: Arc::new(handle), abort: OnceLock::new() });
        }
        shared.generation.fetch_add(1, Ordering::Release);
        let departure = Departure { shared: shared.clone(), id, opened: false, finished: false };
        let (open, protocol_len) = announcement(protocol.as_deref(), &with_identity(&req.announce, identity));
        let start = Box::new(Start { response, head, queue: session_shared, open, protocol_len, make_stream });
        let task = napi_or_tokio_spawn(serve(departure, start));
        if let Some(entry) = shared.sessions.read().get(&id) {
            let _ = entry.abort.set(task.abort_handle());
        }
        crate::memory::session_adopted();
        Ok(id)
    }

    /// Queue frames, in order: to one session (silently nothing if it is gone,
    /// as core) or, for session 0, to every session, all sharing the frame's bytes.
    /// Frames are encoded as a server sends them (`codec::data_frame`).
    pub fn send_frames(&self, batch: Vec<(u32, Bytes)>) {
        let _ = self.commands.send(Command::Send(batch));
    }

    /// Run a flow's requests (`crate::commands`), in order after what was sent before.
    pub fn run(&self, ops: Vec<Op>) {
        let _ = self.commands.send(Command::Ops(ops));
    }

    /// The listener's counters, its live sessions' added up now.
    pub fn stats(&self) -> Snapshot {
        let sessions = self.shared.sessions.read();
        let live = sessions.values().map(|e| (live(&e.handle), e.handle.dropped()));
        self.shared.stats.snapshot(live)
    }

    /// How many sessions there are, and the first `limit` of them in `order`.
    pub fn sessions(&self, order: Order, limit: usize) -> (usize, Vec<SessionRow>) {
        let (total, mut rows) = {
            let sessions = self.shared.sessions.read();
            let live = sessions.iter().map(|(&id, e)| (id, e.handle.stats(), e.handle.unsent(), e.handle.dropped()));
            (sessions.len(), crate::stats::top_sessions(live, order, limit, |_| Vec::new()))
        };
        // Not under the table's lock: the dispatcher may hold the rooms and want the table.
        let rooms = self.shared.rooms.lock();
        for row in &mut rows {
            row.rooms = rooms.rooms_of(row.id).iter().map(|r| r.to_string()).collect();
        }
        (total, rows)
    }

    /// The peer's address as JS saw it, for the session list.
    pub fn set_remote(&self, id: u32, remote: &str) {
        if let Some(e) = self.shared.sessions.read().get(&id) {
            e.handle.stats().set_remote(remote);
        }
    }

    /// Every room with its number of members, as of now.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        self.shared.rooms.lock().sizes().map(|(name, n)| (name.to_owned(), n)).collect()
    }

    /// `send_frames` for messages, each encoded once.
    pub fn send_many(&self, batch: Vec<(u32, Message)>) {
        let frame = |m: Message| match m {
            Message::Text(t) => Some(crate::codec::data_frame(true, t.as_bytes(), false)),
            Message::Binary(b) => Some(crate::codec::data_frame(false, &b, false)),
            _ => None,
        };
        self.send_frames(batch.into_iter().filter_map(|(to, m)| Some((to, frame(m)?))).collect());
    }

    /// Refuse new sessions, close the open ones with `code` and wait until they
    /// have ended (or the close timeout passed), then stop event delivery. Events
    /// are discarded from the start (JS takes none once it closes), so that no
    /// session waits for room in the inbox to read its peer's close.
    pub async fn close(&self, code: u16) {
        let shared = &self.shared;
        shared.closing.store(true, Ordering::Release);
        shared.inbox.discard();
        let deadline = tokio::time::Instant::now() + shared.cfg.session.close_timeout + Duration::from_millis(500);
        // Through the dispatcher, so whatever was sent before goes out first.
        if self.commands.send(Command::Close(code)).is_err() {
            for e in shared.sessions.read().values() {
                e.handle.close(code);
            }
        }
        loop {
            let left = shared.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if shared.sessions.read().is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                for e in shared.sessions.read().values() {
                    if let Some(a) = e.abort.get() {
                        a.abort();
                    }
                }
                // Aborted tasks drop their Departure, which empties the table.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while !shared.sessions.read().is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
                break;
            }
        }
        shared.inbox.close();
    }
}

fn live(h: &SessionHandle) -> crate::stats::Live<'_> {
    crate::stats::Live { stats: h.stats(), queued: h.unsent() }
}

/// What a session's task starts from.
struct Start<F> {
    response: Vec<u8>,
    head: Vec<u8>,
    queue: Arc<session::Shared>,
    /// The `Open` event's payload and its `extra` (see `announcement`).
    open: Bytes,
    protocol_len: u32,
    make_stream: F,
}

/// The `Open` event's payload: nothing unless JS asked for an announcement, else
/// the negotiated subprotocol (its length is the event's `extra`), then what JS
/// handed over. Built before the session starts, and freed as it does.
/// What `answer` found acceptable in a request.
struct Answer {
    protocol: Option<String>,
    identity: Option<serde_json::Value>,
}

/// The connect info JS asked to have announced, with the verified identity in it
/// as `identity`; nothing when JS asked for none (no `websocket in` wants events).
fn with_identity(announce: &[u8], identity: Option<serde_json::Value>) -> Cow<'_, [u8]> {
    let (Some(identity), false) = (identity, announce.is_empty()) else { return Cow::Borrowed(announce) };
    match serde_json::from_slice::<serde_json::Value>(announce) {
        Ok(serde_json::Value::Object(mut info)) => {
            info.insert("identity".into(), identity);
            Cow::Owned(serde_json::Value::Object(info).to_string().into_bytes())
        }
        _ => Cow::Borrowed(announce),
    }
}

fn announcement(protocol: Option<&str>, announce: &[u8]) -> (Bytes, u32) {
    if announce.is_empty() {
        return (Bytes::new(), 0);
    }
    let protocol = protocol.unwrap_or("");
    ([protocol.as_bytes(), announce].concat().into(), protocol.len() as u32)
}

/// A session's task: the 101 answer, the session, and its departure from the
/// table. Its future is the task's memory for the session's whole life.
fn serve<S, F>(departure: Departure, start: Box<Start<F>>) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce() -> std::io::Result<S> + Send + 'static,
{
    // What an async block captures it keeps for its whole life: `start` is boxed
    // (the stream's maker too), so that what it holds is freed as the session
    // begins and the future stays within tokio's 256-byte task cell.
    let mut departure = departure;
    async move {
        // A block, so that what it moves into the session is not kept beside it.
        let session = {
            // Moved in from the capture, so that the box is freed as the block ends
            // (a capture is dropped only with the whole task).
            let start = start;
            let make_stream = start.make_stream;
            let mut stream = match make_stream() {
                Ok(s) => s,
                Err(e) => {
                    let error = Some(e.to_string());
                    return departure.finish(session::Ended::new(session::ABNORMAL_CLOSURE, error));
                }
            };
            // Written from the box: what `start` holds is not kept in the future
            // beside the stream while the write waits.
            // The 101 (~130 bytes) always fits a fresh socket's buffer or the bridge's pipe.
            if stream.write_all(&start.response).await.is_err() {
                // The client left during the handshake: nothing to report (as core).
                return departure.finish(session::Ended::new(session::ABNORMAL_CLOSURE, None));
            }
            let Start { head, queue, open, protocol_len, .. } = *start;
            departure.opened = true;
            departure.shared.stats.opened();
            let (id, shared) = (departure.id, &departure.shared);
            shared.inbox.push(Event::new(Kind::Open, id, open, protocol_len));
            if let Some(entry) = shared.sessions.read().get(&id) {
                entry.handle.report_drops(&shared.inbox, id);
            }
            Session::new(stream, head, id, queue, shared.inbox.clone(), &shared.cfg.session)
        };
        let ended = session.await;
        departure.finish(ended);
    }
}

/// Session sends between two yields of the dispatcher, so that a huge batch does
/// not hold a worker thread either.
const SENDS_PER_YIELD: usize = 1024;
/// Sends a session takes at once from a batch with broadcasts: as many as one
/// write of the session takes.
const BROADCAST_RUN: usize = 64;

/// Sends without holding the session table: `adopt` takes its write lock on the JS
/// thread, which must never wait behind a fan-out. A broadcast goes to a snapshot
/// of the table, reused while no session joins or leaves, and let go of as soon as
/// one leaves (so that the memory of a session that ended goes back at once).
async fn dispatch(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut fanout = Fanout::default();
    loop {
        let left = shared.left.notified();
        tokio::pin!(left);
        // Enabled before the generation is read: a departure after it wakes us.
        left.as_mut().enable();
        fanout.forget_if_stale(&shared);
        let command = if fanout.everyone.is_empty() {
            commands.recv().await
        } else {
            tokio::select! {
                command = commands.recv() => command,
                _ = left => continue,
            }
        };
        let Some(command) = command else { break };
        match command {
            Command::Send(batch) => fanout.send(&shared, &batch).await,
            Command::Ops(ops) => {
                for op in ops {
                    ops::run(&shared, &mut fanout, op).await;
                }
            }
            Command::Close(code) => {
                for e in shared.sessions.read().values() {
                    e.handle.close(code);
                }
                return;
            }
        }
    }
}

/// The dispatcher's snapshot of the session table, for broadcasts.
#[derive(Default)]
struct Fanout {
    everyone: Vec<(u32, Arc<SessionHandle>)>,
    snapshot_of: Option<u64>,
}

impl Fanout {
    /// Sessions came or went since the snapshot: let go of it, so that the handles
    /// of those gone (and their memory) are not kept.
    fn forget_if_stale(&mut self, shared: &Shared) {
        if self.snapshot_of.is_some() && self.snapshot_of != Some(shared.generation.load(Ordering::Acquire)) {
            self.everyone.clear();
            self.snapshot_of = None;
        }
    }

    async fn send(&mut self, shared: &Shared, batch: &[(u32, Bytes)]) {
        let Fanout { everyone, snapshot_of } = self;
        let mut sent = 0;
        // A run of sends with broadcasts in it goes session by session: each
        // session takes its frames of the run at once, and writes them at once.
        for run in batch.chunks(BROADCAST_RUN) {
            if !run.iter().any(|(target, _)| *target == 0) {
                // Replies: each session of the run takes its own at once.
                for (i, (target, _)) in run.iter().enumerate() {
                    if run[..i].iter().any(|(earlier, _)| earlier == target) {
                        continue;
                    }
                    let one = shared.sessions.read().get(target).map(|e| e.handle.clone());
                    if let Some(h) = one {
                        let mine = run[i..].iter().filter(|(t, _)| t == target);
                        h.send_frames(mine.map(|(_, frame)| frame.clone()));
                    }
                }
                sent += run.len();
            } else {
                let generation = shared.generation.load(Ordering::Acquire);
                if *snapshot_of != Some(generation) {
                    everyone.clear();
                    everyone.extend(shared.sessions.read().iter().map(|(&id, e)| (id, e.handle.clone())));
                    *snapshot_of = Some(generation);
                }
                for (id, h) in everyone.iter() {
                    let mine = run.iter().filter(|(target, _)| *target == 0 || target == id);
                    h.send_frames(mine.map(|(_, frame)| frame.clone()));
                }
                // A reply to a session that joined since the snapshot.
                for (target, frame) in run.iter().filter(|(t, _)| *t != 0) {
                    if everyone.iter().all(|(id, _)| id != target) {
                        let one = shared.sessions.read().get(target).map(|e| e.handle.clone());
                        if let Some(h) = one {
                            h.send_frame(frame.clone());
                        }
                    }
                }
                sent += everyone.len() * run.len();
            }
            if sent >= SENDS_PER_YIELD {
                sent = 0;
                tokio::task::yield_now().await;
            }
        }
        if *snapshot_of != Some(shared.generation.load(Ordering::Acquire)) {
            // Sessions came or went: the handles of those gone are not kept.
            everyone.clear();
            *snapshot_of = None;
        }
    }
}

/// Spawn on napi's runtime when loaded in Node, on the ambient one in tests.
pub fn napi_or_tokio_spawn<F>(fut: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.spawn(fut),
        Err(_) => napi::bindgen_prelude::spawn(fut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;

    /// A session adopted over an in-memory pipe; returns the client's side once
    /// past the 101 answer.
    async fn open(listener: &Listener) -> WebSocketStream<DuplexStream> {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        listener.adopt_stream(ours, Vec::new(), &handshake::sample_request()).unwrap().unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(theirs.read_u8().await.unwrap());
        }
        WebSocketStream::from_raw_socket(theirs, Role::Client, None).await
    }

    fn adopt_pipe(listener: &Listener, capacity: usize) -> (std::result::Result<u32, Rejection>, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(capacity);
        (listener.adopt_stream(ours, Vec::new(), &handshake::sample_request()).unwrap(), theirs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_with_authentication_refuses_with_401_and_lets_the_right_token_in() {
        let cfg = ListenerConfig { auth: Auth::token("t0k", None).unwrap(), ..Default::default() };
        let listener = Listener::new(cfg, Inbox::new(Box::new(|_| {})));
        let req = |authorization: &str, target: &str| UpgradeRequest {
            authorization: authorization.into(),
            target: target.into(),
            ..handshake::sample_request()
        };
        let adopt = |r: &UpgradeRequest| listener.adopt_stream(tokio::io::duplex(1 << 16).0, Vec::new(), r).unwrap();
        let none = adopt(&req("", "/ws")).unwrap_err();
        assert_eq!(none.status, 401);
        let http = none.http_response();
        assert!(
            http.starts_with("HTTP/1.1 401 Unauthorized\r\n") && http.contains("\r\nWWW-Authenticate: Bearer\r\n"),
            "{http}"
        );
        assert_eq!(adopt(&req("Bearer nope", "/ws")).unwrap_err().reason, "wrong token");
        // A broken request is still 400 first, whatever its credential.
        let broken = UpgradeRequest { key: String::new(), ..req("Bearer t0k", "/ws") };
        assert_eq!(adopt(&broken).unwrap_err().status, 400);
        assert!(listener.shared.sessions.read().is_empty(), "a refused client got a session");
        assert!(adopt(&req("Bearer t0k", "/ws")).is_ok());
        assert!(adopt(&req("", "/ws?access_token=t0k")).is_ok());
        assert_eq!(listener.shared.sessions.read().len(), 2);
        listener.close(1001).await;
    }

    #[test]
    fn a_verified_identity_joins_the_connect_info_js_asked_for() {
        let info = br#"{"url":"/ws","path":"/ws"}"#;
        let claims = serde_json::json!({"sub": "ada", "roles": ["admin"]});
        let joined: serde_json::Value = serde_json::from_slice(&with_identity(info, Some(claims.clone()))).unwrap();
        assert_eq!(joined, serde_json::json!({"url": "/ws", "path": "/ws", "identity": claims}));
        // Nothing asked for (no events): nothing built.
        assert!(with_identity(b"", Some(claims)).is_empty());
        assert_eq!(with_identity(info, None).as_ref(), info);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broadcast_is_framed_once_and_its_bytes_shared_by_every_session() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        // Pipes too small for the 101 answer: the sessions never start writing,
        // so what was sent to them stays queued where this test can look.
        let pipes: Vec<_> = (0..3).map(|_| adopt_pipe(&listener, 8)).collect();
        let ids: Vec<u32> = pipes.iter().map(|(id, _)| *id.as_ref().unwrap()).collect();
        let frame = crate::codec::data_frame(true, b"to everyone", false);
        let reply = crate::codec::data_frame(true, b"to one", false);
        listener.send_frames(vec![(0, frame.clone()), (ids[1], reply.clone()), (0, frame.clone())]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        {
            let sessions = listener.shared.sessions.read();
            for id in &ids {
                let queued = sessions[id].handle.queued_frames();
                let expected = if *id == ids[1] { vec![&frame, &reply, &frame] } else { vec![&frame, &frame] };
                assert_eq!(queued.iter().collect::<Vec<_>>(), expected, "session {id}: in order");
                for (q, e) in queued.iter().zip(expected) {
                    assert_eq!(q.as_ptr(), e.as_ptr(), "session {id}: the same bytes, not a copy");
                }
            }
        }
        drop(pipes);
        listener.close(1001).await;
    }

    /// The sending side of the one session in the table that is not `but`.
    fn handle_of_the_other(listener: &Listener, but: Option<u32>) -> (u32, std::sync::Weak<SessionHandle>) {
        let sessions = listener.shared.sessions.read();
        let (&id, e) = sessions.iter().find(|(&id, _)| Some(id) != but).expect("a session");
        (id, Arc::downgrade(&e.handle))
    }

    #[tokio::test(start_paused = true)]
    async fn the_broadcast_snapshot_lets_go_of_a_session_once_it_ends() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let mut leaving = open(&listener).await;
        let (leaving_id, leaving_handle) = handle_of_the_other(&listener, None);
        let mut staying = open(&listener).await;
        let (_, staying_handle) = handle_of_the_other(&listener, Some(leaving_id));
        listener.send_many(vec![(0, Message::text("to both"))]);
        for ws in [&mut leaving, &mut staying] {
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("to both"));
        }
        leaving.close(None).await.unwrap();
        while leaving.next().await.is_some() {}
        drop(leaving);
        tokio::time::timeout(Duration::from_secs(10), async {
            while listener.shared.sessions.read().contains_key(&leaving_id) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the session left the table");
        // No send since: the dispatcher lets go of it all the same.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(leaving_handle.upgrade().is_none(), "a session that ended is still held");
        assert!(staying_handle.upgrade().is_some(), "the control: a live session is held by the table");
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn closing_under_a_full_inbox_does_not_wait_for_the_flow() {
        let inbox = Inbox::new(Box::new(|_| {}));
        let listener = Listener::new(ListenerConfig::default(), inbox.clone());
        let mut ws = open(&listener).await;
        // The flow has fallen behind: the session stops reading, a message unread.
        inbox.push(Event::new(Kind::Binary, 9, vec![0u8; crate::inbox::HIGH_WATER_BYTES], 0));
        ws.send(Message::text("unread")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The peer answers our close at once (tungstenite does as it reads it).
        let peer = tokio::spawn(async move {
            let mut last = None;
            while let Some(Ok(m)) = ws.next().await {
                last = Some(m);
            }
            last
        });
        let start = tokio::time::Instant::now();
        listener.close(1001).await;
        let took = start.elapsed();
        let close_timeout = ListenerConfig::default().session.close_timeout;
        assert!(took < close_timeout, "close took {took:?}: the session waited for room to read the answer");
        let last = tokio::time::timeout(Duration::from_secs(5), peer).await.unwrap().unwrap();
        assert!(matches!(last, Some(Message::Close(Some(ref f))) if u16::from(f.code) == 1001), "{last:?}");
    }

    /// A session's task as `start` makes it, not spawned, with its sending handle;
    /// its stream comes from `make`.
    fn unstarted<F>(listener: &Listener, make: F) -> (SessionHandle, impl std::future::Future<Output = ()>)
    where
        F: FnOnce() -> std::io::Result<tokio::net::TcpStream> + Send + 'static,
    {
        let departure = Departure { shared: listener.shared.clone(), id: 1, opened: false, finished: false };
        let (handle, queue) = SessionHandle::new(&SessionConfig::default(), false);
        let start = Start {
            response: Vec::new(),
            head: Vec::new(),
            queue,
            open: Bytes::new(),
            protocol_len: 0,
            make_stream: make,
        };
        (handle, serve(departure, Box::new(start)))
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[tokio::test]
    async fn the_task_cell_is_256_bytes() {
        // What `a_sessions_task_is_small` bounds, as tokio allocates it: its task
        // cells are aligned to 128 bytes on these targets, and nothing else that
        // spawning allocates is.
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let make = || -> std::io::Result<tokio::net::TcpStream> { Err(std::io::ErrorKind::Other.into()) };
        let (_handle, task) = unstarted(&listener, make);
        let (task, cell) = crate::test_alloc::largest_aligned(128, || tokio::spawn(task));
        task.await.unwrap();
        assert_eq!(cell, 256, "a session's task cell takes {cell} bytes");
        listener.close(1001).await;
    }

    /// Waits until each client has read something (its 101), for at most 10 s.
    #[cfg(unix)]
    async fn answered(clients: &mut [std::net::TcpStream]) {
        tokio::time::timeout(Duration::from_secs(10), answers(clients)).await.expect("every 101 within 10 s");
    }

    #[cfg(unix)]
    async fn answers(clients: &mut [std::net::TcpStream]) {
        use std::io::Read;
        for c in clients.iter_mut() {
            let mut buf = [0u8; 256];
            loop {
                match c.read(&mut buf) {
                    Ok(n) if n > 0 => break,
                    Ok(_) => panic!("a session closed"),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    /// What one idle session over TCP holds on the heap, as the addon asks for it
    /// (requested sizes: glibc adds 8 to 16 bytes per allocation): sessions
    /// adopted from descriptors as Node hands them over, each told its peer's
    /// address as JS tells it, counted once every client has its 101. (A burst
    /// trim the process's other tests set off in the window would add ~5 bytes.)
    #[cfg(all(unix, target_pointer_width = "64"))]
    #[tokio::test]
    async fn an_idle_tcp_session_holds_under_800_bytes() {
        use std::os::fd::AsRawFd;
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        // The session table grows past 112 to 224 sessions without a resize, and the
        // inbox's queue keeps its room: the counted ones find both grown.
        const WARM: usize = 130;
        const COUNTED: usize = 80;
        let mut clients = Vec::with_capacity(WARM + COUNTED);
        let open = |clients: &mut Vec<std::net::TcpStream>| {
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (server, _) = tcp.accept().unwrap();
            let id = listener.adopt_fd(server.as_raw_fd(), Vec::new(), &handshake::sample_request()).unwrap().unwrap();
            listener.set_remote(id, "127.0.0.1:54321");
            client.set_nonblocking(true).unwrap();
            clients.push(client);
        };
        for _ in 0..WARM {
            open(&mut clients);
        }
        answered(&mut clients).await;
        listener.shared.inbox.drain();
        let ((), held) = crate::test_alloc::net_bytes(async {
            for _ in 0..COUNTED {
                open(&mut clients);
            }
            answered(&mut clients[WARM..]).await;
            // Every session is waiting to read.
            for _ in 0..64 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        // 776 on 2026-12-01: tokio's task cell and socket registration (256 each),
        // the session's `Shared` (176) and sending handle (72), its peer's address.
        let per_session = held / COUNTED as isize;
        eprintln!("an idle TCP session holds {per_session} bytes");
        assert!(per_session > 512 && per_session <= 800, "an idle TCP session holds {per_session} bytes");
        drop(clients);
        listener.close(1001).await;
    }

    #[tokio::test]
    async fn a_sessions_task_is_small() {
        // The task's future is what a connection costs in memory while idle,
        // with the socket's registration and the session's `Shared`.
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let std_stream = std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr());
        let make = move || -> std::io::Result<tokio::net::TcpStream> {
            let _ = &std_stream;
            Err(std::io::ErrorKind::Other.into())
        };
        let (_handle, task) = unstarted(&listener, make);
        let size = std::mem::size_of_val(&task);
        drop(task);
        // tokio (1.54, x86_64) puts a task's future in a cell aligned to 128 bytes,
        // with 96 bytes of its own: up to 160 bytes of future the cell is 256
        // bytes, past that 384 (`the_task_cell_is_256_bytes` measures it).
        assert!(size <= 152, "a session's task takes {size} bytes");
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_limit_refuses_with_503_until_a_session_has_left() {
        let cfg = ListenerConfig { max_connections: Some(2), ..Default::default() };
        let listener = Listener::new(cfg, Inbox::new(Box::new(|_| {})));
        let mut first = open(&listener).await;
        let _second = open(&listener).await;
        let (refused, _) = adopt_pipe(&listener, 1024);
        let rejection = refused.expect_err("a third session was admitted");
        assert_eq!(rejection.status, 503);
        assert!(rejection.http_response().starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        first.close(None).await.unwrap();
        while first.next().await.is_some() {}
        drop(first);
        let admitted = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let (Ok(_), pipe) = adopt_pipe(&listener, 1024) {
                    return pipe;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        admitted.await.expect("admitted once the first session left");
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_adopted_during_a_large_broadcast_batch_is_not_held_up() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let _first = open(&listener).await;
        let n = 8 * SENDS_PER_YIELD;
        listener.send_many((0..n).map(|i| (0, Message::text(format!("b{i}")))).collect());
        tokio::task::yield_now().await; // the dispatcher starts on the batch
        let mut late = open(&listener).await;
        listener.send_many(vec![(0, Message::text("end"))]);
        let mut from_batch = 0;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), late.next()).await.unwrap().unwrap().unwrap();
            if m.to_text().unwrap() == "end" {
                break;
            }
            from_batch += 1;
        }
        // Had the batch held the table until it was through, the late session
        // would have joined after it and seen only "end".
        assert!(from_batch > 0 && from_batch < n, "the late session got {from_batch} of the batch");
        listener.close(1001).await;
    }
}
