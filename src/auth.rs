//! Authentication at the handshake, per listener: none (as core), a shared token,
//! or a JWT. The credential comes from `Authorization: Bearer …` or, since browsers
//! cannot set headers on a WebSocket, from a query parameter. A refused client
//! gets 401 before anything reaches the flow.

use crate::client::percent_decode;
use crate::error::{Error, Result};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// The shared token, and the query parameter that may carry it.
    Token {
        token: Vec<u8>,
        param: String,
    },
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
        param: String,
    },
}

/// The mode only: the secret and key stay out of logs.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Token { .. } => "Auth::Token",
            Auth::Jwt { .. } => "Auth::Jwt",
        })
    }
}

/// Why a client was refused; shown in the listener's warning, never the credential.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// The query parameter that carries the credential unless the node names another.
pub const DEFAULT_PARAM: &str = "access_token";

impl Auth {
    /// A shared token (empty is refused: it would let anyone in).
    pub fn token(token: &str, param: Option<String>) -> Result<Self> {
        if token.trim().is_empty() {
            return Err(Error::InvalidArgument("the shared token is empty".into()));
        }
        Ok(Auth::Token { token: token.as_bytes().to_vec(), param: param_or_default(param) })
    }

    /// A JWT signed with `algorithm` (HS256: `key` is the secret; RS256/ES256: a PEM
    /// public key). `exp` is required and checked (60 s leeway, the library's), as
    /// are `nbf`, and `iss`/`aud` when given.
    pub fn jwt(
        algorithm: &str,
        key: &str,
        issuer: Option<String>,
        audience: Option<String>,
        param: Option<String>,
    ) -> Result<Self> {
        let bad_key = |e: jsonwebtoken::errors::Error| Error::InvalidArgument(format!("the {algorithm} key: {e}"));
        let (alg, key) = match algorithm {
            "HS256" if key.trim().is_empty() => return Err(Error::InvalidArgument("the HS256 secret is empty".into())),
            "HS256" => (Algorithm::HS256, DecodingKey::from_secret(key.as_bytes())),
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(key.as_bytes()).map_err(bad_key)?),
            "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(key.as_bytes()).map_err(bad_key)?),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "JWT algorithm {other:?} is not one of HS256, RS256, ES256"
                )))
            }
        };
        let mut validation = Validation::new(alg);
        validation.validate_nbf = true;
        // jsonwebtoken checks iss and aud only when the token has them: a
        // configured one must also be present.
        let mut required = vec!["exp"];
        match audience.filter(|a| !a.trim().is_empty()) {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = issuer.filter(|i| !i.trim().is_empty()) {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Auth::Jwt { key, validation: Box::new(validation), param: param_or_default(param) })
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Auth::None)
    }

    /// Checks a handshake's credential: Ok(None) with no authentication, Ok(claims)
    /// for a valid JWT (an empty object for a token), or why it is refused.
    pub fn check(&self, authorization: &str, target: &str) -> std::result::Result<Option<Value>, Refusal> {
        let param = match self {
            Auth::None => return Ok(None),
            Auth::Token { param, .. } | Auth::Jwt { param, .. } => param,
        };
        let credential =
            bearer(authorization).map(str::to_owned).or_else(|| query_param(target, param)).ok_or_else(|| {
                Refusal("no credential (Authorization: Bearer, or the ".to_owned() + param + " query parameter)")
            })?;
        match self {
            Auth::None => Ok(None),
            Auth::Token { token, .. } => {
                if same_secret(credential.as_bytes(), token) {
                    Ok(Some(Value::Object(Default::default())))
                } else {
                    Err(Refusal("wrong token".into()))
                }
            }
            Auth::Jwt { key, validation, .. } => jsonwebtoken::decode::<Value>(&credential, key, validation)
                .map(|data| Some(data.claims))
                .map_err(|e| Refusal(format!("invalid JWT: {}", jwt_fault(e.kind())))),
        }
    }
}

/// A fixed text for each way a JWT fails: the library's own messages can repeat
/// what the client sent (a header's `alg`), which must not reach logs or answers.
fn jwt_fault(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet (nbf)",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "no exp claim",
            "iss" => "no iss claim",
            "aud" => "no aud claim",
            _ => "a required claim is missing",
        },
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => "algorithm not accepted",
        _ => "malformed",
    }
}

fn param_or_default(param: Option<String>) -> String {
    param.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PARAM.to_owned())
}

/// The credential of `Authorization: Bearer <credential>` (scheme case-insensitive).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    let credential = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// The percent-decoded value of `name` in the query of a request target.
fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name.as_bytes() && !v.is_empty())
            .then(|| String::from_utf8_lossy(&percent_decode(v)).into_owned())
    })
}

/// Compares SHA-256 digests, whole: the time taken tells an attacker neither how
/// much of a guess was right nor the token's length.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use ring::digest::{digest, SHA256};
    let (x, y) = (digest(&SHA256, a), digest(&SHA256, b));
    x.as_ref().iter().zip(y.as_ref()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

#[cfg(test)]
mod tests;
