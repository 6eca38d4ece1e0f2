//! `Diff::compile` then `Diff::apply`: line 1 is the list of keep paths, line 2 the
//! previous snapshot, line 3 the current one. Neither may panic, and a diff reports a
//! change exactly when the snapshots differ (kept keys alone are not a change).

#![no_main]

use filter::Diff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some([keep, previous, current]) = herald_fuzz::documents::<3>(data) else {
        return;
    };
    let Ok(keep) = serde_json::from_value::<Vec<String>>(keep) else {
        return;
    };
    let Ok(diff) = Diff::compile(&keep) else {
        return;
    };
    let changes = diff.apply(&previous, &current);
    assert_eq!(
        changes.is_some(),
        previous != current,
        "change reported wrongly"
    );
    assert!(
        diff.apply(&current, &current).is_none(),
        "a snapshot differs from itself"
    );
});
