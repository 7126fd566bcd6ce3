//! The byte bridge for connections Rust cannot own directly (Node-RED serving
//! HTTPS: the TLS session lives in a JS socket). JS feeds decrypted bytes in, the
//! session runs over an in-memory duplex, and its output goes back to JS to write.
//!
//! Output is credit-based: JS reports the bytes its socket has taken (`written`),
//! and no more than `OUT_WINDOW` may be in JS's hands. A peer that stops reading
//! thus stops the output, the duplex fills, and the session's own queue cap closes
//! it (1008), as for a handed-over socket.

use crate::error::Result;
use crate::handshake::{Rejection, UpgradeRequest};
use crate::listener::{napi_or_tokio_spawn, Listener};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, Notify};

/// Bytes from JS waiting to enter the session past which JS should pause its socket.
const HIGH_WATER: usize = 1 << 20;
/// Output bytes handed to JS and not yet taken by its socket, past which output waits.
pub const OUT_WINDOW: usize = 1 << 20;
const DUPLEX_BYTES: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// What the bridge asks JS to do.
pub enum Output {
    /// Write these bytes to the socket, then report them with `written`.
    Data(Bytes),
    /// The input queue drained: resume reading the socket.
    Drain,
    /// The session is over: end the socket.
    End,
}

pub type OutputFn = Box<dyn Fn(Output) + Send + Sync>;

struct Flow {
    pending: AtomicUsize,
    wants_drain: AtomicBool,
    /// Output bytes JS holds: sent as `Data`, not yet reported `written`.
    unwritten: AtomicUsize,
    /// The socket is gone: output is dropped, never waited for.
    ended: AtomicBool,
    /// The session ended: what it left in the duplex goes out without waiting.
    session_gone: AtomicBool,
    /// Wakes the output task (room in JS, socket gone, session gone).
    wake: Notify,
}

pub struct BridgeHandle {
    input: mpsc::UnboundedSender<Option<Bytes>>,
    flow: Arc<Flow>,
    /// The listener's session this bridge carries.
    pub id: u32,
}

impl BridgeHandle {
    /// Feed bytes from the socket; false asks JS to pause it until `Drain`.
    pub fn push(&self, data: Bytes) -> bool {
        let len = data.len();
        let pending = self.flow.pending.fetch_add(len, Ordering::AcqRel) + len;
        let over = pending > HIGH_WATER;
        if over {
            // Set before queueing, so the writer's drain check cannot miss it.
            self.flow.wants_drain.store(true, Ordering::Release);
        }
        let _ = self.input.send(Some(data));
        if over
            && self.flow.pending.load(Ordering::Acquire) <= HIGH_WATER / 2
            && self.flow.wants_drain.swap(false, Ordering::AcqRel)
        {
            // The writer drained in the meantime and saw no request: no pause needed.
            return true;
        }
        !over
    }

    /// The socket ended or closed: the session sees end of stream, and output
    /// stops waiting for JS.
    pub fn end(&self) {
        let _ = self.input.send(None);
        self.flow.ended.store(true, Ordering::Release);
        self.flow.wake.notify_one();
    }

    /// JS's socket has taken `bytes` of the output (they left JS's hands or sit
    /// below its write buffer's high-water mark).
    pub fn written(&self, bytes: usize) {
        let _ =
            self.flow.unwritten.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(bytes)));
        self.flow.wake.notify_one();
    }
}

/// The session's end of the duplex; dropped when the session ends, which tells
/// the output task to stop waiting for room in JS so that the end reaches JS.
struct SessionSide {
    inner: DuplexStream,
    flow: Arc<Flow>,
}

impl Drop for SessionSide {
    fn drop(&mut self) {
        self.flow.session_gone.store(true, Ordering::Release);
        self.flow.wake.notify_one();
    }
}

impl AsyncRead for SessionSide {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionSide {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    // A burst the session has queued crosses the pipe in one write.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub fn start(
    listener: &Listener,
    head: Vec<u8>,
    req: &UpgradeRequest,
    output: OutputFn,
) -> Result<std::result::Result<BridgeHandle, Rejection>> {
    let flow = Arc::new(Flow {
        pending: AtomicUsize::new(0),
        wants_drain: AtomicBool::new(false),
        unwritten: AtomicUsize::new(0),
        ended: AtomicBool::new(false),
        session_gone: AtomicBool::new(false),
        wake: Notify::new(),
    });
    let (ours, theirs) = tokio::io::duplex(DUPLEX_BYTES);
    let session_side = SessionSide { inner: ours, flow: flow.clone() };
    let id = match listener.adopt_stream(session_side, head, req)? {
        Ok(id) => id,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    let (input, mut rx) = mpsc::unbounded_channel::<Option<Bytes>>();
    let output = Arc::new(output);

    let (f, out) = (flow.clone(), output.clone());
    napi_or_tokio_spawn(async move {
        while let Some(Some(chunk)) = rx.recv().await {
            let len = chunk.len();
            if to_session.write_all(&chunk).await.is_err() {
                break;
            }
            let left = f.pending.fetch_sub(len, Ordering::AcqRel) - len;
            if left <= HIGH_WATER / 2 && f.wants_drain.swap(false, Ordering::AcqRel) {
                out(Output::Drain);
            }
        }
        let _ = to_session.shutdown().await;
    });

    let f = flow.clone();
    napi_or_tokio_spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            // Notify keeps one permit, so a wake between the check and the wait is not lost.
            while f.unwritten.load(Ordering::Acquire) >= OUT_WINDOW
                && !f.ended.load(Ordering::Acquire)
                && !f.session_gone.load(Ordering::Acquire)
            {
                f.wake.notified().await;
            }
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) if f.ended.load(Ordering::Acquire) => {} // nobody to write to
                Ok(n) => {
                    f.unwritten.fetch_add(n, Ordering::AcqRel);
                    output(Output::Data(Bytes::copy_from_slice(&buf[..n])));
                }
            }
        }
        output(Output::End);
    });

    Ok(Ok(BridgeHandle { input, flow, id }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::Inbox;
    use crate::listener::ListenerConfig;
    use crate::session::SessionConfig;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    /// A bridged session whose output is collected: `(bridge, output events)`.
    /// Nothing is reported `written` unless the test says so.
    fn bridged(listener: &Listener) -> (BridgeHandle, mpsc::UnboundedReceiver<Option<usize>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let out: OutputFn = Box::new(move |o| {
            let _ = tx.send(match o {
                Output::Data(b) => Some(b.len()),
                Output::Drain => Some(0),
                Output::End => None,
            });
        });
        let bridge = start(listener, Vec::new(), &crate::handshake::sample_request(), out).unwrap().unwrap();
        (bridge, rx)
    }

    /// Output bytes received so far, once every task has settled; None once ended.
    async fn settled(rx: &mut mpsc::UnboundedReceiver<Option<usize>>) -> Option<usize> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut total = 0;
        while let Ok(event) = rx.try_recv() {
            total += event?;
        }
        Some(total)
    }

    async fn ended(rx: &mut mpsc::UnboundedReceiver<Option<usize>>) -> bool {
        let end = tokio::time::timeout(Duration::from_secs(30), async { while let Some(Some(_)) = rx.recv().await {} });
        end.await.is_ok()
    }

    fn flood(listener: &Listener, bytes: usize) {
        let chunk = Message::Binary(vec![0u8; 64 * 1024].into());
        listener.send_many((0..bytes / (64 * 1024)).map(|_| (0, chunk.clone())).collect());
    }

    #[tokio::test(start_paused = true)]
    async fn output_waits_for_js_to_write_what_it_holds() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let (bridge, mut rx) = bridged(&listener);
        flood(&listener, 4 * OUT_WINDOW);
        let first = settled(&mut rx).await.unwrap();
        assert!((OUT_WINDOW..OUT_WINDOW + READ_CHUNK).contains(&first), "JS was given {first} bytes");
        bridge.written(first);
        let second = settled(&mut rx).await.unwrap();
        assert!((OUT_WINDOW..OUT_WINDOW + READ_CHUNK).contains(&second), "then {second} more");
        bridge.end();
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_closed_by_the_queue_cap_and_output_ends() {
        let session = SessionConfig { max_queue_bytes: 256 * 1024, ..Default::default() };
        let (tx, mut events) = mpsc::unbounded_channel();
        let inbox = Inbox::new(Box::new(move |i| {
            let _ = tx.send(i);
        }));
        let listener = Listener::new(ListenerConfig { session, ..Default::default() }, inbox);
        let (_bridge, mut rx) = bridged(&listener);
        // Sent a little at a time, so that only a stalled output lets the queue grow.
        // JS never reports anything written.
        let mut given = 0;
        for _ in 0..4 * OUT_WINDOW / (64 * 1024) {
            flood(&listener, 64 * 1024);
            match settled(&mut rx).await {
                Some(n) => given += n,
                None => break,
            }
        }
        assert!(given < OUT_WINDOW + READ_CHUNK, "JS was given {given} bytes");
        assert!(ended(&mut rx).await, "the output must end once the session is closed");
        let inbox = events.recv().await.unwrap();
        let batch = String::from_utf8_lossy(&inbox.drain_as_js()).into_owned();
        assert!(batch.contains("peer too slow"), "{batch:?}");
        listener.close(1001).await;
    }

    #[tokio::test(start_paused = true)]
    async fn ending_a_bridge_whose_output_waits_still_ends_its_output() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let (bridge, mut rx) = bridged(&listener);
        flood(&listener, 2 * OUT_WINDOW);
        settled(&mut rx).await; // JS holds a full window and its socket then closes
        bridge.end();
        assert!(ended(&mut rx).await, "the output task must finish, not wait for room in JS");
        listener.close(1001).await;
    }
}
