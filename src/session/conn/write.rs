//! The session's writing: what is queued goes out in vectored writes, control
//! frames between frames, and our last close frame ahead of the queue.

use super::{Session, State};
use crate::codec;
use bytes::{Buf, Bytes};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;

/// Frames written per write call: a burst becomes one syscall, but stays bounded.
const BATCH: usize = 64;

pub(super) enum Wrote {
    /// Nothing more to write for now.
    Done,
    Pending,
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Writes what is queued, a batch per call, until done or the socket is full.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Wrote {
        loop {
            if self.close_out {
                return self.poll_flushed(cx);
            }
            let mut batch: [Bytes; BATCH] = std::array::from_fn(|_| Bytes::new());
            let (n, ends_with_close) = self.gather(&mut batch);
            if n == 0 {
                return self.poll_flushed(cx);
            }
            let mut slices = [IoSlice::new(&[]); BATCH];
            for (slice, frame) in slices.iter_mut().zip(&batch[..n]) {
                *slice = IoSlice::new(frame);
            }
            let polled = Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]);
            let mut written = match polled {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Wrote::Failed,
                Poll::Ready(Ok(w)) => w,
                Poll::Pending => 0,
            };
            self.dirty |= written > 0;
            self.shared.queued.fetch_sub(written, Ordering::Relaxed);
            crate::stats::count(&self.shared.stats.bytes_out, written as u64);
            let mut done = 0;
            while done < n && written >= batch[done].len() {
                written -= batch[done].len();
                done += 1;
            }
            if done < n {
                batch[done].advance(written);
                let mut frames = self.shared.frames.lock();
                for frame in batch[done..n].iter_mut().rev() {
                    frames.push_front(std::mem::take(frame));
                }
                self.carried = (n - done) as u8;
                self.carried_close = ends_with_close;
            } else if ends_with_close {
                self.close_out = true;
            }
            if polled.is_pending() {
                return Wrote::Pending;
            }
        }
    }

    fn poll_flushed(&mut self, cx: &mut Context<'_>) -> Wrote {
        if !self.dirty {
            return Wrote::Done;
        }
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.dirty = false;
                Wrote::Done
            }
            Poll::Ready(Err(_)) => Wrote::Failed,
            Poll::Pending => Wrote::Pending,
        }
    }

    /// Takes the next frames to write: the rest of the last batch, then (between
    /// frames) a pong and a ping, then the queue, up to and including a close
    /// frame. Winding down, only our close frame follows the rest of the batch.
    fn gather(&mut self, batch: &mut [Bytes; BATCH]) -> (usize, bool) {
        let mut n = 0;
        let mut extra = 0;
        let winding_down = matches!(self.state, State::Failing | State::Replying);
        let mut frames = self.shared.frames.lock();
        while self.carried > 0 {
            batch[n] = frames.pop_front().unwrap_or_default();
            self.carried -= 1;
            n += 1;
        }
        if std::mem::take(&mut self.carried_close) {
            return (n, true);
        }
        if n == BATCH {
            // A full batch carried over: control frames go in the next one.
            return (n, false);
        }
        if winding_down {
            if let Some(close) = self.rare.as_mut().and_then(|r| r.ctl.take()) {
                extra += close.len();
                batch[n] = close;
                n += 1;
                drop(frames);
                self.shared.queued.fetch_add(extra, Ordering::Relaxed);
                return (n, true);
            }
            return (n, false);
        }
        if let Some(pongs) = self.rare.as_mut().and_then(|r| r.ctl.take()) {
            extra += pongs.len();
            batch[n] = pongs;
            n += 1;
        }
        if self.ping_due && n < BATCH {
            self.ping_due = false;
            batch[n] = self.ping();
            extra += batch[n].len();
            n += 1;
        }
        let mut ends_with_close = false;
        while n < BATCH {
            let Some(frame) = frames.pop_front() else { break };
            ends_with_close = frame.first().is_some_and(|b| b & 0x0f == 0x8);
            batch[n] = frame;
            n += 1;
            if ends_with_close {
                break;
            }
        }
        drop(frames);
        self.shared.queued.fetch_add(extra, Ordering::Relaxed);
        if ends_with_close && matches!(self.state, State::Open) {
            self.state = State::Closing;
            self.set_deadline(Some(Instant::now() + self.close_timeout()));
        }
        (n, ends_with_close)
    }

    fn ping(&self) -> Bytes {
        if self.client() {
            codec::control_frame(Control::Ping, &[], true)
        } else {
            Bytes::from_static(&[0x89, 0])
        }
    }
}
