//! Payloads from JS, taken as a server frame made straight from a JS string or
//! Buffer (a listener's `sendMany`, `run`, `sendRemote`), or as a message (a
//! client's `sendMany`, whose frames are masked per send). napi-rs's
//! `Either<String, &[u8]>` formats an error message for every Buffer (the string
//! check fails first), copies a string twice for a server frame, and leaves a
//! Buffer's bytes borrowed while later elements are read (a getter could detach
//! them); these copy each payload as it is read. Measured for server frames:
//! 363 → 268 ns per 64 B Buffer on the JS thread. Typed-array arguments read
//! beside other arguments (`U32s`, `OwnedBytes`) are copied as they are converted,
//! for the same reason.

use crate::codec::blocks::{frames_by_run, Blocks};
use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi::sys;
use std::ptr;
use tokio_tungstenite::tungstenite::Message;

/// A payload from JS, encoded as the frame a server sends: a string as text, a
/// Buffer (any Uint8Array) as binary.
pub struct ServerFrame(pub bytes::Bytes);

impl TypeName for ServerFrame {
    fn type_name() -> &'static str {
        "string | Uint8Array"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl FromNapiValue for ServerFrame {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        unsafe { server_frame(env, value, &mut Blocks::default(), 1) }.map(ServerFrame)
    }
}

/// A Uint32Array's numbers, copied as the argument is converted: later
/// arguments' conversion may run JS (a getter) that could change or detach the
/// array's memory, and a copy also spares napi-rs's reference to the array.
pub struct U32s(pub Vec<u32>);

impl TypeName for U32s {
    fn type_name() -> &'static str {
        "Uint32Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for U32s {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        match unsafe { typed_view::<u32>(env, value, sys::TypedarrayType::uint32_array) } {
            Some(numbers) => Ok(U32s(numbers.to_vec())),
            None => Err(super::invalid("expected a Uint32Array")),
        }
    }
}

/// A Buffer's (any Uint8Array's) bytes, copied as the argument is converted, for
/// the same reason as `U32s`.
pub struct OwnedBytes(pub Vec<u8>);

impl TypeName for OwnedBytes {
    fn type_name() -> &'static str {
        "Uint8Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for OwnedBytes {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        match unsafe { typed_view::<u8>(env, value, sys::TypedarrayType::uint8_array) } {
            Some(bytes) => Ok(OwnedBytes(bytes.to_vec())),
            None => Err(super::invalid("expected a Buffer (Uint8Array)")),
        }
    }
}

/// A JS array of payloads, framed once the sessions they go to are known
/// (`server_frames`). Valid during the call that received it.
pub struct PayloadArray {
    env: sys::napi_env,
    value: sys::napi_value,
    len: u32,
}

impl TypeName for PayloadArray {
    fn type_name() -> &'static str {
        "Array<string | Uint8Array>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for PayloadArray {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let (mut is_array, mut len) = (false, 0);
        check_status!(unsafe { sys::napi_is_array(env, value, &mut is_array) }, "payloads")?;
        if !is_array {
            return Err(super::invalid("payloads must be an array"));
        }
        check_status!(unsafe { sys::napi_get_array_length(env, value, &mut len) }, "payloads' length")?;
        Ok(PayloadArray { env, value, len })
    }
}

impl PayloadArray {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Each payload as the frame a server sends to `targets[i]`: a run of frames
    /// for the same session shares blocks (`codec::blocks`).
    pub fn server_frames(&self, targets: &[u32]) -> Result<Vec<Bytes>> {
        if targets.len() != self.len() {
            return Err(super::invalid("targets and payloads differ in length"));
        }
        frames_by_run(targets, |i, blocks, left| {
            let mut value = ptr::null_mut();
            check_status!(unsafe { sys::napi_get_element(self.env, self.value, i as u32, &mut value) }, "payload")?;
            unsafe { server_frame(self.env, value, blocks, left) }
        })
    }
}

/// A payload encoded as the frame a server sends: a string as text, a Buffer (any
/// Uint8Array) as binary; `left` frames of its run remain, this one included.
unsafe fn server_frame(env: sys::napi_env, value: sys::napi_value, blocks: &mut Blocks, left: usize) -> Result<Bytes> {
    if !unsafe { is_string(env, value)? } {
        return Ok(blocks.binary(unsafe { uint8_bytes(env, value)? }, left));
    }
    let mut len = 0;
    check_status!(
        unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) },
        "payload length"
    )?;
    let mut status = Ok(());
    // N-API writes a terminating NUL too: one byte of room more than the text.
    let frame = blocks.filled(true, len, len + 1, left, |room| {
        let mut wrote = 0;
        status = check_status!(
            unsafe { sys::napi_get_value_string_utf8(env, value, room.as_mut_ptr().cast(), room.len(), &mut wrote) },
            "payload text"
        );
        wrote
    });
    status.map(|()| frame)
}

/// A payload from JS as a message: a string as text, a Uint8Array as binary.
pub struct Payload(pub Message);

impl TypeName for Payload {
    fn type_name() -> &'static str {
        "string | Uint8Array"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl FromNapiValue for Payload {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        Ok(Payload(if unsafe { is_string(env, value)? } {
            Message::Text(unsafe { String::from_napi_value(env, value)? }.into())
        } else {
            Message::Binary(bytes::Bytes::copy_from_slice(unsafe { uint8_bytes(env, value)? }))
        }))
    }
}

unsafe fn is_string(env: sys::napi_env, value: sys::napi_value) -> Result<bool> {
    let mut kind = 0;
    check_status!(unsafe { sys::napi_typeof(env, value, &mut kind) }, "payload type")?;
    Ok(kind == sys::ValueType::napi_string)
}

/// A Uint8Array's (a Buffer's) bytes, to be copied before any other JS value is
/// read; anything else is refused.
unsafe fn uint8_bytes<'a>(env: sys::napi_env, value: sys::napi_value) -> Result<&'a [u8]> {
    unsafe { typed_view(env, value, sys::TypedarrayType::uint8_array) }
        .ok_or_else(|| super::invalid("a payload must be a string or a Buffer (Uint8Array)"))
}

/// The memory of a typed array of `kind`; None for anything else. Valid until JS
/// runs again (a getter could detach it).
unsafe fn typed_view<'a, T>(env: sys::napi_env, value: sys::napi_value, kind: i32) -> Option<&'a [T]> {
    let (mut array_type, mut len, mut data) = (0, 0, ptr::null_mut());
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut array_type,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok || array_type != kind {
        return None;
    }
    // A view of length 0 may have no memory at all.
    Some(if len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(data.cast(), len) } })
}
