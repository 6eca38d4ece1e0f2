//! `Filter::compile` then `Filter::matches`: line 1 is the filter, line 2 the event
//! document. Neither may panic, and `{"$not": filter}` must match exactly the events the
//! filter does not (when it is still within the nesting limit).

#![no_main]

use filter::Filter;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some([spec, event]) = herald_fuzz::documents::<2>(data) else {
        return;
    };
    let Ok(filter) = Filter::compile(&spec) else {
        return;
    };
    let matched = filter.matches(&event);
    if let Ok(negated) = Filter::compile(&json!({ "$not": spec })) {
        assert_eq!(negated.matches(&event), !matched, "$not disagrees");
    }
});
