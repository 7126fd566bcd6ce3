//! `UpToHead`: a client's stream while tungstenite does the handshake. It passes
//! on the server's HTTP response head and nothing after it, keeping those bytes
//! (frames the server sent at once) for the session, which then reads the socket
//! itself; tungstenite's own buffers go away with its handshake.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A response head longer than this is refused (tungstenite would too).
const HEAD_MAX: usize = 16 * 1024;

pub struct UpToHead<S> {
    inner: S,
    /// 0: inside a line; 1: just after "\n"; 2: just after "\n\r"; 3: past the head.
    state: u8,
    seen: usize,
    rest: Vec<u8>,
}

impl<S> UpToHead<S> {
    pub fn new(inner: S) -> Self {
        UpToHead { inner, state: 0, seen: 0, rest: Vec::new() }
    }

    /// The stream, and what the server sent after its response head.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.inner, self.rest)
    }

    /// How many of `data` belong to the head: it ends at an empty line, "\n" then
    /// an optional "\r" then "\n", as httparse (tungstenite's parser) reads it.
    fn head_part(&mut self, data: &[u8]) -> usize {
        for (i, &b) in data.iter().enumerate() {
            self.state = match (self.state, b) {
                (1 | 2, b'\n') => {
                    self.state = 3;
                    return i + 1;
                }
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
        data.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UpToHead<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.state == 3 {
            // tungstenite has the whole head and reads no further.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let head = self.head_part(&buf.filled()[before..]);
        self.seen += head;
        if self.seen > HEAD_MAX {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP response head too long")));
        }
        let rest = buf.filled()[before + head..].to_vec();
        self.rest.extend_from_slice(&rest);
        buf.set_filled(before + head);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UpToHead<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn split(sent: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut server, client) = tokio::io::duplex(1024);
        server.write_all(sent).await.unwrap();
        drop(server);
        let mut s = UpToHead::new(client);
        let mut head = Vec::new();
        s.read_to_end(&mut head).await.unwrap();
        let (_, rest) = s.into_parts();
        (head, rest)
    }

    #[tokio::test]
    async fn the_head_is_passed_on_and_what_follows_kept() {
        for end in ["\r\n\r\n", "\n\n", "\r\n\n", "\n\r\n"] {
            let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket{end}");
            let mut sent = head.clone().into_bytes();
            sent.extend_from_slice(b"\x81\x02hi");
            assert_eq!(split(&sent).await, (head.into_bytes(), b"\x81\x02hi".to_vec()), "{end:?}");
        }
    }
}
