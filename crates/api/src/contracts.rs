//! Event types as contracts (Herald extension): an event type with `enforceSchema` refuses
//! a publish whose payload does not satisfy its latest schema version.
//!
//! Schemas are compiled with the `jsonschema` crate (draft 2020-12 unless the schema names
//! another with `$schema`: 2019-09, 7, 6 or 4), built without its HTTP and file resolvers,
//! so a `$ref` or `$schema` never makes Herald fetch anything. Each node keeps the compiled
//! schema of an event type and reads the event type again once it is older than `FRESH`,
//! compiling only when the event type changed: a change made through another node is
//! enforced here within a second, one made through this node at once (`forget`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use model::EventType;
use serde_json::Value;
use store::Store;

use crate::error::{ApiError, ApiResult, ValidationErrorItem};

/// How long a node trusts what it read of an event type.
const FRESH: Duration = Duration::from_secs(1);
/// At most this many violations are reported for one payload.
const MOST: usize = 10;
/// At most this many event types are remembered; past it the memory starts again (a
/// publisher inventing event-type names must not grow it without end).
const REMEMBERED: usize = 10_000;

/// The compiled contracts of the event types this node has seen published.
#[derive(Default)]
pub(crate) struct Contracts {
    known: Mutex<HashMap<String, Known>>,
}

struct Known {
    read_at: Instant,
    /// The event type's `updated_at` when read; `None` when it does not exist.
    version: Option<DateTime<Utc>>,
    /// The schema to enforce, if the event type enforces one.
    validator: Option<Arc<Validator>>,
}

impl Contracts {
    /// Drops what this node knows of `name`, after it changed here.
    pub(crate) fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Checks `payload` (JSON text) against the contract of `event_type`, if it has one:
    /// `422` with each violation located in the payload.
    pub(crate) async fn check(
        &self,
        store: &dyn Store,
        event_type: &str,
        payload: &str,
    ) -> ApiResult<()> {
        let Some(validator) = self.validator(store, event_type).await? else {
            return Ok(());
        };
        let document: Value = serde_json::from_str(payload)
            .map_err(|e| ApiError::invalid(&["body", "payload"], format!("is not JSON: {e}")))?;
        let problems = violations(&validator, &document);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(problems))
        }
    }

    async fn validator(
        &self,
        store: &dyn Store,
        event_type: &str,
    ) -> ApiResult<Option<Arc<Validator>>> {
        if let Some(known) = self.lock().get(event_type)
            && known.read_at.elapsed() < FRESH
        {
            return Ok(known.validator.clone());
        }
        let read_at = Instant::now();
        let et = store.get_event_type(event_type).await?;
        let version = et.as_ref().map(|e| e.updated_at);
        let same = self
            .lock()
            .get(event_type)
            .filter(|k| k.version == version)
            .map(|k| k.validator.clone());
        let validator = match (same, et) {
            (Some(validator), _) => validator,
            (None, Some(et)) => enforced(&et),
            (None, None) => None,
        };
        let mut known = self.lock();
        if known.len() >= REMEMBERED && !known.contains_key(event_type) {
            known.clear();
        }
        known.insert(
            event_type.to_owned(),
            Known {
                read_at,
                version,
                validator: validator.clone(),
            },
        );
        Ok(validator)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The compiled latest schema of an event type that enforces it. A stored schema that no
/// longer compiles (it was checked when written) enforces nothing rather than refusing
/// every publish; it is logged.
fn enforced(et: &EventType) -> Option<Arc<Validator>> {
    if !et.enforce_schema {
        return None;
    }
    let (version, schema) = latest(et.schemas.as_ref()?)?;
    match jsonschema::validator_for(schema) {
        Ok(validator) => Some(Arc::new(validator)),
        Err(err) => {
            tracing::warn!(event_type = %et.name, version, error = %err, "an enforced schema does not compile; not enforced");
            None
        }
    }
}

/// The latest version of a `schemas` object (Svix keeps schemas by version: `{"1": {…}}`):
/// the highest numeric key, else the last one.
pub(crate) fn latest(schemas: &Value) -> Option<(&str, &Value)> {
    let schemas = schemas.as_object()?;
    schemas
        .iter()
        .max_by_key(|(k, _)| k.parse::<u64>().ok())
        .map(|(k, v)| (k.as_str(), v))
}

/// Checks every schema of a `schemas` object: each must compile, and one that is enforced
/// needs a latest version. Problems are located under `["body", "schemas", version, …]`.
pub(crate) fn check_schemas(schemas: Option<&Value>, enforce: bool) -> Vec<ValidationErrorItem> {
    let mut problems = Vec::new();
    match schemas {
        None | Some(Value::Null) => {}
        Some(Value::Object(versions)) => {
            for (version, schema) in versions {
                if let Err(err) = jsonschema::validator_for(schema) {
                    let mut loc = vec!["body".to_owned(), "schemas".to_owned(), version.clone()];
                    loc.extend(err.instance_path().iter().map(|s| s.to_string()));
                    problems.push(item(&loc, format!("is not a valid JSON Schema: {err}")));
                }
            }
        }
        Some(_) => problems.push(ValidationErrorItem::new(
            &["body", "schemas"],
            "must be an object of JSON schemas by version",
        )),
    }
    if enforce && schemas.and_then(latest).is_none() {
        problems.push(ValidationErrorItem::new(
            &["body", "enforceSchema"],
            "needs a schema to enforce: give `schemas`, e.g. {\"1\": {…}}",
        ));
    }
    problems
}

/// What in `document` breaks the schema, each located under `["body", "payload", …]`.
fn violations(validator: &Validator, document: &Value) -> Vec<ValidationErrorItem> {
    validator
        .iter_errors(document)
        .take(MOST)
        .map(|err| {
            let mut loc = vec!["body".to_owned(), "payload".to_owned()];
            loc.extend(located(&err));
            item(&loc, err.to_string())
        })
        .collect()
}

/// Where an error is in the payload; for a missing required field, the field itself.
fn located(err: &ValidationError<'_>) -> Vec<String> {
    let mut at: Vec<String> = err.instance_path().iter().map(|s| s.to_string()).collect();
    if let ValidationErrorKind::Required { property } = err.kind() {
        at.push(
            property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned),
        );
    }
    at
}

fn item(loc: &[String], msg: String) -> ValidationErrorItem {
    let loc: Vec<&str> = loc.iter().map(String::as_str).collect();
    ValidationErrorItem::new(&loc, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_latest_version_is_the_highest_number() {
        let table = [
            (json!({"1": {"a": 1}}), Some("1")),
            (json!({"1": {}, "2": {}, "10": {}}), Some("10")),
            (json!({}), None),
            (json!([]), None),
        ];
        for (schemas, want) in table {
            assert_eq!(latest(&schemas).map(|(v, _)| v), want, "{schemas}");
        }
    }

    #[test]
    fn violations_are_located_in_the_payload() {
        let schema = json!({
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string"},
                "status": {"enum": ["open", "closed"]},
                "lines": {"type": "array", "items": {"type": "integer"}}
            }
        });
        let validator = jsonschema::validator_for(&schema).unwrap();
        let table = [
            (json!({"id": "a", "status": "open"}), vec![]),
            (
                json!({"status": "open"}),
                vec![vec!["body", "payload", "id"]],
            ),
            (
                json!({"id": "a", "status": "lost"}),
                vec![vec!["body", "payload", "status"]],
            ),
            (
                json!({"id": 7, "status": "open"}),
                vec![vec!["body", "payload", "id"]],
            ),
            (
                json!({"id": "a", "status": "open", "lines": [1, "x"]}),
                vec![vec!["body", "payload", "lines", "1"]],
            ),
        ];
        for (document, want) in table {
            let got: Vec<Vec<String>> = violations(&validator, &document)
                .into_iter()
                .map(|i| i.loc)
                .collect();
            assert_eq!(got, want, "{document}");
        }
    }

    #[test]
    fn each_draft_is_honoured() {
        let at = json!({"expiresAt": "next tuesday"});
        let property = json!({"expiresAt": {"type": "string", "format": "date-time"}});
        // Draft 7 asserts `format`; 2020-12 (the default) only annotates it.
        let draft7 =
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "properties": property});
        let draft2020 = json!({"properties": property});
        let v7 = jsonschema::validator_for(&draft7).unwrap();
        let v2020 = jsonschema::validator_for(&draft2020).unwrap();
        assert_eq!(violations(&v7, &at).len(), 1);
        assert!(violations(&v2020, &at).is_empty());
        // A `$schema` Herald does not know is refused, never fetched.
        let unknown = json!({"1": {"$schema": "https://schemas.example.com/custom"}});
        assert_eq!(check_schemas(Some(&unknown), false).len(), 1);
    }

    #[test]
    fn schemas_are_checked_where_they_are_wrong() {
        let locs = |schemas: Value, enforce| -> Vec<Vec<String>> {
            check_schemas(Some(&schemas), enforce)
                .into_iter()
                .map(|i| i.loc)
                .collect()
        };
        assert!(locs(json!({"1": {"type": "object"}}), true).is_empty());
        assert_eq!(
            locs(json!({"1": {"type": "objekt"}}), false),
            vec![vec!["body", "schemas", "1", "type"]]
        );
        assert_eq!(
            locs(
                json!({"1": {"properties": {"a": {"minLength": "x"}}}}),
                false
            ),
            vec![vec!["body", "schemas", "1", "properties", "a", "minLength"]]
        );
        assert_eq!(locs(json!("x"), false), vec![vec!["body", "schemas"]]);
        assert_eq!(locs(json!({}), true), vec![vec!["body", "enforceSchema"]]);
        assert!(check_schemas(None, false).is_empty());
        assert_eq!(check_schemas(None, true).len(), 1);
    }
}
