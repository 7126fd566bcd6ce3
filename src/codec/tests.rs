//! The codec against tungstenite's own framing, and the protocol rules it checks.

use super::*;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

/// What a decoder hands over, owned, for comparison.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Vec<u8>),
}

/// Decodes `wire` handed over in pieces of `step` bytes (the last may be shorter).
pub fn decode_in_steps(d: &mut Decoder, wire: &[u8], step: usize) -> (Vec<Got>, Result<(), Fault>) {
    let mut got = Vec::new();
    let mut on = |item: Item<'_>| {
        got.push(match item {
            Item::Text(p, ascii) => {
                assert_eq!(ascii, p.as_slice().is_ascii(), "the ASCII flag of a text message");
                Got::Text(String::from_utf8(p.as_slice().to_vec()).unwrap())
            }
            Item::Binary(p) => Got::Binary(p.as_slice().to_vec()),
            Item::Ping(p) => Got::Ping(p.to_vec()),
            Item::Pong => Got::Pong,
            Item::Close(p) => Got::Close(p.to_vec()),
        })
    };
    for piece in wire.chunks(step.max(1)) {
        let mut piece = piece.to_vec();
        if let Err(fault) = d.feed(&mut piece, &mut on) {
            return (got, Err(fault));
        }
    }
    (got, Ok(()))
}

/// A frame as tungstenite writes it, masked with `mask` if given.
pub fn tungstenite_frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Frame::message(payload.to_vec(), OpCode::Data(Data::Binary), fin);
    frame.header_mut().opcode = opcode;
    frame.header_mut().mask = mask;
    let mut out = Vec::new();
    frame.format(&mut out).unwrap();
    out
}

const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);
const TEXT: OpCode = OpCode::Data(Data::Text);
const BINARY: OpCode = OpCode::Data(Data::Binary);
const CONTINUE: OpCode = OpCode::Data(Data::Continue);
const PING: OpCode = OpCode::Control(Control::Ping);
const CLOSE: OpCode = OpCode::Control(Control::Close);

fn server() -> Decoder {
    Decoder::new(true, 1 << 20)
}

fn fault_of(wire: &[u8]) -> Fault {
    for step in [1, 3, wire.len()] {
        let (_, r) = decode_in_steps(&mut server(), wire, step);
        assert!(r.is_err(), "accepted in steps of {step}");
    }
    decode_in_steps(&mut server(), wire, wire.len()).1.unwrap_err()
}

#[test]
fn our_frames_are_byte_for_byte_tungstenites() {
    for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(encode(BINARY, &payload, None)[..], tungstenite_frame(BINARY, true, &payload, None)[..], "{len}");
        assert_eq!(encode(TEXT, &payload, KEY)[..], tungstenite_frame(TEXT, true, &payload, KEY)[..], "{len} masked");
    }
}

#[test]
fn frames_split_anywhere_decode_the_same() {
    let text = "κόσμε, hello".repeat(20);
    let mut wire = tungstenite_frame(TEXT, true, text.as_bytes(), KEY);
    wire.extend(tungstenite_frame(BINARY, true, &[1, 2, 3], KEY));
    wire.extend(tungstenite_frame(TEXT, false, &text.as_bytes()[..7], KEY));
    wire.extend(tungstenite_frame(PING, true, b"are you there", KEY));
    wire.extend(tungstenite_frame(CONTINUE, false, &text.as_bytes()[7..100], KEY));
    wire.extend(tungstenite_frame(CONTINUE, true, &text.as_bytes()[100..], KEY));
    wire.extend(tungstenite_frame(BINARY, true, &[], KEY));
    wire.extend(tungstenite_frame(CLOSE, true, &close_payload(1000, "bye"), KEY));
    wire.extend(tungstenite_frame(TEXT, true, b"after the close", KEY));
    let expected = vec![
        Got::Text(text.clone()),
        Got::Binary(vec![1, 2, 3]),
        Got::Ping(b"are you there".to_vec()),
        Got::Text(text),
        Got::Binary(vec![]),
        Got::Close(close_payload(1000, "bye")),
    ];
    for step in 1..=wire.len() {
        let mut d = server();
        let (got, r) = decode_in_steps(&mut d, &wire, step);
        assert_eq!(r, Ok(()), "step {step}");
        assert_eq!(got, expected, "step {step}");
        assert!(d.is_idle(), "step {step}: nothing held once every message is complete");
    }
}

#[test]
fn the_bytes_of_an_incomplete_message_are_released_when_it_completes() {
    let mut d = server();
    let payload = vec![9u8; 50_000];
    let wire = tungstenite_frame(BINARY, true, &payload, KEY);
    let (got, _) = decode_in_steps(&mut d, &wire[..20_000], 20_000);
    assert!(got.is_empty() && d.held() >= 20_000 - 8);
    let (got, _) = decode_in_steps(&mut d, &wire[20_000..], 100_000);
    assert_eq!(got, vec![Got::Binary(payload)]);
    assert_eq!((d.held(), d.is_idle()), (0, true));
}

#[test]
fn a_client_reads_plain_frames_and_refuses_masked_ones() {
    let mut d = Decoder::new(false, 1 << 20);
    let (got, r) = decode_in_steps(&mut d, &encode(TEXT, b"hi", None), 1);
    assert_eq!((got, r), (vec![Got::Text("hi".into())], Ok(())));
    let (_, r) = decode_in_steps(&mut d, &encode(TEXT, b"hi", KEY), 100);
    assert_eq!(r.unwrap_err().code, 1002);
}

#[test]
fn protocol_violations_are_1002() {
    let rsv = {
        let mut f = tungstenite_frame(TEXT, true, b"hi", KEY);
        f[0] |= 0x40;
        f
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", tungstenite_frame(TEXT, true, b"hi", None)),
        ("reserved opcode", tungstenite_frame(OpCode::Data(Data::Reserved(3)), true, b"hi", KEY)),
        ("reserved control opcode", tungstenite_frame(OpCode::Control(Control::Reserved(11)), true, b"", KEY)),
        ("rsv1", rsv),
        ("fragmented ping", tungstenite_frame(PING, false, b"hi", KEY)),
        ("ping of 126 bytes", tungstenite_frame(PING, true, &[0; 126], KEY)),
        ("continuation alone", tungstenite_frame(CONTINUE, true, b"hi", KEY)),
        ("close of one byte", tungstenite_frame(CLOSE, true, &[3], KEY)),
        ("close 1005", tungstenite_frame(CLOSE, true, &close_payload(1005, ""), KEY)),
        ("close 999", tungstenite_frame(CLOSE, true, &close_payload(999, ""), KEY)),
        ("close 1004", tungstenite_frame(CLOSE, true, &close_payload(1004, ""), KEY)),
        ("close 2999", tungstenite_frame(CLOSE, true, &close_payload(2999, ""), KEY)),
        ("close 1015", tungstenite_frame(CLOSE, true, &close_payload(1015, ""), KEY)),
        ("close 5000", tungstenite_frame(CLOSE, true, &close_payload(5000, ""), KEY)),
    ];
    for (what, wire) in cases {
        let fault = fault_of(&wire);
        assert_eq!(fault.code, 1002, "{what}: {fault:?}");
        assert!(fault.text.starts_with("protocol error"), "{what}: {fault:?}");
    }
    // A 64-bit length with its most significant bit set (RFC 6455 §5.2), even
    // with a limit that no length could pass: a protocol error, not "too big".
    for top in [0x80u8, 0xff] {
        let wire = [0x82, 0xff, top, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let fault = fault_of(&wire);
        assert_eq!(fault.code, 1002, "{top:#x}: {fault:?}");
        let (_, r) = decode_in_steps(&mut Decoder::new(true, usize::MAX), &wire, 14);
        assert_eq!(r.map_err(|f| f.code), Err(1002), "{top:#x} with no limit");
    }
    // The control: the largest length allowed is only too big.
    assert_eq!(fault_of(&[0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).code, 1009);
    let mut two_starts = tungstenite_frame(TEXT, false, b"a", KEY);
    two_starts.extend(tungstenite_frame(BINARY, true, b"b", KEY));
    assert_eq!(fault_of(&two_starts).code, 1002);
}

#[test]
fn valid_close_codes_pass() {
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        let wire = tungstenite_frame(CLOSE, true, &close_payload(code, "fine"), KEY);
        let (got, r) = decode_in_steps(&mut server(), &wire, 1);
        assert_eq!((got, r), (vec![Got::Close(close_payload(code, "fine"))], Ok(())), "{code}");
    }
}

#[test]
fn invalid_text_is_1007_even_before_its_frame_is_complete() {
    let bad = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";
    assert_eq!(fault_of(&tungstenite_frame(TEXT, true, bad, KEY)).code, 1007);
    // Only the first 20 bytes of a 1 000-byte frame: its text is already invalid.
    let mut payload = b"ok so far \xf4\x90\x80\x80".to_vec();
    payload.resize(1000, b'a');
    let wire = tungstenite_frame(TEXT, true, &payload, KEY);
    let (_, r) = decode_in_steps(&mut server(), &wire[..20], 20);
    assert_eq!(r.unwrap_err().code, 1007);
    // The control: the valid start alone is accepted.
    let (_, r) = decode_in_steps(&mut server(), &wire[..14], 14);
    assert_eq!(r, Ok(()));
    // A character split between fragments is fine; one cut off at the end is not.
    let mut split = tungstenite_frame(TEXT, false, b"\xce", KEY);
    split.extend(tungstenite_frame(CONTINUE, true, b"\xba", KEY));
    assert_eq!(decode_in_steps(&mut server(), &split, 1).0, vec![Got::Text("κ".into())]);
    let mut cut = tungstenite_frame(TEXT, false, b"a", KEY);
    cut.extend(tungstenite_frame(CONTINUE, true, b"\xce", KEY));
    assert_eq!(fault_of(&cut).code, 1007);
    let reason = [&1000u16.to_be_bytes()[..], b"\xff"].concat();
    assert_eq!(fault_of(&tungstenite_frame(CLOSE, true, &reason, KEY)).code, 1007);
}

#[test]
fn messages_over_the_limit_are_1009_from_their_header() {
    let mut d = Decoder::new(true, 1000);
    let wire = tungstenite_frame(BINARY, true, &[0; 1001], KEY);
    let (_, r) = decode_in_steps(&mut d, &wire[..8], 8);
    assert_eq!(r.unwrap_err().code, 1009, "refused before its payload came");
    let mut fragments = tungstenite_frame(BINARY, false, &[0; 600], KEY);
    fragments.extend(tungstenite_frame(CONTINUE, true, &[0; 401], KEY));
    let (_, r) = decode_in_steps(&mut Decoder::new(true, 1000), &fragments, 7);
    assert!(r.unwrap_err().text.contains("too big"));
    let mut at_limit = tungstenite_frame(BINARY, false, &[0; 600], KEY);
    at_limit.extend(tungstenite_frame(CONTINUE, true, &[0; 400], KEY));
    let (got, r) = decode_in_steps(&mut Decoder::new(true, 1000), &at_limit, 7);
    assert_eq!((got, r), (vec![Got::Binary(vec![0; 1000])], Ok(())));
}

#[test]
fn utf8_checked_in_any_pieces_agrees_with_std() {
    let samples: [&[u8]; 8] = [
        "κόσμε".as_bytes(),
        "𝄞 and ✓".as_bytes(),
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
        b"abc\xe2\x82",
        b"\xe2\x82\xac\xf0\x9f\x98\x80",
        b"\xf0\x9f\x98",
    ];
    for s in samples {
        let whole = std::str::from_utf8(s).is_ok();
        for a in 0..=s.len() {
            for b in a..=s.len() {
                let mut v = Utf8::default();
                let ok = v.feed(&s[..a]) && v.feed(&s[a..b]) && v.feed(&s[b..]) && v.complete();
                assert_eq!(ok, whole, "{s:?} cut at {a} and {b}");
            }
        }
    }
}

#[test]
fn masks_apply_from_any_phase() {
    let mut data: Vec<u8> = (0..37).collect();
    let original = data.clone();
    let mask = [1, 2, 4, 8];
    apply_mask(&mut data[..5], mask, 0);
    apply_mask(&mut data[5..], mask, 5);
    let expected: Vec<u8> = original.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
    assert_eq!(data, expected);
}

#[test]
fn close_reasons_are_cut_to_fit_a_control_frame_at_a_char_boundary() {
    let p = close_payload(1002, &"é".repeat(100));
    assert!(p.len() <= 125 && std::str::from_utf8(&p[2..]).is_ok());
    assert_eq!(&p[..2], &1002u16.to_be_bytes());
}

#[test]
fn a_frame_filled_in_place_is_the_frame_encoded_from_a_slice() {
    // Around the header's length steps (125/126, 65535/65536), with multi-byte text.
    for len in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
        let text: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
        assert_eq!(text.len(), len);
        let filled = server_frame_filled(true, len, len + 1, |room| {
            room[..len].copy_from_slice(text.as_bytes());
            room[len] = 0; // as N-API writes its terminating NUL
            len
        });
        assert_eq!(filled, data_frame(true, text.as_bytes(), false), "{len} bytes");
    }
}

#[test]
fn a_frame_filled_short_is_framed_by_what_was_written() {
    let filled = server_frame_filled(true, 200, 201, |room| {
        room[..3].copy_from_slice(b"abc");
        3
    });
    assert_eq!(filled, data_frame(true, b"abc", false));
}
