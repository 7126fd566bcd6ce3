//! WebSocket framing of our own, beside tungstenite, for the sessions.
//!
//! Why not tungstenite's `WebSocketStream` for a session: it keeps a read buffer
//! per connection (zero-filled, so resident, even while idle) and encodes every
//! message per connection, so a broadcast to 1 000 clients framed the same bytes
//! 1 000 times. Here a frame is encoded once into shared bytes (a server's frames
//! are never masked, so every receiver gets identical bytes), and the decoder
//! works on whatever buffer the caller read into, keeping only the bytes of a
//! frame or message still incomplete. tungstenite's public pieces (`FrameHeader`
//! parsing and formatting, `OpCode`) do the bit-level work, and the
//! client handshake stays tungstenite's.

use bytes::Bytes;
use std::io::Cursor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// One frame, header and payload, in one allocation; `mask` for a client's frame.
pub fn encode(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Writing to a Vec cannot fail.
    let _ = header.format(len, &mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[start..], mask, 0);
    }
    Bytes::from(out)
}

/// A data frame as the session's role sends it: a server's plain, a client's
/// masked with a fresh random key (RFC 6455 §5.3).
pub fn data_frame(text: bool, payload: &[u8], client: bool) -> Bytes {
    let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
    encode(opcode, payload, client.then(rand::random::<[u8; 4]>))
}

/// A server's (unmasked) data frame of a `len`-byte payload that `fill` writes
/// straight into the frame's memory: it is given `room` (at least `len`) bytes and
/// returns how many it wrote. For a JS string: one allocation (zero-filled, then
/// shrunk by the byte of N-API's terminating NUL) and one copy, where a String
/// then a frame took two of each.
pub fn server_frame_filled(text: bool, len: usize, room: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Bytes {
    let opcode = OpCode::Data(if text { Data::Text } else { Data::Binary });
    let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None };
    let mut out = Vec::with_capacity(header.len(len as u64) + room.max(len));
    let _ = header.format(len as u64, &mut out);
    let start = out.len();
    out.resize(start + room.max(len), 0);
    let wrote = fill(&mut out[start..]).min(room.max(len));
    if wrote != len {
        // The header promised `len`: frame what was written instead.
        return encode(opcode, &out[start..start + wrote], None);
    }
    out.truncate(start + len);
    // Exactly its length (glibc shrinks a chunk by a byte in place): a Vec with
    // spare capacity would become a Bytes with a separately allocated header.
    out.shrink_to_fit();
    Bytes::from(out)
}

/// A control frame (ping, pong, close) for the session's role.
pub fn control_frame(control: Control, payload: &[u8], client: bool) -> Bytes {
    encode(OpCode::Control(control), payload, client.then(rand::random::<[u8; 4]>))
}

/// The payload of a close frame: the code, then the reason cut to fit (123 bytes)
/// at a character boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL as usize - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// XORs `buf` with `mask`, starting `phase` bytes into the mask's cycle.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], phase: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(phase + i) % 4]);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Incremental UTF-8 validation across the reads and fragments of one text
/// message: fails at the first byte that cannot start or continue valid text.
#[derive(Clone, Copy, Default, Debug)]
pub struct Utf8 {
    carry: [u8; 4],
    len: u8,
}

impl Utf8 {
    /// Checks the next bytes; false once the text is known invalid.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.len > 0 {
            let have = self.len as usize;
            let need = match self.carry[0] {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let take = (need - have).min(data.len());
            self.carry[have..have + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            match std::str::from_utf8(&self.carry[..have + take]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() && have + take < need => {
                    self.len = (have + take) as u8;
                    return true;
                }
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                let rest = &data[e.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                self.len = rest.len() as u8;
                true
            }
            Err(_) => false,
        }
    }

    /// True if the text seen so far ends on a whole character.
    pub fn complete(&self) -> bool {
        self.len == 0
    }
}

/// Why the peer's bytes are refused: the close code to send and the text to report.
#[derive(Debug, PartialEq, Eq)]
pub struct Fault {
    pub code: u16,
    pub text: String,
}

impl Fault {
    fn protocol(what: &str) -> Self {
        Fault { code: 1002, text: format!("protocol error: {what}") }
    }
    fn utf8() -> Self {
        Fault { code: 1007, text: "invalid UTF-8 in a text message".into() }
    }
    fn too_big(size: u64, max: usize) -> Self {
        Fault { code: 1009, text: format!("message too big: {size} bytes, the limit is {max}") }
    }
}

/// A payload: borrowed from the bytes being decoded, or assembled from several
/// reads or fragments.
#[derive(Debug)]
pub enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Payload<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }

    /// As shared bytes: an assembled payload moves, a borrowed one is copied.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Payload::Borrowed(b) => Bytes::copy_from_slice(b),
            Payload::Owned(v) => Bytes::from(v),
        }
    }
}

/// What the decoder found, in the order the peer sent it.
#[derive(Debug)]
pub enum Item<'a> {
    /// A whole message; text is valid UTF-8, and `true` if it is all ASCII (JS
    /// then makes its string by a plain copy, without decoding).
    Text(Payload<'a>, bool),
    Binary(Payload<'a>),
    Ping(&'a [u8]),
    Pong,
    /// A close frame's payload, checked: empty, or a code that may be sent and a
    /// UTF-8 reason. Nothing after it is decoded.
    Close(&'a [u8]),
}

/// The frame whose payload is arriving.
#[derive(Clone, Copy, Debug)]
struct Frame {
    left: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame already seen, mod 4 (the mask's phase).
    phase: u8,
    opcode: OpCode,
    fin: bool,
    /// Part of its payload went into a buffer in an earlier read.
    buffered: bool,
}

/// What an incomplete frame or message holds between reads; boxed, so an idle
/// decoder holds a null pointer, and released once nothing is incomplete.
#[derive(Default)]
struct Partial {
    /// A header split across reads.
    head: [u8; 14],
    head_len: u8,
    /// The frame whose payload is still arriving.
    frame: Option<Frame>,
    /// The data message being assembled: `Some(true)` text, `Some(false)` binary.
    message: Option<bool>,
    data: Vec<u8>,
    utf8: Utf8,
    /// A control frame's payload split across reads (≤ 125 bytes).
    control: Vec<u8>,
}

/// Decodes the frames a peer sends, checking them as RFC 6455 asks.
pub struct Decoder {
    max_message: usize,
    partial: Option<Box<Partial>>,
    /// A server's peer must mask its frames; a client's must not.
    from_client: bool,
    closed: bool,
}

impl Decoder {
    /// `from_client`: the peer is a client (this end a server).
    pub fn new(from_client: bool, max_message: usize) -> Self {
        Decoder { max_message, partial: None, from_client, closed: false }
    }

    /// True while nothing incomplete is held.
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// Bytes held for an incomplete frame or message.
    pub fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.capacity() + p.control.capacity())
    }

    /// Decodes `data` (unmasking it in place), handing each complete item to `on`.
    /// Items before a fault are handed over; after a close, the rest is ignored.
    pub fn feed(&mut self, data: &mut [u8], on: &mut dyn FnMut(Item<'_>)) -> Result<(), Fault> {
        let mut i = 0;
        // The frame under way lives here while this read lasts, and in `partial`
        // only if the read ends inside it.
        let mut frame = self.partial.as_mut().and_then(|p| p.frame.take());
        while i < data.len() && !self.closed {
            let Some(mut f) = frame.take() else {
                let (used, header) = self.header(&data[i..])?;
                i += used;
                match header {
                    Some(f) if f.left == 0 => self.complete(f, Payload::Borrowed(&[]), on)?,
                    other => frame = other,
                }
                continue;
            };
            let n = f.left.min((data.len() - i) as u64) as usize;
            let chunk = &mut data[i..i + n];
            i += n;
            if let Some(mask) = f.mask {
                apply_mask(chunk, mask, f.phase as usize);
            }
            f.phase = ((f.phase as usize + n) % 4) as u8;
            f.left -= n as u64;
            let whole = f.left == 0 && !f.buffered;
            let alone = matches!(f.opcode, OpCode::Control(_)) || (f.fin && self.partial_message().is_none());
            if whole && alone {
                self.complete(f, Payload::Borrowed(chunk), on)?;
                continue;
            }
            self.buffer(&f, chunk)?;
            f.buffered = true;
            if f.left > 0 {
                frame = Some(f);
                continue;
            }
            let payload = match f.opcode {
                OpCode::Control(_) => {
                    let p = self.partial.as_mut().map(|p| std::mem::take(&mut p.control)).unwrap_or_default();
                    Payload::Owned(p)
                }
                OpCode::Data(_) => Payload::Borrowed(&[]),
            };
            self.complete(f, payload, on)?;
        }
        if let Some(f) = frame.filter(|_| !self.closed) {
            self.partial.get_or_insert_with(Default::default).frame = Some(f);
        }
        self.release();
        Ok(())
    }

    fn partial_message(&self) -> Option<bool> {
        self.partial.as_ref().and_then(|p| p.message)
    }

    /// Parses a header from the bytes held and `data`: how much of `data` it used,
    /// and the frame once its whole header is there.
    fn header(&mut self, data: &[u8]) -> Result<(usize, Option<Frame>), Fault> {
        let held = self.partial.as_ref().map_or(0, |p| p.head_len as usize);
        let parsed = match self.partial.as_mut().filter(|_| held > 0) {
            None => parse_header(data)?,
            Some(p) => {
                let take = (p.head.len() - held).min(data.len());
                p.head[held..held + take].copy_from_slice(&data[..take]);
                parse_header(&p.head[..held + take])?
            }
        };
        let Some((header, len, used)) = parsed else {
            let p = self.partial.get_or_insert_with(Default::default);
            let take = (p.head.len() - held).min(data.len());
            if held == 0 {
                p.head[..take].copy_from_slice(&data[..take]);
            }
            p.head_len = (held + take) as u8;
            return Ok((take, None));
        };
        if let Some(p) = self.partial.as_mut() {
            p.head_len = 0;
        }
        Ok((used - held, Some(self.start(header, len)?)))
    }

    /// Checks a frame's header against the protocol and the size limit.
    fn start(&mut self, h: FrameHeader, len: u64) -> Result<Frame, Fault> {
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err(Fault::protocol("reserved bits set without an extension"));
        }
        if self.from_client && h.mask.is_none() {
            return Err(Fault::protocol("unmasked frame from a client"));
        }
        if !self.from_client && h.mask.is_some() {
            return Err(Fault::protocol("masked frame from a server"));
        }
        match h.opcode {
            OpCode::Control(_) if !h.is_final => return Err(Fault::protocol("fragmented control frame")),
            OpCode::Control(_) if len > MAX_CONTROL => return Err(Fault::protocol("control frame too long")),
            OpCode::Control(_) => {}
            OpCode::Data(d) => {
                let so_far = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
                match (d, self.partial_message()) {
                    (Data::Continue, None) => return Err(Fault::protocol("continuation frame without a message")),
                    (Data::Text | Data::Binary, Some(_)) => {
                        return Err(Fault::protocol("new message before the last one ended"))
                    }
                    _ => {}
                }
                if so_far.saturating_add(len) > self.max_message as u64 {
                    return Err(Fault::too_big(so_far.saturating_add(len), self.max_message));
                }
            }
        }
        Ok(Frame { left: len, mask: h.mask, phase: 0, opcode: h.opcode, fin: h.is_final, buffered: false })
    }

    /// Keeps part of a payload until the rest comes; text is checked as it comes.
    fn buffer(&mut self, f: &Frame, chunk: &[u8]) -> Result<(), Fault> {
        let p = self.partial.get_or_insert_with(Default::default);
        match f.opcode {
            OpCode::Control(_) => p.control.extend_from_slice(chunk),
            OpCode::Data(d) => {
                if let Data::Text | Data::Binary = d {
                    p.message.get_or_insert(d == Data::Text);
                }
                if p.message == Some(true) && !p.utf8.feed(chunk) {
                    return Err(Fault::utf8());
                }
                if p.data.capacity() == 0 && f.left > 0 {
                    // Room for the frame up front (within reason), not by doublings.
                    p.data.reserve((chunk.len() as u64 + f.left).min(1 << 20) as usize);
                }
                p.data.extend_from_slice(chunk);
            }
        }
        Ok(())
    }

    /// Frees what an incomplete frame or message held, once nothing is incomplete.
    fn release(&mut self) {
        let empty = |p: &Partial| p.message.is_none() && p.control.is_empty() && p.frame.is_none() && p.head_len == 0;
        if self.partial.as_deref().is_some_and(empty) {
            self.partial = None;
        }
    }

    /// A whole frame has arrived: hand over what it completes.
    fn complete(&mut self, f: Frame, payload: Payload<'_>, on: &mut dyn FnMut(Item<'_>)) -> Result<(), Fault> {
        match f.opcode {
            OpCode::Control(Control::Close) => {
                check_close(payload.as_slice())?;
                self.closed = true;
                on(Item::Close(payload.as_slice()));
            }
            OpCode::Control(Control::Ping) => on(Item::Ping(payload.as_slice())),
            OpCode::Control(_) => on(Item::Pong),
            OpCode::Data(d) => {
                if let Payload::Borrowed(b) = payload {
                    if f.buffered {
                        // Its bytes are in the partial message.
                    } else if matches!(d, Data::Text | Data::Binary) && f.fin {
                        let text = d == Data::Text;
                        // ASCII first: most text is, and then that one pass validates it.
                        let ascii = text && b.is_ascii();
                        if text && !ascii && std::str::from_utf8(b).is_err() {
                            return Err(Fault::utf8());
                        }
                        on(if text { Item::Text(payload, ascii) } else { Item::Binary(payload) });
                        return Ok(());
                    } else {
                        // An empty fragment.
                        self.buffer(&f, b)?;
                    }
                }
                if !f.fin {
                    return Ok(());
                }
                let Some(p) = self.partial.as_mut() else { return Ok(()) };
                let text = p.message.take() == Some(true);
                let (data, utf8) = (std::mem::take(&mut p.data), std::mem::take(&mut p.utf8));
                if text && !utf8.complete() {
                    return Err(Fault::utf8());
                }
                let ascii = text && data.is_ascii();
                let data = Payload::Owned(data);
                on(if text { Item::Text(data, ascii) } else { Item::Binary(data) });
            }
        }
        Ok(())
    }
}

/// tungstenite's header parser on a slice: `(header, payload length, header
/// length)`, or None while incomplete. Reserved opcodes, and a length no frame
/// may have, are protocol errors.
fn parse_header(data: &[u8]) -> Result<Option<(FrameHeader, u64, usize)>, Fault> {
    let mut cursor = Cursor::new(data);
    match FrameHeader::parse(&mut cursor) {
        // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
        Ok(Some((_, len))) if len > i64::MAX as u64 => Err(Fault::protocol("64-bit length with its top bit set")),
        Ok(Some((h, len))) => Ok(Some((h, len, cursor.position() as usize))),
        Ok(None) => Ok(None),
        Err(tokio_tungstenite::tungstenite::Error::Protocol(p)) => Err(Fault::protocol(&p.to_string())),
        Err(e) => Err(Fault::protocol(&e.to_string())),
    }
}

/// Codes a close frame may carry (RFC 6455 §7.4, and IANA's 1012-1014, as `ws`
/// accepts them): not the reserved 1004-1006 and 1015, nothing unassigned below 3000.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's payload: empty, or a code that may be sent, then UTF-8 text.
fn check_close(payload: &[u8]) -> Result<(), Fault> {
    match payload {
        [] => Ok(()),
        [_] => Err(Fault::protocol("close frame with a one-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_allowed(code) {
                return Err(Fault::protocol(&format!("close code {code} may not be sent")));
            }
            std::str::from_utf8(reason).map(|_| ()).map_err(|_| Fault::utf8())
        }
    }
}

pub mod blocks;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
