//! `Prefixed`: a session's byte stream. It first yields bytes already read by
//! someone else (the `head` of an upgrade request), then reads from the socket
//! (instead of tungstenite's `from_partially_read`, whose zero-capacity read buffer
//! made every frame a malloc: TRANSPORT-NOTES §2). It also counts reads that bring
//! bytes, so the heartbeat counts a long frame still arriving as a live peer, and
//! has `Utf8Watch` follow the bytes, so invalid text fails as it arrives.

use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::utf8_watch::{InvalidUtf8, Utf8Watch};

pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
    /// Counts reads that brought bytes (see `session::Shared::heard`).
    heard: Arc<AtomicU64>,
    watch: Utf8Watch,
    /// Set once the peer's text is known invalid: the next read fails with it.
    invalid: bool,
}

impl<S> Prefixed<S> {
    /// A server's session stream: frames from the first byte.
    pub fn new(prefix: impl Into<Bytes>, inner: S, heard: Arc<AtomicU64>) -> Self {
        Prefixed { prefix: prefix.into(), inner, heard, watch: Utf8Watch::frames(), invalid: false }
    }

    /// A client's stream: the server's HTTP response comes before the frames.
    pub fn client(inner: S, heard: Arc<AtomicU64>) -> Self {
        Prefixed { watch: Utf8Watch::after_http_head(), ..Self::new(Bytes::new(), inner, heard) }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // The read that found bad text was still passed on, so the complete messages
        // in it are delivered; the bad frame in it is incomplete (a complete one is
        // tungstenite's to check), so tungstenite reads again and gets this.
        if self.invalid {
            return Poll::Ready(Err(InvalidUtf8::io_error()));
        }
        let before = buf.filled().len();
        let polled = if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            Poll::Ready(Ok(()))
        } else {
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.heard.fetch_add(1, Ordering::Relaxed);
            }
            polled
        };
        if !self.watch.feed(&buf.filled()[before..]) {
            self.invalid = true;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefix_comes_first_then_the_stream() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"world").await.unwrap();
        drop(a);
        let heard = Arc::new(AtomicU64::new(0));
        let mut p = Prefixed::new(&b"hello "[..], b, heard.clone());
        let mut s = String::new();
        p.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello world");
        assert!(heard.load(Ordering::Relaxed) > 0, "a read from the stream counts as hearing the peer");
    }
}
