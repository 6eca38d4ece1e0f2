//! What the fuzz targets share: cutting one fuzzer input into the documents a target
//! needs. Inputs are text, one JSON document per line, so that the seeds in `seeds/` and
//! any crash the fuzzer saves in `artifacts/` can be read and turned into a unit test.

use serde_json::Value;

/// The first `N` lines of `data` parsed as JSON, or `None` when the input is not UTF-8, has
/// fewer lines, or a line is not JSON (the fuzzer then moves on: the parsers under test
/// take values that serde_json already parsed).
pub fn documents<const N: usize>(data: &[u8]) -> Option<[Value; N]> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split('\n');
    let mut out: [Value; N] = std::array::from_fn(|_| Value::Null);
    for slot in &mut out {
        *slot = serde_json::from_str(lines.next()?).ok()?;
    }
    Some(out)
}
