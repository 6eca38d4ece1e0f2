//! Sortable, prefixed identifiers in the Svix style (`app_…`, `ep_…`, `msg_…`).
//!
//! An id is the prefix followed by 27 base62 characters encoding 160 bits: 48 bits of
//! Unix milliseconds and 112 bits that are random for the first id of a millisecond
//! and incremented for the following ones. Ids made by one process therefore sort in
//! creation order, which the store relies on for `iterator` pagination.

use std::fmt;
use std::sync::Mutex;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 27;

/// State of the monotonic generator: the last millisecond used and the last 112-bit tail.
/// A `std` mutex is right here: the critical section is a few arithmetic operations and
/// never awaits.
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// Makes a new id with the given prefix (without the underscore), e.g. `new_id("msg")`.
pub fn new_id(prefix: &str) -> String {
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let (ms, tail) = {
        // Poisoning can only follow a panic inside this tiny section, which cannot panic.
        let mut last = LAST.lock().unwrap_or_else(|poison| poison.into_inner());
        let tail_mask = (1u128 << 112) - 1;
        if now_ms <= last.0 {
            last.1 = (last.1 + 1) & tail_mask;
        } else {
            last.0 = now_ms;
            last.1 = rand::random::<u128>() & (tail_mask >> 1);
        }
        (last.0, last.1)
    };
    let mut value: [u8; 20] = [0; 20];
    value[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    value[6..].copy_from_slice(&tail.to_be_bytes()[2..]);
    let mut out = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    out.push_str(prefix);
    out.push('_');
    out.push_str(&base62(value));
    out
}

/// The smallest id with `prefix` made at `ms` (Unix milliseconds) or later sorts at or
/// after this one: a lower bound for a range of ids by creation time.
pub fn floor_id(prefix: &str, ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    let mut value: [u8; 20] = [0; 20];
    value[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    format!("{prefix}_{}", base62(value))
}

/// Fixed-width base62 of a 160-bit big-endian number, by long division on 32-bit limbs.
fn base62(value: [u8; 20]) -> String {
    let mut limbs = [0u32; 5];
    for (limb, chunk) in limbs.iter_mut().zip(value.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let mut digits = [b'0'; BODY_LEN];
    for slot in digits.iter_mut().rev() {
        let mut remainder: u64 = 0;
        for limb in limbs.iter_mut() {
            let acc = (remainder << 32) | u64::from(*limb);
            *limb = (acc / 62) as u32;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    digits.iter().map(|&b| b as char).collect()
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// A lower bound of the ids made at `at` or later (see `floor_id`).
            pub fn floor_at(at: chrono::DateTime<chrono::Utc>) -> Self {
                Self(floor_id($prefix, at.timestamp_millis()))
            }

            /// Wraps a stored or user-supplied id. Whether it exists is the store's business.
            pub fn from_string(id: String) -> Self {
                Self(id)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }

            /// Whether `s` has this id's prefix, i.e. is an id rather than a uid alias.
            pub fn looks_like(s: &str) -> bool {
                s.len() == $prefix.len() + 1 + BODY_LEN
                    && s.starts_with($prefix)
                    && s.as_bytes()[$prefix.len()] == b'_'
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// An application: one tenant of the platform, owning endpoints and messages.
    AppId,
    "app"
);
typed_id!(
    /// An endpoint (subscription) of an application.
    EndpointId,
    "ep"
);
typed_id!(
    /// A published message (event).
    MessageId,
    "msg"
);
typed_id!(
    /// One attempt to deliver a message to an endpoint.
    AttemptId,
    "atmpt"
);
typed_id!(
    /// The delivery of one message to one endpoint, across all its attempts.
    DeliveryId,
    "dlv"
);
typed_id!(
    /// An API token minted by Herald.
    TokenId,
    "tok"
);

#[cfg(test)]
mod tests;
