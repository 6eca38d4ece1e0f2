//! Payload diffs: what changed in an entity between its previous snapshot and the current
//! one, in the shape of a platform's documented "case updated" webhook, which sends only
//! the changes plus the keys that identify the case.
//!
//! `Diff::apply(previous, current)` returns, when both are objects:
//!
//! - a key whose value is unchanged is left out; a key with a new value, or a new key, is
//!   sent with its current value; a key that is in `previous` but not in `current` is sent
//!   as `null` — also when its previous value was `null` (a removal is a change, and `null`
//!   is how removals are sent; likewise a new key whose value is `null` is sent);
//! - objects on both sides are compared key by key, recursively: a nested object appears
//!   with only its changed keys, and not at all when nothing in it changed;
//! - anything else is one value, compared with `==` on JSON values: an array is sent whole
//!   on any change (reordering included), a value that changes type (object ↔ scalar or
//!   array) is sent whole, and `1` → `1.0` is a change (the JSON differs);
//! - the `keep` paths (identity keys such as `guid` or `orderData.id`, relative to the
//!   payload) are always included with their current value, creating the enclosing objects
//!   as needed; a keep path missing from `current`, or passing through a non-object there,
//!   is skipped. Kept keys alone are not a change;
//! - `None` when nothing changed.
//!
//! When `previous` or `current` is not an object, the result is `None` if they are equal,
//! else the whole current value.
//!
//! Key order: each object lists the current payload's keys in its order, then removed
//! keys. That order shows only if serde_json's `preserve_order` feature is on; it is off in
//! this workspace, so objects (and the JSON sent) are sorted by key.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::FilterError;

/// Most keep paths a diff accepts.
const MAX_KEEP: usize = 32;

/// A validated diff: its keep paths.
#[derive(Debug, Clone)]
pub struct Diff {
    keep: Keep,
}

/// Keep paths as a tree of segments: `whole` keeps the value at this point (and wins over
/// longer paths through it); `children` keep parts of it.
#[derive(Debug, Clone, Default)]
struct Keep {
    whole: bool,
    children: BTreeMap<String, Keep>,
}

impl Diff {
    /// Validates the keep paths (dotted, relative to the payload, at most 32), or names the
    /// first bad one by its index.
    pub fn compile(keep: &[String]) -> Result<Self, FilterError> {
        if keep.len() > MAX_KEEP {
            return Err(FilterError {
                location: vec![MAX_KEEP.to_string()],
                message: format!("at most {MAX_KEEP} keep paths are allowed"),
            });
        }
        let mut root = Keep::default();
        for (i, path) in keep.iter().enumerate() {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(FilterError {
                    location: vec![i.to_string()],
                    message: format!(
                        "`{path}` is not a dotted path relative to the payload, such as guid or orderData.id"
                    ),
                });
            }
            let mut node = &mut root;
            for segment in path.split('.') {
                node = node.children.entry(segment.to_owned()).or_default();
            }
            node.whole = true;
        }
        Ok(Self { keep: root })
    }

    /// The changes from `previous` to `current` plus the kept keys, or `None` when nothing
    /// changed (see the module documentation for the rules).
    pub fn apply(&self, previous: &Value, current: &Value) -> Option<Value> {
        let (Value::Object(previous), Value::Object(current)) = (previous, current) else {
            return (previous != current).then(|| current.clone());
        };
        let (changes, changed) = objects(previous, current, Some(&self.keep));
        changed.then_some(Value::Object(changes))
    }
}

/// The changes between two objects with the kept keys added, and whether there was any
/// change (the kept keys are in the map either way). One pass, so that the output follows
/// the current key order.
fn objects(
    previous: &Map<String, Value>,
    current: &Map<String, Value>,
    keep: Option<&Keep>,
) -> (Map<String, Value>, bool) {
    let mut out = Map::new();
    let mut changed = false;
    for (key, new) in current {
        let keep = keep.and_then(|k| k.children.get(key));
        let whole = keep.is_some_and(|k| k.whole);
        match (previous.get(key), new) {
            (Some(Value::Object(old)), Value::Object(new)) if !whole => {
                let (inner, inner_changed) = objects(old, new, keep);
                changed |= inner_changed;
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            (Some(old), _) if old == new => {
                if whole {
                    out.insert(key.clone(), new.clone());
                }
            }
            _ => {
                changed = true;
                out.insert(key.clone(), new.clone());
            }
        }
    }
    for key in previous.keys() {
        if !current.contains_key(key) {
            changed = true;
            out.insert(key.clone(), Value::Null);
        }
    }
    (out, changed)
}

#[cfg(test)]
mod tests;
