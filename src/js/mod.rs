//! The N-API surface: thin classes over the transport, and the conversions
//! between JS values and WebSocket messages.

mod listener;

use crate::inbox::Inbox;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

/// A batch of inbound events, handed to JS as one copied Buffer (never an external
/// one: Node defers their finalizers, see TRANSPORT-NOTES §3).
pub struct Batch(Vec<u8>);

impl ToNapiValue for Batch {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let mut data = std::ptr::null_mut();
        let mut out = std::ptr::null_mut();
        let status = napi::sys::napi_create_buffer_copy(env, val.0.len(), val.0.as_ptr().cast(), &mut data, &mut out);
        if status != napi::sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, "could not allocate an event batch"));
        }
        Ok(out)
    }
}

/// An inbox whose wake-ups call `on_events(batch)` on the JS thread. The callback is
/// weak: it does not keep Node alive.
pub fn inbox_for(on_events: Function<'_, Batch, ()>) -> Result<Arc<Inbox>> {
    let tsfn = on_events
        .build_threadsafe_function::<Arc<Inbox>>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|ctx| Ok(Batch(ctx.value.drain())))?;
    Ok(Inbox::new(Box::new(move |inbox| {
        tsfn.call(inbox, ThreadsafeFunctionCallMode::NonBlocking);
    })))
}

/// A JS string becomes a text message, a Buffer (or any typed array) a binary one;
/// each is copied once.
pub fn to_message(data: Either<String, &[u8]>) -> Message {
    match data {
        Either::A(s) => Message::Text(s.into()),
        Either::B(b) => Message::Binary(bytes::Bytes::copy_from_slice(b)),
    }
}

pub fn invalid(msg: impl Into<String>) -> Error {
    crate::error::Error::InvalidArgument(msg.into()).into()
}
