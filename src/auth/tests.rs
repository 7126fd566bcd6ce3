use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn refused(r: std::result::Result<Option<Value>, Refusal>) -> String {
    r.expect_err("accepted").0
}

#[test]
fn no_authentication_lets_everyone_in_without_an_identity() {
    assert_eq!(Auth::None.check("", "/ws"), Ok(None));
}

#[test]
fn a_shared_token_is_taken_from_the_bearer_header_or_the_query() {
    let auth = Auth::token("s3cret/+=", None).unwrap();
    let empty = Some(json!({}));
    assert_eq!(auth.check("Bearer s3cret/+=", "/ws"), Ok(empty.clone()));
    assert_eq!(auth.check("bearer   s3cret/+= ", "/ws"), Ok(empty.clone()));
    assert_eq!(auth.check("", "/ws?x=1&access_token=s3cret%2F%2B%3D"), Ok(empty.clone()));
    let named = Auth::token("t", Some("key".into())).unwrap();
    assert_eq!(named.check("", "/ws?key=t#frag"), Ok(empty));
    assert!(refused(named.check("", "/ws?access_token=t")).starts_with("no credential"));

    assert_eq!(refused(auth.check("Bearer s3cret", "/ws")), "wrong token");
    assert_eq!(refused(auth.check("Bearer s3cret/+==", "/ws")), "wrong token");
    assert!(refused(auth.check("Basic czNjcmV0", "/ws")).starts_with("no credential"));
    assert!(refused(auth.check("", "/ws?access_token=")).starts_with("no credential"));
    assert!(Auth::token("", None).is_err(), "an empty token would let anyone in");
    assert!(Auth::token(" \t", None).is_err(), "nor one of spaces");
}

#[test]
fn a_refusal_never_shows_the_credential() {
    let auth = Auth::token("right", None).unwrap();
    assert!(!refused(auth.check("Bearer wrong-guess", "/")).contains("wrong-guess"));
    let jwt = Auth::jwt("HS256", "k", None, None, None).unwrap();
    let token = hs256(&json!({"exp": now() - 3600}), "k");
    assert!(!refused(jwt.check(&format!("Bearer {token}"), "/")).contains(&token));
}

#[test]
fn a_jwt_is_verified_and_its_claims_become_the_identity() {
    let auth = Auth::jwt("HS256", "key", None, None, None).unwrap();
    let claims = json!({"sub": "ada", "roles": ["admin"], "exp": now() + 600});
    let token = hs256(&claims, "key");
    assert_eq!(auth.check(&format!("Bearer {token}"), "/"), Ok(Some(claims.clone())));
    assert_eq!(auth.check("", &format!("/ws?access_token={token}")), Ok(Some(claims)));

    let wrong_key = hs256(&json!({"sub": "x", "exp": now() + 600}), "other");
    assert!(refused(auth.check(&format!("Bearer {wrong_key}"), "/")).starts_with("invalid JWT"));
    let expired = hs256(&json!({"sub": "x", "exp": now() - 3600}), "key");
    assert_eq!(refused(auth.check(&format!("Bearer {expired}"), "/")), "invalid JWT: expired");
    let no_exp = hs256(&json!({"sub": "x"}), "key");
    assert!(refused(auth.check(&format!("Bearer {no_exp}"), "/")).starts_with("invalid JWT"), "exp is required");
    let early = hs256(&json!({"sub": "x", "exp": now() + 7200, "nbf": now() + 3600}), "key");
    assert_eq!(refused(auth.check(&format!("Bearer {early}"), "/")), "invalid JWT: not valid yet (nbf)");
    assert!(refused(auth.check("Bearer not.a.jwt", "/")).starts_with("invalid JWT"));
}

#[test]
fn issuer_and_audience_are_checked_when_given() {
    let auth = Auth::jwt("HS256", "key", Some("me".into()), Some("ws".into()), None).unwrap();
    let with = |iss: &str, aud: &str| {
        let token = hs256(&json!({"iss": iss, "aud": aud, "exp": now() + 600}), "key");
        auth.check(&format!("Bearer {token}"), "/")
    };
    assert!(with("me", "ws").is_ok());
    assert_eq!(refused(with("someone", "ws")), "invalid JWT: wrong issuer");
    assert_eq!(refused(with("me", "other")), "invalid JWT: wrong audience");
    // Without an audience configured, a token naming one is still accepted.
    let open = Auth::jwt("HS256", "key", None, None, None).unwrap();
    let token = hs256(&json!({"aud": "anything", "exp": now() + 600}), "key");
    assert!(open.check(&format!("Bearer {token}"), "/").is_ok());
}

#[test]
fn a_configured_issuer_or_audience_must_be_in_the_token() {
    let auth = Auth::jwt("HS256", "key", Some("me".into()), Some("ws".into()), None).unwrap();
    let check = |claims: Value| auth.check(&format!("Bearer {}", hs256(&claims, "key")), "/");
    let exp = now() + 600;
    assert!(check(json!({"iss": "me", "aud": "ws", "exp": exp})).is_ok(), "positive control");
    assert_eq!(refused(check(json!({"aud": "ws", "exp": exp}))), "invalid JWT: no iss claim");
    assert_eq!(refused(check(json!({"iss": "me", "exp": exp}))), "invalid JWT: no aud claim");
    assert!(refused(check(json!({"exp": exp}))).starts_with("invalid JWT: no "));
    assert!(refused(check(json!({"iss": 7, "aud": "ws", "exp": exp}))).starts_with("invalid JWT"));
    assert!(refused(check(json!({"iss": "me", "aud": ["x", 1], "exp": exp}))).starts_with("invalid JWT"));
}

#[test]
fn a_refusal_says_what_failed_in_fixed_words_never_what_the_client_sent() {
    let auth = Auth::jwt("HS256", "key", None, None, None).unwrap();
    let header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"HS256
[error] forged","typ":"JWT"}"#,
    );
    let body = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, br#"{"exp":1}"#);
    let reason = refused(auth.check(&format!("Bearer {header}.{body}.c2ln"), "/"));
    assert_eq!(reason, "invalid JWT: malformed");
    let bad_sig = hs256(&json!({"exp": now() + 600}), "other");
    assert_eq!(refused(auth.check(&format!("Bearer {bad_sig}"), "/")), "invalid JWT: bad signature");
}

#[test]
fn a_token_signed_with_another_algorithm_is_refused() {
    // HS256 signed with the RS256 public key as its secret: the classic algorithm
    // confusion. The listener accepts RS256 only.
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n";
    let auth = Auth::jwt("ES256", pem, None, None, None).unwrap();
    let forged = hs256(&json!({"sub": "x", "exp": now() + 600}), pem);
    assert!(refused(auth.check(&format!("Bearer {forged}"), "/")).starts_with("invalid JWT"));
}

#[test]
fn bad_settings_are_errors_up_front() {
    assert!(Auth::jwt("none", "k", None, None, None).is_err());
    assert!(Auth::jwt("HS512", "k", None, None, None).is_err());
    assert!(Auth::jwt("HS256", "", None, None, None).is_err());
    let e = Auth::jwt("RS256", "not a pem", None, None, None).expect_err("a bad key accepted");
    assert_eq!(e.code(), "ERR_WSRS_INVALID_ARGUMENT");
    assert!(
        Auth::jwt("ES256", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", None, None, None).is_err()
    );
}

#[test]
fn same_secret_compares_whole_values() {
    assert!(same_secret(b"abc", b"abc"));
    assert!(!same_secret(b"abc", b"abd"));
    assert!(!same_secret(b"abc", b"ab"));
    assert!(same_secret(b"", b""));
}
