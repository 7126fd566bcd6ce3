//! Test hooks that panic where a defect would, so tests can show that no panic
//! reaches Node.js. Inert unless `WSRS_TEST_PANIC=1` is in the environment when
//! called (read at each call, so the shipped binary is the one tested); hidden
//! from the typings, and index.js does not export them.
// Reached only through napi's registration, which unit-test builds leave out.
#![cfg_attr(test, allow(dead_code))]

use super::invalid;
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn armed() -> Result<()> {
    match std::env::var("WSRS_TEST_PANIC") {
        Ok(v) if v == "1" => Ok(()),
        _ => Err(invalid("test hook: set WSRS_TEST_PANIC=1 to use it")),
    }
}

/// "call": panic in this call. "task": panic in a detached tokio task, the way a
/// session or client task would, and return at once.
#[napi(js_name = "__testPanic", skip_typescript, catch_unwind)]
pub fn test_panic(place: String) -> Result<()> {
    armed()?;
    match place.as_str() {
        "call" => panic!("websocket-rs test panic in a call"),
        "task" => {
            crate::listener::napi_or_tokio_spawn(async { panic!("websocket-rs test panic in a task") });
            Ok(())
        }
        _ => Err(invalid("test hook: place is \"call\" or \"task\"")),
    }
}

/// Panics inside the future of an async call.
#[napi(js_name = "__testPanicAsync", skip_typescript, catch_unwind)]
pub async fn test_panic_async() -> Result<()> {
    armed()?;
    panic!("websocket-rs test panic in an async call")
}

#[cfg(test)]
mod tests {
    /// A panic in a synchronous `#[napi]` function without `catch_unwind` aborts
    /// Node.js (TRANSPORT-NOTES §7). Every exported function must have it.
    #[test]
    fn every_exported_function_catches_panics() {
        let files = [
            ("bridge.rs", include_str!("bridge.rs")),
            ("client.rs", include_str!("client.rs")),
            ("listener.rs", include_str!("listener.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("testing.rs", include_str!("testing.rs")),
        ];
        let mut checked = 0;
        for (file, text) in files {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.starts_with("#[napi") {
                    continue;
                }
                let item = lines[i + 1..].iter().find(|l| !l.starts_with("#[") && !l.starts_with("//"));
                if item.is_some_and(|l| l.contains(" fn ")) {
                    assert!(line.contains("catch_unwind"), "{file}:{}: {line} lacks catch_unwind", i + 1);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "only {checked} exported functions found: is the scan still right?");
    }
}
