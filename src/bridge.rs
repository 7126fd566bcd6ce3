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
        let _ = self.input.send(Some(data));
        if pending > HIGH_WATER {
            self.flow.wants_drain.store(true, Ordering::Release);
            return false;
        }
        true
    }

    /// The socket ended: the session sees end of stream.
    pub fn end(&self) {
        let _ = self.input.send(None);
    }

    /// JS's socket buffer is full: stop producing `Data` until `resume`.
    pub fn pause(&self) {
        self.flow.paused.store(true, Ordering::Release);
    }

    pub fn resume(&self) {
        self.flow.paused.store(false, Ordering::Release);
        self.flow.resumed.notify_waiters();
    }
}

pub fn start(listener: &Listener, head: Vec<u8>, req: &UpgradeRequest, output: OutputFn) -> Result<std::result::Result<BridgeHandle, Rejection>> {
    let (ours, theirs) = tokio::io::duplex(DUPLEX_BYTES);
    if let Err(rejection) = listener.adopt_stream(ours, head, req)? {
        return Ok(Err(rejection));
    }
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    let (input, mut rx) = mpsc::unbounded_channel::<Option<Bytes>>();
    let flow = Arc::new(Flow { pending: AtomicUsize::new(0), wants_drain: AtomicBool::new(false), paused: AtomicBool::new(false), resumed: Notify::new() });
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
            while f.paused.load(Ordering::Acquire) {
                let resumed = f.resumed.notified();
                tokio::pin!(resumed);
                resumed.as_mut().enable();
                if !f.paused.load(Ordering::Acquire) {
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
