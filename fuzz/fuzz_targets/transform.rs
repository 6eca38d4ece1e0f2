//! `Transform::compile` then `Transform::apply`: line 1 is the transform, line 2 the event
//! document. Neither may panic, and a transform only ever changes `payload`: every other
//! key of the event is left as it was.

#![no_main]

use filter::Transform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some([spec, event]) = herald_fuzz::documents::<2>(data) else {
        return;
    };
    let Ok(transform) = Transform::compile(&spec) else {
        return;
    };
    let mut out = event.clone();
    transform.apply(&mut out);
    match (event.as_object(), out.as_object()) {
        (Some(before), Some(after)) => {
            let outside = |map: &serde_json::Map<String, serde_json::Value>| {
                map.iter()
                    .filter(|(key, _)| key.as_str() != "payload")
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                outside(before),
                outside(after),
                "a key outside payload changed"
            );
        }
        _ => assert_eq!(event, out, "a document that is not an object changed"),
    }
});
