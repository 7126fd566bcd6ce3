//! Server side of the opening handshake (RFC 6455 §4.2) for a request that Node's
//! HTTP server has already parsed: validate, choose the subprotocol, build the 101.

use std::borrow::Cow;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The parts of an HTTP upgrade request the handshake needs, as Node parsed them.
#[derive(Debug, Default, Clone)]
pub struct UpgradeRequest {
    pub method: String,
    pub upgrade: String,
    pub key: String,
    pub version: String,
    /// Raw `Sec-WebSocket-Protocol` header (comma-separated), empty if absent.
    pub protocol: String,
    /// `Authorization` header and request target (path and query), read only by a
    /// listener with authentication; empty otherwise.
    pub authorization: String,
    pub target: String,
    /// Not part of the request: what JS wants handed back with the session's
    /// `Open` event (the connect info of `websocket in` events); empty: nothing.
    pub announce: Vec<u8>,
}

/// Why a request was refused, as an HTTP response to write before closing.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// The body; for a 401, why (never the credential itself).
    pub reason: Cow<'static, str>,
}

impl Rejection {
    pub fn http_response(&self) -> String {
        let text = match self.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            426 => "Upgrade Required",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut extra = String::new();
        if self.status == 426 {
            extra.push_str("Sec-WebSocket-Version: 13\r\n");
        }
        if self.status == 401 {
            extra.push_str("WWW-Authenticate: Bearer\r\n");
        }
        format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}",
            self.status,
            text,
            self.reason.len(),
            extra,
            self.reason
        )
    }
}

pub fn validate(req: &UpgradeRequest) -> Result<(), Rejection> {
    // Methods are case-sensitive (RFC 7230 §3.1.1); Node's parser already refuses "get".
    if req.method != "GET" {
        return Err(Rejection { status: 400, reason: Cow::Borrowed("WebSocket upgrade needs a GET request") });
    }
    if !req.upgrade.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")) {
        return Err(Rejection { status: 400, reason: Cow::Borrowed("Upgrade header must be \"websocket\"") });
    }
    // The base64 of 16 bytes: 22 chars of the alphabet, then "==" (as `ws` checks it).
    let key = req.key.trim().as_bytes();
    if key.len() != 24 || !key[..22].iter().all(|&b| is_base64(b)) || &key[22..] != b"==" {
        return Err(Rejection { status: 400, reason: Cow::Borrowed("Missing or invalid Sec-WebSocket-Key") });
    }
    if !matches!(req.version.trim(), "13" | "8") {
        return Err(Rejection { status: 426, reason: Cow::Borrowed("Unsupported Sec-WebSocket-Version") });
    }
    Ok(())
}

/// The subprotocol to answer with (see `choose_protocol`), refused if it is not an
/// HTTP token: it is echoed in the 101, so a lenient HTTP parser (insecureHTTPParser)
/// cannot get control bytes into our answer. Offered entries not chosen are not
/// looked at, as core's `ws` 7 does not look at them (`chat, a b` answers `chat`).
pub fn answer_protocol(offered: &str, configured: &[String]) -> Result<Option<String>, Rejection> {
    match choose_protocol(offered, configured) {
        Some(p) if !p.bytes().all(is_token) => {
            Err(Rejection { status: 400, reason: Cow::Borrowed("Invalid Sec-WebSocket-Protocol header") })
        }
        chosen => Ok(chosen),
    }
}

/// RFC 9110 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Pick the subprotocol to answer with. With none configured we answer the client's
/// first choice (what core's `ws` server does); otherwise the first offered one that
/// is configured, or none.
pub fn choose_protocol(offered: &str, configured: &[String]) -> Option<String> {
    let mut offers = offered.split(',').map(str::trim).filter(|p| !p.is_empty());
    if configured.is_empty() {
        return offers.next().map(str::to_owned);
    }
    offers.find(|p| configured.iter().any(|c| c == p)).map(str::to_owned)
}

pub fn accept_response(key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.trim().as_bytes())
    );
    if let Some(p) = protocol {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(p);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A valid upgrade request (the RFC's example key), for tests.
#[cfg(test)]
pub fn sample_request() -> UpgradeRequest {
    UpgradeRequest {
        method: "GET".into(),
        upgrade: "websocket".into(),
        key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        version: "13".into(),
        protocol: String::new(),
        announce: Vec::new(),
        authorization: String::new(),
        target: String::new(),
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> UpgradeRequest {
        sample_request()
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        let r = String::from_utf8(accept_response("dGhlIHNhbXBsZSBub25jZQ==", Some("chat"))).unwrap();
        assert!(r.starts_with("HTTP/1.1 101 "));
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn bad_requests_are_refused_with_a_status() {
        assert!(validate(&good()).is_ok());
        let mut r = good();
        r.key = "short".into();
        assert_eq!(validate(&r).unwrap_err().status, 400);
        let mut r = good();
        r.version = "12".into();
        assert_eq!(validate(&r).unwrap_err().status, 426);
        assert!(validate(&r).unwrap_err().http_response().contains("Sec-WebSocket-Version: 13"));
        let mut r = good();
        r.upgrade = "h2c".into();
        assert_eq!(validate(&r).unwrap_err().status, 400);
        let mut r = good();
        r.method = "POST".into();
        assert_eq!(validate(&r).unwrap_err().status, 400);
        // Found by the property tests: 24 chars ending in "==" are not enough.
        let mut r = good();
        r.key = "=AAAAAAAAAAAAAAAAAAAAA==".into();
        assert_eq!(validate(&r).unwrap_err().status, 400);
        let mut r = good();
        r.method = "get".into();
        assert_eq!(validate(&r).unwrap_err().status, 400);
    }

    #[test]
    fn only_a_chosen_subprotocol_that_is_not_a_token_is_refused() {
        let refused = Err(Rejection { status: 400, reason: Cow::Borrowed("Invalid Sec-WebSocket-Protocol header") });
        for bad in ["a\u{0}b", "a\u{1}, chat", "a b", "\"q\"", "\u{e9}", "a b, chat"] {
            assert_eq!(answer_protocol(bad, &[]), refused, "{bad:?}");
        }
        let chat = Ok(Some("chat".to_owned()));
        // As core: what is not chosen is not looked at.
        for offer in ["chat, a b", "chat, a\u{1}", "chat,\"q\",\u{e9}"] {
            assert_eq!(answer_protocol(offer, &[]), chat, "{offer:?}");
        }
        assert_eq!(answer_protocol("a b, chat", &["chat".into()]), chat);
        assert_eq!(answer_protocol("a b", &["chat".into()]), Ok(None));
        for fine in ["", " , "] {
            assert_eq!(answer_protocol(fine, &[]), Ok(None), "{fine:?}");
        }
        assert_eq!(answer_protocol(" chat , superchat ", &[]), chat);
    }

    #[test]
    fn subprotocol_choice() {
        assert_eq!(choose_protocol("a, b", &[]), Some("a".into()));
        assert_eq!(choose_protocol("", &[]), None);
        assert_eq!(choose_protocol("x, b", &["a".into(), "b".into()]), Some("b".into()));
        assert_eq!(choose_protocol("x", &["a".into()]), None);
    }
}
