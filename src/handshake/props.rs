//! Properties of the server handshake: valid requests (in every spelling RFC 6455 and
//! RFC 7230 allow) are answered with the right accept key and subprotocol; requests
//! with a broken method, Upgrade, key or version are refused with the status for the
//! first broken one (the order `validate` checks in); only a token is ever answered as
//! the subprotocol, and only the chosen entry must be one; nothing panics on any input.
//! The Connection header is not here: Node's HTTP parser decides it (no upgrade event
//! without an "upgrade" token), see tests/handshake-vs-ws.test.js.

use super::*;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use proptest::prelude::*;
use sha1::{Digest, Sha1};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// HTTP's optional whitespace (RFC 7230 §3.2.3). Node strips it around a header
/// value, but `validate` must not rely on that.
fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")]
}

fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len())
        .prop_map(move |up| word.chars().zip(up).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c }).collect())
}

/// A header list (RFC 7230 §7): separators with whitespace, empty elements allowed.
fn list(items: Vec<String>) -> impl Strategy<Value = String> {
    let sep = prop_oneof![Just(","), Just(", "), Just(" ,\t"), Just(", ,"), Just(",,")];
    (prop::collection::vec(sep, items.len()), ows(), ows()).prop_map(move |(seps, before, after)| {
        let mut s = before.to_owned();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                s.push_str(seps[i]);
            }
            s.push_str(item);
        }
        s + after
    })
}

/// "websocket" in any case, alone or among other protocols (RFC 7230 §6.7).
fn upgrade() -> impl Strategy<Value = String> {
    let other = prop_oneof![Just("h2c"), Just("HTTP/2.0"), Just("IRC/6.9"), Just("websockets")].prop_map(str::to_owned);
    (prop::collection::vec(other, 0..3), any_case("websocket"), any::<prop::sample::Index>()).prop_flat_map(
        |(mut others, ws, at)| {
            others.insert(at.index(others.len() + 1), ws);
            list(others)
        },
    )
}

/// The base64 of 16 bytes. The last char before "==" may carry non-zero trailing
/// bits (`ws` accepts those too: only the string is hashed, never decoded).
fn key() -> impl Strategy<Value = String> {
    (any::<[u8; 16]>(), prop::option::of(0..64usize), ows(), ows()).prop_map(|(bytes, last, before, after)| {
        let mut k = STANDARD.encode(bytes).into_bytes();
        if let Some(i) = last {
            k[21] = BASE64_CHARS[i];
        }
        format!("{before}{}{after}", String::from_utf8(k).expect("ASCII"))
    })
}

fn version() -> impl Strategy<Value = String> {
    (prop_oneof![Just("13"), Just("8")], ows(), ows()).prop_map(|(v, a, b)| format!("{a}{v}{b}"))
}

fn protocol_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("chat"), Just("Chat"), Just("superchat"), Just("mqtt"), Just("v2.json.example")]
        .prop_map(str::to_owned)
}

fn offers() -> impl Strategy<Value = String> {
    prop::collection::vec(protocol_name(), 0..5).prop_flat_map(list)
}

/// Entries that are not HTTP tokens (no commas: those would split them).
fn non_token() -> impl Strategy<Value = String> {
    let odd = prop_oneof![
        Just("a b"),
        Just("\"chat\""),
        Just("ch\u{e2}t"),
        Just("x\u{1}"),
        Just("a/b"),
        Just("(c)"),
        Just("a;b")
    ];
    odd.prop_map(str::to_owned)
}

/// Offers mixing tokens with entries that are not.
fn mixed_offers() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![protocol_name(), non_token()], 1..5).prop_flat_map(list)
}

fn is_http_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_request() -> impl Strategy<Value = UpgradeRequest> {
    (upgrade(), key(), version(), offers()).prop_map(|(upgrade, key, version, protocol)| UpgradeRequest {
        method: "GET".into(),
        upgrade,
        key,
        version,
        protocol,
        announce: Vec::new(),
        authorization: String::new(),
        target: String::new(),
    })
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn bad_method() -> impl Strategy<Value = String> {
    // Methods are case-sensitive (RFC 7230 §3.1.1).
    let m = ["POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "get", "Get", "GETS", ""];
    prop::sample::select(m.to_vec()).prop_map(str::to_owned)
}

fn bad_upgrade() -> impl Strategy<Value = String> {
    let u =
        ["", "h2c", "websocket2", "web socket", "websockets", "websocket/13", "\"websocket\"", "ws", "h2c, TLS/1.0"];
    prop::sample::select(u.to_vec()).prop_map(str::to_owned)
}

/// Keys that are not the base64 of 16 bytes, made from a valid one.
fn bad_key() -> impl Strategy<Value = String> {
    // '=' is in the alphabet but only as padding: the subtle one, so the most frequent.
    let odd = prop_oneof![Just('='), prop::sample::select(vec!['-', '_', '.', '*', ' ', '\t', 'é', '\0', '~'])];
    let ends = prop::sample::select(vec!["A=", "=A", "AA", "", "=", "===", "= ="]);
    let sizes = prop::sample::select(vec![0usize, 1, 15, 17, 18, 32]);
    let valid = || any::<[u8; 16]>().prop_map(|b| STANDARD.encode(b));
    prop_oneof![
        (valid(), 0..24usize).prop_map(|(k, n)| k[..n].to_owned()),
        (valid(), prop::collection::vec(prop::sample::select(BASE64_CHARS), 1..4))
            .prop_map(|(k, more)| k + std::str::from_utf8(&more).expect("ASCII")),
        (valid(), 0..22usize, odd).prop_map(|(k, i, c)| k
            .chars()
            .enumerate()
            .map(|(j, d)| if j == i { c } else { d })
            .collect()),
        (valid(), ends).prop_map(|(k, end)| k[..22].to_owned() + end),
        (sizes, any::<u8>()).prop_map(|(n, b)| STANDARD.encode(vec![b; n])),
        // Two Sec-WebSocket-Key headers: Node joins them.
        (valid(), valid()).prop_map(|(a, b)| format!("{a}, {b}")),
    ]
}

fn bad_version() -> impl Strategy<Value = String> {
    let v =
        ["", "12", "7", "0", "14", "130", "13, 8", "13, 13", "8, 13", "013", "13.0", "0xd", "1 3", "+13", "١٣", "13a"];
    prop::sample::select(v.to_vec()).prop_map(str::to_owned)
}

#[derive(Debug, Clone)]
struct Broken {
    method: Option<String>,
    upgrade: Option<String>,
    key: Option<String>,
    version: Option<String>,
}

/// Mostly one fault (so that each is seen alone), sometimes several.
fn broken() -> impl Strategy<Value = Broken> {
    use prop::option::of;
    let none = Broken { method: None, upgrade: None, key: None, version: None };
    let (n, u, k) = (none.clone(), none.clone(), none.clone());
    prop_oneof![
        1 => bad_method().prop_map(move |m| Broken { method: Some(m), ..n.clone() }),
        1 => bad_upgrade().prop_map(move |x| Broken { upgrade: Some(x), ..u.clone() }),
        1 => bad_key().prop_map(move |x| Broken { key: Some(x), ..k.clone() }),
        1 => bad_version().prop_map(move |x| Broken { version: Some(x), ..none.clone() }),
        1 => (of(bad_method()), of(bad_upgrade()), of(bad_key()), of(bad_version()))
            .prop_map(|(method, upgrade, key, version)| Broken { method, upgrade, key, version })
            .prop_filter("something broken", |b| b.method.is_some() || b.upgrade.is_some() || b.key.is_some() || b.version.is_some()),
    ]
}

/// The 101 as RFC 6455 §4.2.2 spells it, computed here independently.
fn expected_101(key: &str, protocol: Option<&str>) -> String {
    let accept = STANDARD.encode(Sha1::digest(format!("{}{GUID}", trim_ows(key))));
    let mut r = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n");
    if let Some(p) = protocol {
        r += &format!("Sec-WebSocket-Protocol: {p}\r\n");
    }
    r + "\r\n"
}

/// Checks that a refusal is a complete HTTP response with `status`.
fn check_refusal(r: &Rejection, status: u16) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.status, status, "refused for: {}", r.reason);
    let text = r.http_response();
    let (head, body) = text.split_once("\r\n\r\n").expect("a blank line ends the head");
    let status_line = format!("HTTP/1.1 {status} ");
    prop_assert!(head.starts_with(&status_line), "{}", head);
    prop_assert_eq!(body, r.reason.as_ref());
    let length = format!("\r\nContent-Length: {}\r\n", body.len());
    prop_assert!(text.contains(&length), "{}", text);
    prop_assert_eq!(head.contains("\r\nSec-WebSocket-Version: 13"), status == 426);
    Ok(())
}

proptest! {
    #![proptest_config(crate::props::config(256, file!()))]

    #[test]
    fn valid_requests_get_the_accept_key_and_the_protocol(req in valid_request(), configured in prop::collection::vec(protocol_name(), 0..3)) {
        prop_assert_eq!(validate(&req), Ok(()));
        let offered: Vec<&str> = req.protocol.split(',').map(trim_ows).filter(|p| !p.is_empty()).collect();
        // None configured: the client's first choice (as core); else the first offered that is configured.
        let want = if configured.is_empty() { offered.first() } else { offered.iter().find(|p| configured.iter().any(|c| c == *p)) };
        let chosen = answer_protocol(&req.protocol, &configured).expect("tokens only");
        prop_assert_eq!(chosen.as_deref(), want.copied());
        let response = String::from_utf8(accept_response(&req.key, chosen.as_deref())).expect("UTF-8");
        prop_assert_eq!(response, expected_101(&req.key, chosen.as_deref()));
    }

    #[test]
    fn only_the_chosen_subprotocol_must_be_a_token(offer in mixed_offers(), configured in prop::collection::vec(prop_oneof![protocol_name(), non_token()], 0..3)) {
        let offered: Vec<&str> = offer.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        let want = if configured.is_empty() { offered.first() } else { offered.iter().find(|p| configured.iter().any(|c| c == *p)) };
        match (answer_protocol(&offer, &configured), want) {
            (Ok(chosen), want) => {
                prop_assert_eq!(chosen.as_deref(), want.copied());
                prop_assert!(chosen.as_deref().is_none_or(is_http_token), "echoed {:?}", chosen);
            }
            (Err(r), Some(w)) => {
                prop_assert!(!is_http_token(w), "refused the token {:?}", w);
                check_refusal(&r, 400)?;
            }
            (Err(r), None) => prop_assert!(false, "refused {:?} though nothing was chosen: {:?}", offer, r),
        }
    }

    #[test]
    fn broken_requests_are_refused_with_the_status_of_the_first_fault(req in valid_request(), b in broken()) {
        let status = if b.method.is_some() || b.upgrade.is_some() || b.key.is_some() { 400 } else { 426 };
        let broken = UpgradeRequest {
            method: b.method.unwrap_or(req.method),
            upgrade: b.upgrade.unwrap_or(req.upgrade),
            key: b.key.unwrap_or(req.key),
            version: b.version.unwrap_or(req.version),
            protocol: req.protocol,
            announce: Vec::new(),
            authorization: String::new(),
            target: String::new(),
        };
        match validate(&broken) {
            Ok(()) => prop_assert!(false, "accepted {:?}", broken),
            Err(r) => check_refusal(&r, status)?,
        }
    }

    #[test]
    fn any_request_is_answered_without_panic_and_accepted_only_when_sound(
        method in prop_oneof![Just("GET".to_owned()), any::<String>()],
        upgrade in prop_oneof![upgrade(), bad_upgrade(), any::<String>()],
        key in prop_oneof![key(), bad_key(), any::<String>()],
        version in prop_oneof![version(), bad_version(), any::<String>()],
        protocol in prop_oneof![offers(), any::<String>()],
        configured in prop::collection::vec(any::<String>(), 0..3),
    ) {
        let req = UpgradeRequest { method, upgrade, key, version, protocol, ..Default::default() };
        match validate(&req) {
            Err(r) => prop_assert!(r.status == 400 || r.status == 426),
            Ok(()) => {
                // Strict base64 except for trailing bits (see `key`).
                let lax = GeneralPurpose::new(
                    &alphabet::STANDARD,
                    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true).with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
                );
                // `validate` trims any Unicode whitespace (`ws` trims with JS's trim(): nearly the same set).
                let decoded = lax.decode(req.key.trim()).map(|k| k.len());
                prop_assert_eq!(decoded, Ok(16), "accepted key {:?}", req.key);
                prop_assert_eq!(req.method.as_str(), "GET");
                prop_assert!(matches!(req.version.trim(), "13" | "8"));
                match answer_protocol(&req.protocol, &configured) {
                    Ok(chosen) => {
                        // Whatever is echoed in the 101 is a token the client offered.
                        prop_assert!(chosen.as_deref().is_none_or(is_http_token), "echoed {:?}", chosen);
                        prop_assert!(chosen.as_deref().is_none_or(|c| req.protocol.split(',').any(|p| p.trim() == c)));
                        accept_response(&req.key, chosen.as_deref());
                    }
                    Err(r) => check_refusal(&r, 400)?,
                }
            }
        }
    }
}
