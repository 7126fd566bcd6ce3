//! Test hooks that panic where a defect would, so tests can show that no panic
//! reaches Node.js. Inert unless `WSRS_TEST_PANIC=1` was in the environment when
//! the addon was loaded: the variable is read once, on the thread that loads it
//! (never on a worker, where a concurrent `setenv` would be a data race), so a
//! process cannot arm them later. Hidden from the typings; index.js does not
//! export them.
// Reached only through napi's registration, which unit-test builds leave out.
#![cfg_attr(test, allow(dead_code))]

use super::invalid;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::OnceLock;

static ARMED: OnceLock<bool> = OnceLock::new();

/// Called once as the module loads.
pub fn latch() {
    ARMED.get_or_init(|| std::env::var_os("WSRS_TEST_PANIC").is_some_and(|v| v == "1"));
}

fn armed() -> Result<()> {
    match ARMED.get() {
        Some(true) => Ok(()),
        _ => Err(invalid("test hook: inert unless WSRS_TEST_PANIC=1 was set when the addon was loaded")),
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

/// Panics inside the future of an async call. Checked before the future exists:
/// inert, it throws at once and spawns nothing.
#[napi(js_name = "__testPanicAsync", skip_typescript, catch_unwind)]
pub fn test_panic_async(env: &Env) -> Result<PromiseRaw<'_, ()>> {
    armed()?;
    env.spawn_future(async { panic_in_future() })
}

fn panic_in_future() -> Result<()> {
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
