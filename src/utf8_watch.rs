//! Fails a text message at its first invalid UTF-8 byte while its frame is still
//! arriving. tungstenite checks text only per complete frame (across the fragments
//! of a message, as they complete), so one long frame that goes wrong early was
//! refused only once all of it had come (Autobahn 6.4.3 and 6.4.4).
//!
//! `Utf8Watch` follows the frames in the bytes read from the peer. Frames a read
//! completes are left to tungstenite, which checks them before it reads again; only
//! the text frame still incomplete at the end of a read is checked here. It reports
//! only what is certain: on anything it does not follow (reserved bits, an unknown
//! opcode, a continuation outside a message) it stops watching for good and leaves
//! the verdict to tungstenite.

use std::io;

/// The error a read returns once the peer's text is known to be invalid UTF-8.
#[derive(Debug)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8 in a text message")
    }
}

impl std::error::Error for InvalidUtf8 {}

impl InvalidUtf8 {
    pub fn io_error() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, InvalidUtf8)
    }

    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<InvalidUtf8>())
    }
}

/// A response head not over by then is not followed (httparse refuses far less).
const HEAD_MAX: usize = 16 * 1024;

#[derive(Clone, Copy)]
enum State {
    /// Skipping an HTTP response head (a client's stream), which ends with an empty
    /// line: "\n", then an optional "\r", then "\n", as httparse (tungstenite's
    /// parser) accepts it, so "\n\n" and "\r\n\n" as well as "\r\n\r\n".
    Head {
        seen: usize,
        /// 0: in a line; 1: just after "\n"; 2: just after "\n\r".
        blank: u8,
    },
    /// Collecting a frame header (at most 14 bytes).
    Header {
        buf: [u8; 14],
        have: usize,
    },
    Payload {
        left: u64,
        mask: [u8; 4],
        phase: usize,
        text: bool,
        ends_message: bool,
    },
    Off,
}

pub struct Utf8Watch {
    state: State,
    /// The data message in progress: `Some(true)` text, `Some(false)` binary.
    message: Option<bool>,
    /// The unfinished UTF-8 sequence at the end of the text seen so far.
    carry: [u8; 4],
    carry_len: usize,
}

impl Utf8Watch {
    /// For a stream whose first byte starts a frame (a server's session).
    pub fn frames() -> Self {
        Self::starting(State::Header { buf: [0; 14], have: 0 })
    }

    /// For a stream that starts with the server's HTTP response (a client's).
    pub fn after_http_head() -> Self {
        Self::starting(State::Head { seen: 0, blank: 0 })
    }

    fn starting(state: State) -> Self {
        Utf8Watch { state, message: None, carry: [0; 4], carry_len: 0 }
    }

    /// Follows `data`, the next bytes read; false once the text is known invalid.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Off => return true,
                State::Head { mut seen, mut blank } => {
                    let mut ended = false;
                    while i < data.len() && !ended && seen <= HEAD_MAX {
                        (ended, blank) = match (data[i], blank) {
                            (b'\n', 1 | 2) => (true, 0),
                            (b'\n', _) => (false, 1),
                            (b'\r', 1) => (false, 2),
                            _ => (false, 0),
                        };
                        i += 1;
                        seen += 1;
                    }
                    self.state = match (ended, seen) {
                        (true, _) => Self::header(),
                        (false, seen) if seen > HEAD_MAX => State::Off,
                        (false, seen) => State::Head { seen, blank },
                    };
                }
                State::Header { mut buf, mut have } => {
                    let need = if have < 2 { 2 } else { header_len(&buf) };
                    let take = (need - have).min(data.len() - i);
                    buf[have..have + take].copy_from_slice(&data[i..i + take]);
                    have += take;
                    i += take;
                    self.state = State::Header { buf, have };
                    if have >= 2 && have == header_len(&buf) {
                        self.start_frame(&buf);
                    }
                }
                State::Payload { left, mask, phase, text, ends_message } => {
                    let n = left.min((data.len() - i) as u64) as usize;
                    let segment = &data[i..i + n];
                    i += n;
                    let left = left - n as u64;
                    if text {
                        if left > 0 {
                            // The frame goes on past this read: check what came.
                            if !self.check(segment, mask, phase) {
                                self.state = State::Off;
                                return false;
                            }
                        } else {
                            // Complete: tungstenite checks it. Keep only its tail.
                            self.skip(segment, mask, phase);
                        }
                    }
                    self.state = State::Payload { left, mask, phase: (phase + n) % 4, text, ends_message };
                    if left == 0 {
                        self.end_frame(ends_message);
                    }
                }
            }
        }
        true
    }

    fn header() -> State {
        State::Header { buf: [0; 14], have: 0 }
    }

    fn start_frame(&mut self, h: &[u8; 14]) {
        let (fin, reserved, opcode) = (h[0] & 0x80 != 0, h[0] & 0x70, h[0] & 0x0f);
        let (len, at) = match h[1] & 0x7f {
            126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
            127 => (u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")), 10),
            n => (n as u64, 2),
        };
        let mask = if h[1] & 0x80 != 0 { [h[at], h[at + 1], h[at + 2], h[at + 3]] } else { [0; 4] };
        let text = match (reserved, opcode, self.message) {
            (0, 0, Some(text)) => text,
            (0, 1 | 2, None) => {
                self.message = Some(opcode == 1);
                self.carry_len = 0;
                opcode == 1
            }
            (0, 8..=10, _) if fin && len <= 125 => false,
            _ => {
                self.state = State::Off;
                return;
            }
        };
        let ends_message = fin && opcode < 8;
        self.state = State::Payload { left: len, mask, phase: 0, text, ends_message };
        if len == 0 {
            self.end_frame(ends_message);
        }
    }

    fn end_frame(&mut self, ends_message: bool) {
        if ends_message {
            self.message = None;
            self.carry_len = 0;
        }
        self.state = Self::header();
    }

    /// Checks `segment` (masked with `mask` from `phase`) as the text's next bytes.
    fn check(&mut self, segment: &[u8], mask: [u8; 4], phase: usize) -> bool {
        let key: [u8; 4] = std::array::from_fn(|j| mask[(phase + j) % 4]);
        let key8 = u64::from_ne_bytes([key, key].concat().try_into().expect("8 bytes"));
        let mut segment = segment;
        if self.carry_len == 0 {
            // ASCII needs no decoding: skip it 32 bytes at a time, still masked (the
            // key stays aligned).
            const HIGH: u64 = 0x8080_8080_8080_8080;
            let ascii = segment
                .chunks_exact(32)
                .take_while(|block| {
                    let words = block.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")));
                    words.fold(0, |acc, w| acc | (w ^ key8)) & HIGH == 0
                })
                .count();
            segment = &segment[ascii * 32..];
        }
        let mut plain = [0u8; 256];
        // Chunks of 256 keep the key aligned: each starts at a multiple of 4.
        for chunk in segment.chunks(plain.len()) {
            let plain = &mut plain[..chunk.len()];
            let words = chunk.len() / 8 * 8;
            for (p, c) in plain[..words].chunks_exact_mut(8).zip(chunk.chunks_exact(8)) {
                let word = u64::from_ne_bytes(c.try_into().expect("8 bytes")) ^ key8;
                p.copy_from_slice(&word.to_ne_bytes());
            }
            for j in words..chunk.len() {
                plain[j] = chunk[j] ^ key[j % 4];
            }
            if !self.check_plain(plain) {
                return false;
            }
        }
        true
    }

    fn check_plain(&mut self, mut bytes: &[u8]) -> bool {
        // First finish the sequence the last bytes left open, one byte at a time.
        while self.carry_len > 0 && !bytes.is_empty() {
            self.carry[self.carry_len] = bytes[0];
            self.carry_len += 1;
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.carry[..self.carry_len]) {
                Ok(_) => self.carry_len = 0,
                Err(e) if e.error_len().is_some() => return false,
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                let open = &bytes[e.valid_up_to()..];
                self.carry[..open.len()].copy_from_slice(open);
                self.carry_len = open.len();
                true
            }
        }
    }

    /// Takes a segment that tungstenite will check as it is; only the sequence its
    /// end leaves open is kept, for the next fragment of the message.
    fn skip(&mut self, segment: &[u8], mask: [u8; 4], phase: usize) {
        let mut tail = [0u8; 7];
        let mut len = 0;
        let from = segment.len().saturating_sub(3);
        if from == 0 {
            tail[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            len = self.carry_len;
        }
        for (j, b) in segment.iter().enumerate().skip(from) {
            tail[len] = b ^ mask[(phase + j) % 4];
            len += 1;
        }
        let tail = &tail[len.saturating_sub(3)..len];
        self.carry_len = 0;
        // The last byte that starts a sequence, and whether the sequence ends in time.
        for back in 1..=tail.len() {
            let lead = tail[tail.len() - back];
            if lead & 0xc0 == 0x80 {
                continue;
            }
            let need = match lead {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            if need > back {
                self.carry[..back].copy_from_slice(&tail[tail.len() - back..]);
                self.carry_len = back;
            }
            break;
        }
    }
}

fn header_len(h: &[u8; 14]) -> usize {
    let len = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + len + if h[1] & 0x80 != 0 { 4 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it (masked).
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![(fin as u8) << 7 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    /// Feeds `bytes` split at `cuts`; the index of the read that was refused, if any.
    fn refused(mut watch: Utf8Watch, bytes: &[u8], cuts: &[usize]) -> Option<usize> {
        let mut from = 0;
        for (n, &to) in cuts.iter().chain([bytes.len()].iter()).enumerate() {
            if !watch.feed(&bytes[from..to]) {
                return Some(n);
            }
            from = to;
        }
        None
    }

    const GOOD: &[u8] = "κόσμε".as_bytes();
    const BAD: &[u8] = b"\xf4\x90\x80\x80";

    #[test]
    fn a_long_text_frame_is_refused_at_the_read_that_brings_the_bad_byte() {
        let payload = [GOOD, BAD, b"edited"].concat();
        let f = frame(true, 1, &payload);
        let at_bad = f.len() - 10;
        // As Autobahn 6.4.3 sends it: in three chops, the second holding the bad bytes.
        assert_eq!(refused(Utf8Watch::frames(), &f, &[at_bad, f.len() - 6]), Some(1));
        // The same bytes by single bytes: refused on the first bad one (0x90).
        let cuts: Vec<usize> = (1..f.len()).collect();
        assert_eq!(refused(Utf8Watch::frames(), &f, &cuts), Some(at_bad + 1));
    }

    #[test]
    fn bad_bytes_after_long_ascii_are_found_at_every_offset() {
        // ASCII is skipped in 32-byte blocks: the bad byte at each offset in a block.
        for lead in 60..100 {
            let f = frame(true, 1, &[&vec![b'a'; lead][..], BAD, b"tail"].concat());
            let bad_at = f.len() - 8;
            assert!(Utf8Watch::frames().feed(&f[..bad_at + 1]), "f4 alone may still be valid");
            for cut in bad_at + 2..f.len() {
                assert_eq!(refused(Utf8Watch::frames(), &f, &[cut]), Some(0), "lead {lead}, cut {cut}");
            }
        }
    }

    #[test]
    fn valid_text_split_anywhere_is_never_refused() {
        let text = "añ€𝄞 ".repeat(40);
        let f = [frame(false, 1, &text.as_bytes()[..101]), frame(true, 0, &text.as_bytes()[101..])].concat();
        for cut in 1..f.len() {
            assert_eq!(refused(Utf8Watch::frames(), &f, &[cut]), None, "cut at {cut}");
        }
        let every: Vec<usize> = (1..f.len()).collect();
        assert_eq!(refused(Utf8Watch::frames(), &f, &every), None);
    }

    #[test]
    fn a_sequence_open_across_fragments_is_followed() {
        // "€" (e2 82 ac) split over a complete fragment and a partial one; then the
        // same with a bad continuation byte.
        let ok = [frame(false, 1, b"a\xe2"), frame(true, 0, b"\x82\xacbcdef")].concat();
        let bad = [frame(false, 1, b"a\xe2"), frame(true, 0, b"\x28\xacbcdef")].concat();
        let cut = frame(false, 1, b"a\xe2").len() + 8;
        assert_eq!(refused(Utf8Watch::frames(), &ok, &[cut]), None);
        assert_eq!(refused(Utf8Watch::frames(), &bad, &[cut]), Some(0));
    }

    #[test]
    fn binary_frames_pings_and_a_client_http_head_are_followed() {
        let ping = frame(true, 9, b"\xff\xfe");
        let binary = frame(true, 2, &[0xff; 300]);
        let text = frame(true, 1, &[GOOD, BAD, GOOD].concat());
        let stream =
            [&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"[..], &binary, &ping, &text].concat();
        let last = stream.len() - 3;
        assert_eq!(refused(Utf8Watch::after_http_head(), &stream, &[last]), Some(0));
        let good = [&binary[..], &ping, &frame(true, 1, &[GOOD; 30].concat())].concat();
        let cuts: Vec<usize> = (1..good.len()).step_by(7).collect();
        assert_eq!(refused(Utf8Watch::frames(), &good, &cuts), None);
    }

    #[test]
    fn a_head_ending_in_bare_line_feeds_is_followed_as_httparse_reads_it() {
        // A valid text frame holding "\r\n\r\n": read from just after it, the next
        // bytes would look like the start of an incomplete text frame (01 10) that a
        // binary frame's ff bytes make invalid.
        let tricky = [frame(true, 1, b"x\r\n\r\n\x01\x10ab"), frame(true, 2, &[0xff; 3])].concat();
        for end in ["\n\n", "\r\n\n", "\n\r\n", "\r\n\r\n"] {
            let head = format!("HTTP/1.1 101 Switching Protocols{0}Upgrade: websocket{0}", &end[..end.len() / 2]);
            let stream = [head.as_bytes(), &end.as_bytes()[end.len() / 2..], &tricky].concat();
            assert_eq!(refused(Utf8Watch::after_http_head(), &stream, &[]), None, "head ending {end:?}");
            // The control: invalid text after the same head is still refused as it arrives.
            let bad = [head.as_bytes(), &end.as_bytes()[end.len() / 2..], &frame(true, 1, &[GOOD, BAD, GOOD].concat())]
                .concat();
            assert_eq!(refused(Utf8Watch::after_http_head(), &bad, &[bad.len() - 3]), Some(0), "head ending {end:?}");
        }
    }

    #[test]
    fn a_head_that_does_not_end_within_16_kib_is_not_followed() {
        let mut stream = b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ".to_vec();
        stream.resize(HEAD_MAX + 1, b'a');
        let bad = frame(true, 1, &[GOOD, BAD, GOOD].concat());
        let stream = [&stream[..], b"\r\n\r\n", &bad].concat();
        assert_eq!(refused(Utf8Watch::after_http_head(), &stream, &[stream.len() - 3]), None);
    }

    #[test]
    fn what_it_does_not_follow_is_left_to_tungstenite() {
        // A reserved bit: the watch stops, even for bytes that would be invalid text.
        let mut f = frame(true, 1, &[BAD, BAD].concat());
        f[0] |= 0x40;
        assert_eq!(refused(Utf8Watch::frames(), &f, &[f.len() - 1]), None);
    }
}
