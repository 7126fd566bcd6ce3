//! The N-API surface: thin classes over the transport, and the conversions
//! between JS values and WebSocket messages.

mod bridge;
mod client;
mod cluster;
mod frame;
mod listener;
pub(crate) mod stats;
pub mod testing;

use crate::inbox::{Batch, Inbox};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

/// Bytes handed to JS as a Buffer of their own, filled by one copy (never an
/// external Buffer: Node defers their finalizers, see TRANSPORT-NOTES §3). An event
/// batch is one of these.
pub enum CopiedBuffer {
    Bytes(bytes::Bytes),
    Batch(Batch),
    /// A batch already encoded into the Buffer JS lent to `pull`: that Buffer.
    Lent(napi::sys::napi_value),
}

impl TypeName for CopiedBuffer {
    fn type_name() -> &'static str {
        "Buffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for CopiedBuffer {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        match val {
            CopiedBuffer::Bytes(b) => Ok(match new_buffer(env, b.len()) {
                Some((out, dst)) => {
                    dst.copy_from_slice(&b);
                    out
                }
                // As for a batch, an error would be fatal in a wake-up's callback:
                // JS gets it as a value (the bridge then drops the connection).
                None => allocation_error(env, "could not allocate a Buffer for a bridge's output"),
            }),
            CopiedBuffer::Lent(value) => Ok(value),
            CopiedBuffer::Batch(batch) => {
                // Never an error: from the wake-up's callback napi would make it an
                // uncaught exception (Node-RED stops). JS gets the error as a value,
                // and the events wait in the inbox for its next pull.
                let mut value = None;
                let delivered = batch.deliver(|len| {
                    let (out, dst) = new_buffer(env, len)?;
                    value = Some(out);
                    Some(dst)
                });
                Ok(match value {
                    Some(out) if delivered => out,
                    _ => allocation_error(
                        env,
                        "could not allocate a Buffer for inbound events; they wait for the next try",
                    ),
                })
            }
        }
    }
}

/// A Buffer of `len` bytes of its own, and its bytes; None if Node could not make it.
unsafe fn new_buffer<'a>(env: napi::sys::napi_env, len: usize) -> Option<(napi::sys::napi_value, &'a mut [u8])> {
    let mut data = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    let status = napi::sys::napi_create_buffer(env, len, &mut data, &mut out);
    if status != napi::sys::Status::napi_ok || out.is_null() || (len > 0 && data.is_null()) {
        return None;
    }
    if len == 0 {
        return Some((out, &mut []));
    }
    // SAFETY: Node just allocated `len` bytes at `data` for this Buffer alone.
    Some((out, std::slice::from_raw_parts_mut(data.cast::<u8>(), len)))
}

/// What JS gets in place of a Buffer that could not be made: the exception
/// the allocation left pending (taken, so that napi does not throw it), or a new
/// Error; `undefined` if even that cannot be made.
unsafe fn allocation_error(env: napi::sys::napi_env, text: &str) -> napi::sys::napi_value {
    use napi::sys;
    let mut pending = false;
    let mut error = std::ptr::null_mut();
    if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok
        && pending
        && sys::napi_get_and_clear_last_exception(env, &mut error) == sys::Status::napi_ok
        && !error.is_null()
    {
        return error;
    }
    let (mut code, mut msg) = (std::ptr::null_mut(), std::ptr::null_mut());
    let code_text = "ERR_WSRS_NO_MEMORY";
    let made = sys::napi_create_string_utf8(env, code_text.as_ptr().cast(), code_text.len() as isize, &mut code)
        == sys::Status::napi_ok
        && sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut msg)
            == sys::Status::napi_ok
        && sys::napi_create_error(env, code, msg, &mut error) == sys::Status::napi_ok;
    if made && !error.is_null() {
        return error;
    }
    let mut undefined = std::ptr::null_mut();
    sys::napi_get_undefined(env, &mut undefined);
    undefined
}

/// An inbox whose wake-ups call `on_events(batch)` on the JS thread; JS pulls the
/// rest (`pull`). The callback is weak: it does not keep Node alive.
pub fn inbox_for(on_events: Function<'_, CopiedBuffer, ()>) -> Result<Arc<Inbox>> {
    let tsfn = on_events
        .build_threadsafe_function::<Arc<Inbox>>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|ctx| Ok(CopiedBuffer::Batch(ctx.value.take())))?;
    Ok(Inbox::new(Box::new(move |inbox| {
        tsfn.call(inbox, ThreadsafeFunctionCallMode::NonBlocking);
    })))
}

/// Binary payloads from this size up reach the flow as views of their batch
/// (`COPY_BELOW` in nodes/lib/batch.js: keep the two equal).
const VIEW_FROM: usize = 4096;

/// The next batch for JS, if any (see `Inbox::pull`); an Error in its place if its
/// Buffer could not be made (the events wait for the next pull). A batch that fits
/// in `spare` (a Buffer of an earlier batch that JS lends back, nothing else
/// viewing it) is encoded into it and `spare` returned: no Buffer is allocated
/// per batch, and glibc stops growing and trimming its heap around each one.
pub fn pull(inbox: &Arc<Inbox>, spare: Option<BufferSlice<'_>>) -> Option<CopiedBuffer> {
    let batch = inbox.pull()?;
    match spare {
        // Not a batch whose payload JS would hand out as a view: a flow keeping it
        // would keep the whole spare, older batches' bytes included.
        Some(mut spare) if batch.encoded_len() <= spare.len() && !batch.has_binary_from(VIEW_FROM) => {
            let value = napi::JsValue::value(&spare).value;
            let len = batch.encoded_len();
            batch.deliver(|_| Some(&mut spare[..len]));
            Some(CopiedBuffer::Lent(value))
        }
        _ => Some(CopiedBuffer::Batch(batch)),
    }
}

/// Parse an optional byte count given by JS (a number), with a default.
pub fn bytes_option(v: Option<f64>, default: usize, name: &str) -> Result<usize> {
    match v {
        None => Ok(default),
        Some(n) if n.is_finite() && n >= 1.0 => Ok(n as usize),
        Some(n) => Err(invalid(format!("{name} must be a positive number of bytes, got {n}"))),
    }
}

/// Session settings shared by listeners and clients, as JS gives them.
pub struct SessionOptions {
    pub heartbeat_ms: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub max_message_bytes: Option<f64>,
    pub max_queue_bytes: Option<f64>,
    pub queue_policy: Option<String>,
}

pub fn session_config(o: SessionOptions) -> Result<crate::session::SessionConfig> {
    let defaults = crate::session::SessionConfig::default();
    let millis = |ms: Option<u32>| ms.filter(|&ms| ms > 0).map(|ms| std::time::Duration::from_millis(ms.into()));
    let drop_when_full = match o.queue_policy.as_deref() {
        None | Some("" | "close") => false,
        Some("drop") => true,
        Some(other) => return Err(invalid(format!("queuePolicy must be \"close\" or \"drop\", got {other:?}"))),
    };
    Ok(crate::session::SessionConfig {
        heartbeat: millis(o.heartbeat_ms),
        idle: millis(o.idle_timeout_ms),
        // A larger message could not cross to JS: its batch carries lengths as u32.
        max_message_bytes: bytes_option(o.max_message_bytes, defaults.max_message_bytes, "maxMessageBytes")?
            .min(crate::inbox::MAX_EVENT_BYTES),
        max_queue_bytes: bytes_option(o.max_queue_bytes, defaults.max_queue_bytes, "maxQueueBytes")?,
        drop_when_full,
        ..defaults
    })
}

/// The body of `sendMany`: pairs each target with its payload, in order, and
/// counts what `send` queued.
pub fn send_each(
    targets: &[u32],
    payloads: Vec<frame::Payload>,
    mut send: impl FnMut(u32, Message) -> u32,
) -> Result<u32> {
    if targets.len() != payloads.len() {
        return Err(invalid("targets and payloads differ in length"));
    }
    Ok(targets.iter().zip(payloads).map(|(&target, payload)| send(target, payload.0)).sum())
}

/// The close code JS asked for; absent means 1001 "going away" (a node stopping).
/// Codes a peer must treat as a protocol error are refused, as `ws` refuses them:
/// below 1000, 1004-1006 and 1015 (reserved or never on the wire), 1016-2999
/// (unassigned protocol codes), and anything past 4999.
pub fn close_code(code: Option<u32>) -> Result<u16> {
    match code {
        None => Ok(1001),
        Some(c @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => Ok(c as u16),
        Some(c) => Err(invalid(format!("close code {c} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"))),
    }
}

pub fn invalid(msg: impl Into<String>) -> Error {
    crate::error::Error::InvalidArgument(msg.into()).into()
}

#[cfg(test)]
mod tests {
    use super::{close_code, session_config, SessionOptions};
    use crate::inbox::MAX_EVENT_BYTES;

    #[test]
    fn the_message_limit_is_clamped_to_what_one_batch_can_carry() {
        let limit = |v: f64| {
            let o = SessionOptions {
                heartbeat_ms: None,
                idle_timeout_ms: None,
                max_message_bytes: Some(v),
                max_queue_bytes: None,
                queue_policy: None,
            };
            session_config(o).map(|c| c.max_message_bytes).ok()
        };
        assert!(MAX_EVENT_BYTES + 20 <= u32::MAX as usize, "a one-event batch's Buffer length fits a u32");
        for huge in [MAX_EVENT_BYTES as f64 + 1.0, 4294967296.0, 1e12, 1e300] {
            assert_eq!(limit(huge), Some(MAX_EVENT_BYTES), "{huge}");
        }
        // The control: a limit within it is kept as given.
        for fine in [1.0, 100.0 * 1048576.0, MAX_EVENT_BYTES as f64] {
            assert_eq!(limit(fine), Some(fine as usize), "{fine}");
        }
    }

    #[test]
    fn close_codes_that_must_not_be_sent_are_refused_with_a_code() {
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65_535, 70_000] {
            let e = close_code(Some(bad)).expect_err(&bad.to_string());
            assert!(e.reason.starts_with("ERR_WSRS_INVALID_ARGUMENT: close code"), "{bad}: {}", e.reason);
        }
        for good in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999] {
            assert_eq!(close_code(Some(good)).ok(), Some(good as u16));
        }
        assert_eq!(close_code(None).ok(), Some(1001));
    }
}
