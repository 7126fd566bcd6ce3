//! Property tests of the codec against tungstenite: messages framed (and
//! fragmented, with pings between fragments) by tungstenite decode the same with
//! ours, split into reads anywhere; frames we encode read the same in tungstenite;
//! and arbitrary bytes never make the decoder panic or hold more than its limit.

use super::tests::{decode_in_steps, tungstenite_frame, Got};
use super::*;
use proptest::prelude::*;
use std::io::{Read, Write};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Debug)]
struct Msg {
    text: bool,
    payload: Vec<u8>,
    /// Where the message is cut into fragments (offsets into the payload).
    cuts: Vec<usize>,
    /// A ping goes before each fragment whose index is listed.
    pings: Vec<usize>,
}

fn msg() -> impl Strategy<Value = Msg> {
    let payload = prop_oneof![
        any::<String>().prop_map(|s| (true, s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| (false, b)),
        (0usize..70_000).prop_map(|n| (false, vec![0x5a; n])),
        (0usize..30_000).prop_map(|n| (true, "é".repeat(n).into_bytes())),
    ];
    (payload, proptest::collection::vec(any::<prop::sample::Index>(), 0..4), proptest::collection::vec(0usize..5, 0..3))
        .prop_map(|((text, payload), cuts, pings)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Msg { text, payload, cuts, pings }
        })
}

/// The message as a client sends it with tungstenite's framing, random masks.
fn client_wire(m: &Msg, masks: &mut impl FnMut() -> [u8; 4]) -> Vec<u8> {
    let mut bounds = vec![0];
    bounds.extend(&m.cuts);
    bounds.push(m.payload.len());
    let first = OpCode::Data(if m.text { Data::Text } else { Data::Binary });
    let mut wire = Vec::new();
    for (i, w) in bounds.windows(2).enumerate() {
        if m.pings.contains(&i) {
            wire.extend(tungstenite_frame(OpCode::Control(Control::Ping), true, &[i as u8], Some(masks())));
        }
        let opcode = if i == 0 { first } else { OpCode::Data(Data::Continue) };
        wire.extend(tungstenite_frame(opcode, i + 2 == bounds.len(), &m.payload[w[0]..w[1]], Some(masks())));
    }
    wire
}

fn expected(m: &Msg) -> Vec<Got> {
    let fragments = m.cuts.len() + 1;
    let mut out: Vec<Got> = (0..fragments).filter(|i| m.pings.contains(i)).map(|i| Got::Ping(vec![i as u8])).collect();
    out.push(if m.text {
        Got::Text(String::from_utf8(m.payload.clone()).unwrap())
    } else {
        Got::Binary(m.payload.clone())
    });
    out
}

/// An in-memory stream for tungstenite: reads `input`, collects what it writes.
struct Pipe {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(crate::props::config(64, file!()))]

    #[test]
    fn tungstenite_framed_messages_decode_the_same_split_anywhere(
        msgs in proptest::collection::vec(msg(), 1..5),
        step in prop_oneof![1usize..20, 20usize..5000, Just(1 << 20)],
        seed in any::<u32>(),
    ) {
        let mut state = seed;
        let mut masks = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            state.to_be_bytes()
        };
        let wire: Vec<u8> = msgs.iter().flat_map(|m| client_wire(m, &mut masks)).collect();
        let want: Vec<Got> = msgs.iter().flat_map(expected).collect();
        let mut d = Decoder::new(true, 1 << 20);
        let (got, r) = decode_in_steps(&mut d, &wire, step);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(got, want);
        prop_assert!(d.is_idle());
    }

    #[test]
    fn our_frames_read_the_same_in_tungstenite(msgs in proptest::collection::vec(msg(), 1..5), client in any::<bool>()) {
        let wire: Vec<u8> = msgs.iter().flat_map(|m| data_frame(m.text, &m.payload, client).to_vec()).collect();
        let role = if client { Role::Server } else { Role::Client };
        let mut ws = WebSocket::from_raw_socket(Pipe { input: std::io::Cursor::new(wire), output: Vec::new() }, role, None);
        for m in &msgs {
            let want = if m.text {
                Message::text(String::from_utf8(m.payload.clone()).unwrap())
            } else {
                Message::binary(m.payload.clone())
            };
            prop_assert_eq!(ws.read().unwrap(), want);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_exceed_the_limit(
        wire in proptest::collection::vec(any::<u8>(), 0..400),
        step in 1usize..50,
        from_client in any::<bool>(),
    ) {
        let mut d = Decoder::new(from_client, 64);
        let _ = decode_in_steps(&mut d, &wire, step);
        prop_assert!(d.partial.as_ref().map_or(0, |p| p.data.len()) <= 64);
    }
}
