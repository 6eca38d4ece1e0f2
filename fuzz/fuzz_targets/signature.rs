//! `Key::parse` and `Key::verify` on untrusted text: line 1 is the secret, line 2 the
//! message id, line 3 the timestamp, line 4 a `webhook-signature` header; the rest is the
//! body. Nothing may panic; a signature Herald makes verifies, also among other entries
//! of a header, and stops verifying when the body changes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signing::Key;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let (Some(secret), Some(msg_id), Some(timestamp), Some(header)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let (Ok(secret), Ok(msg_id), Ok(header)) = (
        std::str::from_utf8(secret),
        std::str::from_utf8(msg_id),
        std::str::from_utf8(header),
    ) else {
        return;
    };
    let timestamp = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or_default();
    let _ = Key::parse_any_length(secret);
    let Ok(key) = Key::parse(secret) else {
        return;
    };
    let _ = key.verify(msg_id, timestamp, body, header);
    let signature = key.sign(msg_id, timestamp, body);
    assert!(key.verify(msg_id, timestamp, body, &signature));
    assert!(key.verify(msg_id, timestamp, body, &format!("{header} {signature}")));
    let mut other = body.to_vec();
    other.push(b'!');
    assert!(!key.verify(msg_id, timestamp, &other, &signature));
});
