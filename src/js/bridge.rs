use super::CopiedBuffer;
use crate::bridge::{self, BridgeHandle, Output};
use crate::handshake::UpgradeRequest;
use crate::listener::Listener;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

/// A session whose bytes travel through a JS socket (see `Listener.bridge`).
#[napi(js_name = "Bridge")]
pub struct JsBridge {
    inner: BridgeHandle,
}

impl JsBridge {
    pub fn id(&self) -> u32 {
        self.inner.id
    }

    pub fn start(
        listener: &Listener,
        head: Vec<u8>,
        req: &UpgradeRequest,
        on_output: Function<'_, FnArgs<(u32, CopiedBuffer)>, ()>,
    ) -> Result<Either<JsBridge, String>> {
        let tsfn =
            on_output.build_threadsafe_function::<Output>().weak::<true>().callee_handled::<false>().build_callback(
                |ctx| {
                    // FnArgs spreads the tuple into two arguments (a bare tuple is one array).
                    Ok(FnArgs::from(match ctx.value {
                        Output::Data(b) => (1, CopiedBuffer::Bytes(b)),
                        Output::Drain => (2, CopiedBuffer::Bytes(bytes::Bytes::new())),
                        Output::End => (3, CopiedBuffer::Bytes(bytes::Bytes::new())),
                    }))
                },
            )?;
        let output = Box::new(move |o| {
            tsfn.call(o, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(match bridge::start(listener, head, req, output)? {
            Ok(inner) => Either::A(JsBridge { inner }),
            Err(rejection) => Either::B(rejection.http_response()),
        })
    }
}

#[napi]
impl JsBridge {
    /// Bytes read from the socket; false means pause the socket until told to resume.
    #[napi(catch_unwind)]
    pub fn push(&self, data: &[u8]) -> bool {
        self.inner.push(bytes::Bytes::copy_from_slice(data))
    }

    /// The socket ended or closed.
    #[napi(catch_unwind)]
    pub fn end(&self) {
        self.inner.end();
    }

    /// The socket has taken `bytes` of the output (see `bridge::OUT_WINDOW`).
    #[napi(catch_unwind)]
    pub fn written(&self, bytes: f64) {
        if bytes.is_finite() && bytes > 0.0 {
            self.inner.written(bytes as usize);
        }
    }
}
