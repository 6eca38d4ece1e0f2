//! Ids: prefix, length, order, base62.

use super::*;

#[test]
fn ids_have_prefix_and_fixed_length() {
    let id = MessageId::generate();
    assert!(id.as_str().starts_with("msg_"));
    assert_eq!(id.as_str().len(), 4 + 27);
    assert!(MessageId::looks_like(id.as_str()));
    assert!(!MessageId::looks_like("msg_short"));
    assert!(!AppId::looks_like(id.as_str()));
}

#[test]
fn ids_sort_in_creation_order() {
    let ids: Vec<String> = (0..10_000).map(|_| new_id("msg")).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn base62_matches_a_reference_conversion() {
    // 61 = "z", 62 = "10", 256 = 4 * 62 + 8 = "48".
    assert_eq!(
        base62([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 61]),
        format!("{}z", "0".repeat(26))
    );
    assert_eq!(
        base62([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 62]),
        format!("{}10", "0".repeat(25))
    );
    assert_eq!(
        base62([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        format!("{}48", "0".repeat(25))
    );
}

#[test]
fn base62_of_zero_and_max() {
    assert_eq!(base62([0; 20]), "0".repeat(27));
    // 2^160 - 1 fits in 27 base62 digits.
    assert!(
        base62([0xff; 20])
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );
}

#[test]
fn a_floor_sorts_before_every_id_made_from_its_time_on() {
    let now = chrono::Utc::now();
    let id = AttemptId::generate();
    let floor = AttemptId::floor_at(now - chrono::Duration::milliseconds(1));
    assert!(AttemptId::looks_like(floor.as_str()));
    assert!(floor <= id, "{floor} <= {id}");
    let later = AttemptId::floor_at(now + chrono::Duration::seconds(1));
    assert!(id < later, "{id} < {later}");
}
