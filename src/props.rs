//! Settings shared by the property tests (`src/*/props.rs`).

use proptest::test_runner::Config;

/// `cases` per property keeps `cargo test` quick; `PROPTEST_CASES=N` runs N instead
/// (and proptest's other `PROPTEST_*` variables apply as usual).
pub fn config(cases: u32, source_file: &'static str) -> Config {
    let base = if std::env::var_os("PROPTEST_CASES").is_some() { Config::default() } else { Config::with_cases(cases) };
    Config { source_file: Some(source_file), ..base }
}
