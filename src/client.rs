//! One `websocket-client`: an outbound connection (ws:// or wss://, optionally
//! through an HTTP CONNECT proxy) that reconnects while the node is deployed.

use crate::error::{Error, Result};
use crate::inbox::{Event, Inbox, Kind};
use crate::listener::napi_or_tokio_spawn;
use crate::proxy::{self, ProxyOptions};
use crate::session::{self, Session, SessionConfig, SessionHandle};
use crate::stats::{Live, NodeStats, Order, Refusal, SessionRow, Snapshot};
use crate::stream::UpToHead;
use crate::tls::{self, DefaultTrust, TlsOptions};
use base64::Engine;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::Message;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub url: String,
    pub protocols: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub session: SessionConfig,
    pub tls: Option<TlsOptions>,
    /// What to trust without a `tls-config` CA, for the server and an https:// proxy.
    pub trust: DefaultTrust,
    pub proxy: ProxyOptions,
    /// Wait after a connection ends (core: 3 s) and after the first failed attempt;
    /// never less than `MIN_RECONNECT_DELAY`.
    pub reconnect_delay: Duration,
    /// Failed attempts in a row double the wait up to this.
    pub reconnect_max_delay: Duration,
    pub connect_timeout: Duration,
    /// Redial after a connection ends or an attempt fails (core always does).
    pub reconnect: bool,
    /// Dial as soon as the client starts; otherwise only when `connect` is called.
    pub connect_at_start: bool,
}

/// What the flow wants: a connection to `target` (the configured one or the last
/// asked for), or none. Each request bumps `generation`, so the supervisor can
/// tell a new request from the one it serves.
#[derive(Clone)]
struct Wanted {
    target: Arc<Target>,
    on: bool,
    generation: u64,
}

/// Where to connect, checked once when the node starts.
struct Target {
    request: Request,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Chosen once, on the JS thread: the environment is not read from workers
    /// (a concurrent `setenv` from `process.env` would be a data race).
    proxy: Option<String>,
    /// TLS to an https:// proxy: always verified against the default trust, as
    /// core's proxy agent does; a `tls-config` applies to the server only.
    proxy_tls: Option<Arc<rustls::ClientConfig>>,
    /// As asked, so that a later request can change one of them only.
    url: String,
    headers: Vec<(String, String)>,
}

impl Target {
    /// Same scheme, host and port.
    fn same_server(&self, other: &Target) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
            && self.tls.is_some() == other.tls.is_some()
    }

    fn parse(cfg: &ClientConfig) -> Result<Self> {
        let uri: Uri = cfg.url.parse().map_err(|e| Error::InvalidArgument(format!("invalid URL {}: {e}", cfg.url)))?;
        let secure = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(Error::InvalidArgument(format!("URL must start with ws:// or wss://: {}", cfg.url))),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidArgument(format!("URL has no host: {}", cfg.url)))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let userinfo = uri.authority().and_then(|a| a.as_str().rsplit_once('@')).map(|(u, _)| percent_decode(u));
        let mut request =
            uri.into_client_request().map_err(|e| Error::InvalidArgument(format!("invalid URL {}: {e}", cfg.url)))?;
        let headers = request.headers_mut();
        if let Some(credentials) = userinfo {
            // ws://user:pass@host/ sends Basic credentials, as core's `ws` does.
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
            headers.insert(
                "authorization",
                HeaderValue::from_str(&value).map_err(|_| Error::InvalidArgument("invalid URL credentials".into()))?,
            );
        }
        if !cfg.protocols.is_empty() {
            let list = HeaderValue::from_str(&cfg.protocols.join(", "))
                .map_err(|_| Error::InvalidArgument("invalid subprotocol".into()))?;
            headers.insert("sec-websocket-protocol", list);
        }
        for (name, value) in &cfg.headers {
            headers.insert(header_name(name)?, header_value(name, value)?);
        }
        let tls = if secure {
            Some(tls::client_config(cfg.tls.as_ref().unwrap_or(&TlsOptions::default()), &cfg.trust)?)
        } else {
            None
        };
        let scheme = if secure { "wss" } else { "ws" };
        let env = |k: &str| std::env::var(k).ok();
        let proxy = proxy::proxy_for(scheme, &host, port, &cfg.url, &cfg.proxy, &env);
        let proxy_tls = match &proxy {
            Some(p) if p.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) => {
                Some(tls::client_config(&TlsOptions::default(), &cfg.trust)?)
            }
            _ => None,
        };
        Ok(Target { request, host, port, tls, proxy, proxy_tls, url: cfg.url.clone(), headers: cfg.headers.clone() })
    }

    /// Connects and does the handshake (tungstenite's); the stream, the bytes
    /// the server sent after its answer, and the subprotocol it chose.
    async fn connect(&self, cfg: &ClientConfig) -> Result<(Box<dyn Io>, Vec<u8>, Bytes)> {
        let transport: Box<dyn Io> = match &self.proxy {
            Some(p) => through_proxy(p, self.proxy_tls.clone(), &self.host, self.port).await?,
            None => {
                let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
        };
        let stream: Box<dyn Io> = match &self.tls {
            Some(tls_config) => {
                let name = tls::server_name(&self.host, cfg.tls.as_ref().unwrap_or(&TlsOptions::default()))?;
                let tls = tokio_rustls::TlsConnector::from(tls_config.clone())
                    .connect(name, transport)
                    .await
                    .map_err(|e| Error::Tls(e.to_string()))?;
                Box::new(tls)
            }
            None => transport,
        };
        let (ws, response) = tokio_tungstenite::client_async_with_config(
            self.request.clone(),
            UpToHead::new(stream),
            Some(cfg.session.websocket_config()),
        )
        .await?;
        let protocol = response.headers().get("sec-websocket-protocol");
        let protocol = protocol.map_or_else(Bytes::new, |p| Bytes::copy_from_slice(p.as_bytes()));
        let (stream, rest) = ws.into_inner().into_parts();
        Ok((stream, rest, protocol))
    }
}

/// A custom header's name: an HTTP token, so no CR, LF or other byte can end the
/// line and smuggle in another header. Shown escaped, never raw, in the error.
fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        Error::InvalidArgument(format!(
            "header name {name:?} is not allowed: a name is letters, digits and !#$%&'*+-.^_`|~ only"
        ))
    })
}

/// A custom header's value: tab, visible ASCII and Latin-1, one byte each, as
/// Node.js (core's client) accepts and sends them; no control character, so no
/// CR or LF. The value may be a secret: the error names the header, not the value.
fn header_value(name: &str, value: &str) -> Result<HeaderValue> {
    let latin1: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
    latin1.and_then(|bytes| HeaderValue::from_bytes(&bytes).ok()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the value of header {name:?} holds a line break (CR or LF) or another character not allowed in HTTP headers"
        ))
    })
}

/// Open a tunnel with HTTP CONNECT, as core's proxy agent does for ws and wss
/// (over TLS to the proxy itself when its URL is https://, with `tls`).
async fn through_proxy(
    proxy_url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    host: &str,
    port: u16,
) -> Result<Box<dyn Io>> {
    let uri: Uri = proxy_url.parse().map_err(|_| Error::InvalidArgument(format!("invalid proxy URL: {proxy_url}")))?;
    let proxy_host = uri.host().ok_or_else(|| Error::InvalidArgument(format!("proxy URL has no host: {proxy_url}")))?;
    let proxy_host = proxy_host.trim_start_matches('[').trim_end_matches(']');
    let secure = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let proxy_port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((proxy_host, proxy_port)).await?;
    let _ = tcp.set_nodelay(true);
    let mut tcp: Box<dyn Io> = if secure {
        let config = tls.ok_or_else(|| Error::Tls("no TLS configuration for the https:// proxy".into()))?;
        let name = tls::server_name(proxy_host, &TlsOptions::default())?;
        Box::new(
            tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Error::Tls(format!("proxy: {e}")))?,
        )
    } else {
        Box::new(tcp)
    };
    let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')).map(|(userinfo, _)| userinfo) {
        let decoded = percent_decode(auth);
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(decoded)
        ));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;
    // Read the proxy's answer byte by byte so nothing past its headers is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(Error::Protocol("proxy answer too long".into()));
        }
        let b = tcp.read_u8().await?;
        head.push(b);
    }
    let status_line = String::from_utf8_lossy(&head[..head.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(Error::Protocol(format!("proxy refused the tunnel: {status_line}")));
    }
    Ok(tcp)
}

/// `%XX` escapes decoded; anything else (a lone `%`) kept as it is.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

struct Shared {
    cfg: ClientConfig,
    inbox: Arc<Inbox>,
    current: Mutex<Option<(u32, SessionHandle)>>,
    stop: watch::Sender<bool>,
    wanted: watch::Sender<Wanted>,
    /// The node's own URL and headers.
    configured: Arc<Target>,
    stats: NodeStats,
}

impl Shared {
    fn new(cfg: ClientConfig, inbox: Arc<Inbox>, target: Target) -> (Arc<Self>, watch::Receiver<bool>) {
        let (stop, stopped) = watch::channel(false);
        let on = cfg.connect_at_start;
        let configured = Arc::new(target);
        let (wanted, _) = watch::channel(Wanted { target: configured.clone(), on, generation: 0 });
        let stats = NodeStats::default();
        (Arc::new(Shared { cfg, inbox, current: Mutex::new(None), stop, wanted, configured, stats }), stopped)
    }

    /// A new request: the live connection, if any, is closed (1000) so that the
    /// supervisor serves the request at once.
    fn want(&self, on: bool, target: Option<Arc<Target>>) {
        self.wanted.send_modify(|w| {
            if let Some(t) = target {
                w.target = t;
            }
            w.on = on;
            w.generation += 1;
        });
        if let Some((_, handle)) = &*self.current.lock() {
            handle.close(1000);
        }
    }
}

pub struct Client {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Client {
    /// Check the configuration and start connecting; errors here are the user's
    /// to fix (bad URL, bad TLS material) and are not retried.
    pub fn start(cfg: ClientConfig, inbox: Arc<Inbox>) -> Result<Self> {
        let target = Target::parse(&cfg)?;
        // The supervisor's receivers exist before close() can send, so no stop is lost.
        let (shared, stopped) = Shared::new(cfg, inbox, target);
        let s = shared.clone();
        let dial = move |target: Arc<Target>| {
            let shared = s.clone();
            async move { target.connect(&shared.cfg).await }
        };
        let task = napi_or_tokio_spawn(supervise(shared.clone(), dial, stopped));
        Ok(Client { shared, task: Mutex::new(Some(task)) })
    }

    /// Connect (again): to `url` and with `headers` where given (they replace the
    /// last ones, which are kept for later connects), else as last asked or
    /// configured. Already connected or connecting with nothing new asked:
    /// nothing changes. A bad URL or header is an error and changes nothing.
    pub fn connect(&self, url: Option<String>, headers: Option<Vec<(String, String)>>) -> Result<()> {
        let (last, on) = {
            let w = self.shared.wanted.borrow();
            (w.target.clone(), w.on)
        };
        if url.is_none() && headers.is_none() {
            if !on {
                self.shared.want(true, None);
            }
            return Ok(());
        }
        let mut cfg = self.shared.cfg.clone();
        cfg.url = url.unwrap_or_else(|| last.url.clone());
        cfg.headers = Vec::new();
        let bare = Target::parse(&cfg)?;
        // Headers (credentials, often) go only to the server they were meant for:
        // one that names another server gets none unless the msg gives them.
        let kept = match headers {
            Some(h) => h,
            None if bare.same_server(&last) => last.headers.clone(),
            None if bare.same_server(&self.shared.configured) => self.shared.configured.headers.clone(),
            None => Vec::new(),
        };
        let target = if kept.is_empty() {
            bare
        } else {
            cfg.headers = kept;
            Target::parse(&cfg)?
        };
        self.shared.want(true, Some(Arc::new(target)));
        Ok(())
    }

    /// Close the connection (1000) and stop dialling until `connect`.
    pub fn disconnect(&self) {
        self.shared.want(false, None);
    }

    /// Send on the live connection. With `session`, only if it is still that one.
    pub fn send(&self, session: Option<u32>, msg: Message) -> bool {
        match &*self.shared.current.lock() {
            Some((id, handle)) if session.is_none_or(|s| s == *id) => handle.send(msg),
            _ => false,
        }
    }

    /// The client's counters, its live connection's added up now.
    pub fn stats(&self) -> Snapshot {
        let current = self.shared.current.lock();
        let live = current.iter().map(|(_, h)| (Live { stats: h.stats(), queued: h.unsent() }, h.dropped()));
        self.shared.stats.snapshot(live)
    }

    /// The live connection, as a session list of one (or none).
    pub fn sessions(&self) -> (usize, Vec<SessionRow>) {
        let current = self.shared.current.lock();
        let live = current.iter().map(|(id, h)| (*id, h.stats(), h.unsent(), h.dropped()));
        let rows = crate::stats::top_sessions(live, Order::Queued, 1, |_| Vec::new());
        (rows.len(), rows)
    }

    /// Stop reconnecting, close the connection with `code`, wait for the end.
    /// Events are discarded from the start, as `Listener::close` does.
    pub async fn close(&self, code: u16) {
        self.shared.stop.send_replace(true);
        self.shared.inbox.discard();
        if let Some((_, handle)) = &*self.shared.current.lock() {
            handle.close(code);
        }
        let task = self.task.lock().take();
        if let Some(mut task) = task {
            let limit = self.shared.cfg.session.close_timeout + Duration::from_millis(500);
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        self.shared.inbox.close();
    }
}

/// Dials (through `dial`) what the flow wants, runs each connection, and waits
/// between attempts; a new request (connect, disconnect) cuts any wait short.
async fn supervise<D, F, S>(shared: Arc<Shared>, dial: D, mut stop: watch::Receiver<bool>)
where
    D: Fn(Arc<Target>) -> F,
    F: std::future::Future<Output = Result<(S, Vec<u8>, Bytes)>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &shared.cfg;
    let inbox = &shared.inbox;
    let mut wanted = shared.wanted.subscribe();
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        let mut request = wanted.borrow_and_update().clone();
        if !request.on {
            inbox.push(Event::new(Kind::Idle, 0, Bytes::new(), 0));
            failures = 0;
            tokio::select! {
                r = wanted.wait_for(|w| w.on) => match r {
                    Ok(w) => request = w.clone(),
                    Err(_) => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let (target, generation) = (request.target, request.generation);
        let url = target.url.clone();
        let asked_again = |w: &Wanted| w.generation != generation;
        let id = session::next_id();
        inbox.push(Event::new(Kind::Connecting, id, Bytes::new(), 0));
        let (handle, session_shared) = SessionHandle::new(&cfg.session, true);
        // Host and port only: the URL may carry credentials.
        session_shared.stats.set_remote(&format!("{}:{}", target.host, target.port));
        let attempt = tokio::select! {
            r = tokio::time::timeout(cfg.connect_timeout, dial(target)) => r,
            _ = stop.wait_for(|s| *s) => break,
            // Abandoned for a newer request.
            _ = wanted.wait_for(asked_again) => continue,
        };
        match attempt {
            Ok(Ok((stream, rest, protocol))) => {
                failures = 0;
                *shared.current.lock() = Some((id, handle));
                if *stop.borrow() || asked_again(&shared.wanted.borrow()) {
                    // close() or a request came while connecting and saw no session.
                    if let Some((_, h)) = &*shared.current.lock() {
                        h.close(if *stop.borrow() { 1001 } else { 1000 });
                    }
                }
                // The subprotocol (`extra` its length, as a listener's), then the URL
                // dialled, without credentials, for the connect event.
                let protocol_len = protocol.len() as u32;
                session_shared.stats.set_protocol(std::str::from_utf8(&protocol).unwrap_or(""));
                shared.stats.opened();
                let open = [protocol.as_ref(), without_userinfo(&url).as_bytes()].concat();
                inbox.push(Event::new(Kind::Open, id, open, protocol_len));
                if let Some((_, h)) = &*shared.current.lock() {
                    h.report_drops(inbox, id);
                }
                let ended = Session::new(stream, rest, id, session_shared, inbox.clone(), &cfg.session).await;
                let handle = shared.current.lock().take();
                if let Some((_, h)) = &handle {
                    shared.stats.closed(ended.code, h.stats(), h.dropped(), h.overflowed());
                }
                if let Some(err) = ended.error {
                    inbox.push(Event::new(Kind::Error, id, err, 0));
                }
                inbox.push(Event::new(Kind::Close, id, ended.reason.into_bytes(), ended.code.into()));
                // The session and its handle are gone, its queue with them; then trim.
                let unsent = handle.map_or(0, |(_, h)| h.unsent());
                crate::memory::session_freed(unsent);
            }
            Ok(Err(e)) => {
                failures += 1;
                shared.stats.refused(Refusal::ConnectFailed);
                inbox.push(Event::new(Kind::Error, id, e.to_string(), 0));
            }
            Err(_) => {
                failures += 1;
                shared.stats.refused(Refusal::ConnectFailed);
                inbox.push(Event::new(
                    Kind::Error,
                    id,
                    format!("connection timed out after {:?}", cfg.connect_timeout),
                    0,
                ));
            }
        }
        if asked_again(&shared.wanted.borrow()) {
            failures = 0;
            continue;
        }
        if !cfg.reconnect {
            // Stay down until asked; a request that came meanwhile stands.
            shared.wanted.send_if_modified(|w| {
                let same = w.generation == generation;
                if same {
                    w.on = false;
                }
                same
            });
            continue;
        }
        let delay = backoff(cfg.reconnect_delay, cfg.reconnect_max_delay, failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
            _ = wanted.wait_for(asked_again) => failures = 0,
        }
    }
}

/// `ws://user:pass@host/x` as `ws://host/x`: what may be shown of a URL.
fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest_at) = url.find("://").map(|i| i + 3) else { return url.into() };
    let authority_end = url[rest_at..].find(['/', '?', '#']).map_or(url.len(), |i| rest_at + i);
    match url[rest_at..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..rest_at], &url[rest_at + at + 1..]).into(),
        None => url.into(),
    }
}

/// The shortest wait between attempts, whatever the settings say: a delay of 0
/// would redial in a tight loop.
pub const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The wait before the next attempt: the base delay after a connection or the
/// first failure, doubling with each further failure, capped.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let base = base.max(MIN_RECONNECT_DELAY);
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(max.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            protocols: vec![],
            headers: vec![],
            session: SessionConfig::default(),
            tls: None,
            trust: DefaultTrust::default(),
            proxy: ProxyOptions::default(),
            reconnect_delay: Duration::from_secs(3),
            reconnect_max_delay: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect: true,
            connect_at_start: true,
        }
    }

    #[test]
    fn backoff_doubles_from_the_core_delay_and_caps() {
        let (b, m) = (Duration::from_secs(3), Duration::from_secs(30));
        assert_eq!(backoff(b, m, 0), b);
        assert_eq!(backoff(b, m, 1), b);
        assert_eq!(backoff(b, m, 2), Duration::from_secs(6));
        assert_eq!(backoff(b, m, 4), Duration::from_secs(24));
        assert_eq!(backoff(b, m, 40), m);
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 3), MIN_RECONNECT_DELAY);
    }

    /// The times at which the supervisor dials a server that always refuses, on
    /// tokio's paused clock, until `attempts` have been made.
    async fn attempt_times(delay_ms: u64, max_ms: u64, attempts: usize) -> Vec<u64> {
        let mut c = cfg("ws://127.0.0.1:9/");
        (c.reconnect_delay, c.reconnect_max_delay) = (Duration::from_millis(delay_ms), Duration::from_millis(max_ms));
        let target = Target::parse(&c).unwrap();
        let (shared, stopped) = Shared::new(c, Inbox::new(Box::new(|_| {})), target);
        let start = tokio::time::Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let (s, t) = (shared.clone(), times.clone());
        let dial = move |_: Arc<Target>| {
            let mut times = t.lock();
            times.push((tokio::time::Instant::now() - start).as_millis() as u64);
            if times.len() == attempts {
                s.stop.send_replace(true);
            }
            let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
            async move { Err::<(tokio::io::DuplexStream, Vec<u8>, Bytes), _>(refused.into()) }
        };
        tokio::time::timeout(Duration::from_secs(600), supervise(shared, dial, stopped)).await.unwrap();
        let times = times.lock().clone();
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_server_is_redialled_with_a_doubling_wait_up_to_the_cap() {
        assert_eq!(attempt_times(200, 1000, 6).await, [0, 200, 600, 1400, 2400, 3400]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_delay_still_waits_the_minimum_between_attempts() {
        let step = MIN_RECONNECT_DELAY.as_millis() as u64;
        assert_eq!(attempt_times(0, 0, 4).await, [0, step, 2 * step, 3 * step]);
    }

    /// Dials made: (ms since the start, URL).
    type Dials = Arc<Mutex<Vec<(u64, String)>>>;

    /// A client whose dials are recorded and always refused.
    fn refusing_client(c: ClientConfig) -> (Client, Dials) {
        let target = Target::parse(&c).unwrap();
        let (shared, stopped) = Shared::new(c, Inbox::new(Box::new(|_| {})), target);
        let start = tokio::time::Instant::now();
        let dials = Arc::new(Mutex::new(Vec::new()));
        let d = dials.clone();
        let dial = move |t: Arc<Target>| {
            d.lock().push(((tokio::time::Instant::now() - start).as_millis() as u64, t.url.clone()));
            let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
            async move { Err::<(tokio::io::DuplexStream, Vec<u8>, Bytes), _>(refused.into()) }
        };
        let task = tokio::spawn(supervise(shared.clone(), dial, stopped));
        (Client { shared, task: Mutex::new(Some(task)) }, dials)
    }

    async fn at(ms: u64) {
        tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(ms)).await;
    }

    const A: &str = "ws://127.0.0.1:9/a";
    const B: &str = "ws://127.0.0.1:9/b";

    #[tokio::test(start_paused = true)]
    async fn with_reconnect_off_a_failed_dial_is_not_retried_until_the_flow_asks() {
        let mut c = cfg(A);
        (c.reconnect, c.reconnect_delay) = (false, Duration::from_millis(200));
        let (client, dials) = refusing_client(c);
        at(10_000).await;
        assert_eq!(*dials.lock(), [(0, A.into())]);
        client.connect(None, None).unwrap();
        at(10_000).await;
        assert_eq!(*dials.lock(), [(0, A.into()), (10_000, A.into())]);
        client.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn on_request_nothing_is_dialled_until_connect_which_can_name_the_url() {
        let mut c = cfg(A);
        (c.connect_at_start, c.reconnect_delay, c.reconnect_max_delay) =
            (false, Duration::from_millis(200), Duration::from_millis(200));
        let (client, dials) = refusing_client(c);
        at(5_000).await;
        assert!(dials.lock().is_empty(), "dialled before asked: {:?}", dials.lock());
        client.connect(Some(B.into()), None).unwrap();
        at(450).await;
        // Asked for B: B is dialled, and redialled after each failure.
        assert_eq!(*dials.lock(), [(5_000, B.into()), (5_200, B.into()), (5_400, B.into())]);
        client.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_url_cuts_the_wait_short_and_disconnect_stops_the_dialling() {
        let mut c = cfg(A);
        (c.reconnect_delay, c.reconnect_max_delay) = (Duration::from_millis(1_000), Duration::from_millis(1_000));
        let (client, dials) = refusing_client(c);
        at(500).await;
        client.connect(Some(B.into()), None).unwrap();
        at(300).await;
        // Connecting again with nothing new asked changes nothing.
        client.connect(None, None).unwrap();
        at(1_000).await;
        assert_eq!(*dials.lock(), [(0, A.into()), (500, B.into()), (1_500, B.into())]);
        client.disconnect();
        at(60_000).await;
        assert_eq!(dials.lock().len(), 3, "dialled after disconnect: {:?}", dials.lock());
        // A bad URL is refused and changes nothing; a good one dials at once.
        let e = client.connect(Some("http://127.0.0.1:9/".into()), None).unwrap_err();
        assert_eq!(e.code(), "ERR_WSRS_INVALID_ARGUMENT");
        at(1_000).await;
        assert_eq!(dials.lock().len(), 3);
        client.connect(None, None).unwrap();
        at(1).await;
        assert_eq!(dials.lock().last(), Some(&(62_800, B.into())), "the last URL asked for is kept");
        client.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn closing_under_a_full_inbox_does_not_wait_for_the_flow() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::protocol::Role;
        let inbox = Inbox::new(Box::new(|_| {}));
        let c = cfg("ws://127.0.0.1:9/");
        let target = Target::parse(&c).unwrap();
        let (shared, stopped) = Shared::new(c, inbox.clone(), target);
        // One connection, over a pipe, whose other end is the server.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let ours = Mutex::new(Some(ours));
        let dial = move |_: Arc<Target>| {
            let stream = ours.lock().take();
            async move { stream.map(|s| (s, Vec::new(), Bytes::new())).ok_or(Error::Closed) }
        };
        let client = Client {
            shared: shared.clone(),
            task: Mutex::new(Some(napi_or_tokio_spawn(supervise(shared, dial, stopped)))),
        };
        let mut server = tokio_tungstenite::WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
        // The flow has fallen behind: the session stops reading, a message unread.
        inbox.push(Event::new(Kind::Binary, 9, vec![0u8; crate::inbox::HIGH_WATER_BYTES], 0));
        server.send(Message::text("unread")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The server answers our close at once (tungstenite does as it reads it).
        let peer = tokio::spawn(async move {
            let mut last = None;
            while let Some(Ok(m)) = server.next().await {
                last = Some(m);
            }
            last
        });
        let start = tokio::time::Instant::now();
        client.close(1001).await;
        let took = start.elapsed();
        let close_timeout = SessionConfig::default().close_timeout;
        assert!(took < close_timeout, "close took {took:?}: the session waited for room to read the answer");
        let last = tokio::time::timeout(Duration::from_secs(5), peer).await.unwrap().unwrap();
        assert!(matches!(last, Some(Message::Close(Some(ref f))) if u16::from(f.code) == 1001), "{last:?}");
    }

    #[test]
    fn urls_are_checked_up_front() {
        assert!(Target::parse(&cfg("ws://127.0.0.1:1880/ws/echo")).is_ok());
        assert!(Target::parse(&cfg("wss://[::1]/x")).is_ok_and(|t| t.host == "::1" && t.port == 443));
        for bad in ["http://h/x", "ws://", "not a url", ""] {
            let e = Target::parse(&cfg(bad)).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.code(), "ERR_WSRS_INVALID_ARGUMENT", "{bad}: {e}");
        }
        let mut c = cfg("ws://h/x");
        c.headers = vec![("bad name".into(), "v".into())];
        assert!(Target::parse(&c).is_err());
    }

    #[test]
    fn custom_headers_cannot_break_the_request_lines() {
        let with = |name: &str, value: &str| {
            let mut c = cfg("ws://h/x");
            c.headers = vec![(name.into(), value.into())];
            Target::parse(&c)
        };
        for (name, value) in
            [("X-A", "v\r\nX-Injected: 1"), ("X-A", "v\nX"), ("X-A", "v\rX"), ("X-A", "v\0"), ("X-A", "日本")]
        {
            let e = with(name, value).err().unwrap_or_else(|| panic!("{value:?} accepted"));
            assert_eq!(e.code(), "ERR_WSRS_INVALID_ARGUMENT");
            assert!(e.to_string().contains("\"X-A\"") && !e.to_string().contains(value), "{e}");
        }
        let e = with("X-A\r\nX-Injected", "v").err().expect("a name with CR LF accepted");
        assert!(e.to_string().contains(r#""X-A\r\nX-Injected""#), "the name is shown escaped: {e}");
        let latin1 = with("X-Name", "M\u{fc}ller\tok").expect("Latin-1 and tab, as Node sends them");
        assert_eq!(latin1.request.headers()["x-name"].as_bytes(), b"M\xfcller\tok");
    }

    #[test]
    fn url_credentials_become_basic_auth_and_leave_the_host_alone() {
        let t = Target::parse(&cfg("ws://us%40er:pass@127.0.0.1:9/x")).unwrap();
        let h = t.request.headers();
        assert_eq!(h["authorization"], "Basic dXNAZXI6cGFzcw==");
        assert_eq!(h["host"], "127.0.0.1:9");
        let mut explicit = cfg("ws://u:p@h/x");
        explicit.headers = vec![("Authorization".into(), "Bearer t".into())];
        assert_eq!(Target::parse(&explicit).unwrap().request.headers()["authorization"], "Bearer t");
    }

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(without_userinfo("ws://u:p@h:1/x?y=@z"), "ws://h:1/x?y=@z");
        assert_eq!(without_userinfo("wss://h/p@q"), "wss://h/p@q");
        assert_eq!(without_userinfo("ws://a@b@h"), "ws://h");
        assert_eq!(without_userinfo("ws://h"), "ws://h");
    }

    #[test]
    fn proxy_credentials_are_decoded() {
        assert_eq!(percent_decode("us%40er:p%3Ass"), b"us@er:p:ss");
        assert_eq!(percent_decode("plain%"), b"plain%");
    }
}
