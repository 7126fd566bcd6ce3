//! The byte bridge for connections Rust cannot own directly (Node-RED serving
//! HTTPS: the TLS session lives in a JS socket). JS feeds decrypted bytes in, the
//! session runs over an in-memory duplex, and its output goes back to JS to write.

use crate::error::Result;
use crate::handshake::{Rejection, UpgradeRequest};
use crate::listener::{napi_or_tokio_spawn, Listener};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

/// Bytes from JS waiting to enter the session past which JS should pause its socket.
const HIGH_WATER: usize = 1 << 20;
const DUPLEX_BYTES: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// What the bridge asks JS to do.
pub enum Output {
    /// Write these bytes to the socket.
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
    paused: AtomicBool,
    /// The socket is gone: output never pauses again (no 'drain' will come).
    ended: AtomicBool,
    resumed: Notify,
}

pub struct BridgeHandle {
    input: mpsc::UnboundedSender<Option<Bytes>>,
    flow: Arc<Flow>,
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
    /// stops waiting for a `drain` that will never come.
    pub fn end(&self) {
        let _ = self.input.send(None);
        self.flow.ended.store(true, Ordering::Release);
        self.resume();
    }

    /// JS's socket buffer is full: stop producing `Data` until `resume`.
    pub fn pause(&self) {
        if !self.flow.ended.load(Ordering::Acquire) {
            self.flow.paused.store(true, Ordering::Release);
        }
    }

    pub fn resume(&self) {
        self.flow.paused.store(false, Ordering::Release);
        self.flow.resumed.notify_waiters();
    }
}

pub fn start(
    listener: &Listener,
    head: Vec<u8>,
    req: &UpgradeRequest,
    output: OutputFn,
) -> Result<std::result::Result<BridgeHandle, Rejection>> {
    let (ours, theirs) = tokio::io::duplex(DUPLEX_BYTES);
    if let Err(rejection) = listener.adopt_stream(ours, head, req)? {
        return Ok(Err(rejection));
    }
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    let (input, mut rx) = mpsc::unbounded_channel::<Option<Bytes>>();
    let flow = Arc::new(Flow {
        pending: AtomicUsize::new(0),
        wants_drain: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        ended: AtomicBool::new(false),
        resumed: Notify::new(),
    });
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
            while f.paused.load(Ordering::Acquire) && !f.ended.load(Ordering::Acquire) {
                let resumed = f.resumed.notified();
                tokio::pin!(resumed);
                resumed.as_mut().enable();
                if !f.paused.load(Ordering::Acquire) || f.ended.load(Ordering::Acquire) {
                    break;
                }
                resumed.await;
            }
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => output(Output::Data(Bytes::copy_from_slice(&buf[..n]))),
            }
        }
        output(Output::End);
    });

    Ok(Ok(BridgeHandle { input, flow }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::Inbox;
    use crate::listener::ListenerConfig;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn ending_a_paused_bridge_still_ends_its_output() {
        let listener = Listener::new(ListenerConfig::default(), Inbox::new(Box::new(|_| {})));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out: OutputFn = Box::new(move |o| {
            let _ = tx.send(matches!(o, Output::End));
        });
        let bridge = start(&listener, Vec::new(), &crate::handshake::sample_request(), out).unwrap().unwrap();
        bridge.pause(); // JS's socket buffer is full ...
        bridge.end(); // ... and then the socket closes: no 'drain' will ever come
        bridge.pause(); // a write to the dead socket "fails" and asks to pause again
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(is_end) = rx.recv().await {
                if is_end {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ended, Ok(true), "the output task must finish, not wait for a resume");
        listener.close(1001).await;
    }
}
