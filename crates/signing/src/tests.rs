//! Signatures against the Standard Webhooks test vector, rotation, bad secrets.

use super::*;

/// The test vector published with the Standard Webhooks specification.
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1614265330;
const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn signs_the_published_vector() {
    let key = Key::parse(VECTOR_SECRET).unwrap();
    assert_eq!(
        key.sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY.as_bytes()),
        VECTOR_SIG
    );
}

#[test]
fn verifies_any_entry_of_a_multi_signature_header() {
    let key = Key::parse(VECTOR_SECRET).unwrap();
    let header = format!("v1,bm90IGl0 {VECTOR_SIG}");
    assert!(key.verify(VECTOR_ID, VECTOR_TS, VECTOR_BODY.as_bytes(), &header));
    assert!(!key.verify(VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY.as_bytes(), &header));
    assert!(!key.verify(VECTOR_ID, VECTOR_TS, b"{}", &header));
    assert!(!key.verify(VECTOR_ID, VECTOR_TS, VECTOR_BODY.as_bytes(), "v2,abc"));
}

#[test]
fn rotation_header_carries_both_signatures() {
    let old = Key::parse(&generate_secret()).unwrap();
    let new = Key::parse(&generate_secret()).unwrap();
    let header = signature_header([&new, &old], "msg_1", 5, b"{}");
    assert_eq!(header.split(' ').count(), 2);
    assert!(old.verify("msg_1", 5, b"{}", &header));
    assert!(new.verify("msg_1", 5, b"{}", &header));
}

#[test]
fn rejects_bad_secrets() {
    assert_eq!(Key::parse("abc").err(), Some(SecretError::Prefix));
    assert_eq!(Key::parse("whsec_!!!").err(), Some(SecretError::Base64));
    assert_eq!(Key::parse("whsec_AAAA").err(), Some(SecretError::Length(3)));
    assert!(Key::parse(&generate_secret()).is_ok());
}
