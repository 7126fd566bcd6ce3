//! Typed errors of the transport. Each variant has a stable code that JavaScript
//! sees as `err.code` (index.js splits it off the message).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed something unusable (bad URL, bad option); fix the configuration.
    #[error("{0}")]
    InvalidArgument(String),
    /// The listener or client was already closed; create a new one.
    #[error("already closed")]
    Closed,
    /// The operating system refused an operation on a socket or file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// TLS material could not be used (bad PEM, wrong passphrase, no certificate).
    #[error("{0}")]
    Tls(String),
    /// The WebSocket protocol failed (handshake refused, bad frame, bad UTF-8).
    #[error("{0}")]
    Protocol(String),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "ERR_WSRS_INVALID_ARGUMENT",
            Error::Closed => "ERR_WSRS_CLOSED",
            Error::Io(_) => "ERR_WSRS_IO",
            Error::Tls(_) => "ERR_WSRS_TLS",
            Error::Protocol(_) => "ERR_WSRS_PROTOCOL",
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as W;
        match e {
            W::Io(io) => Error::Io(io),
            W::Tls(t) => Error::Tls(t.to_string()),
            other => Error::Protocol(other.to_string()),
        }
    }
}

/// `CODE: message`, the form index.js turns into `err.code` + `err.message`.
pub struct Coded<'a>(pub &'a Error);

impl fmt::Display for Coded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code(), self.0)
    }
}

impl From<Error> for napi::Error {
    fn from(e: Error) -> Self {
        napi::Error::new(napi::Status::GenericFailure, Coded(&e).to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
