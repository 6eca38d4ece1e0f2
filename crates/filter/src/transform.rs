//! Transforms: a per-endpoint rewrite of the payload before filtering and signing.
//!
//! ```json
//! {"map":    {"payload.key": {"repaired": "final", "closed": "final"}},
//!  "set":    {"payload.prevKey": {"from": "payload.previous"}, "payload.source": {"value": "herald"}},
//!  "remove": ["payload.internal"]}
//! ```
//! Applied in that order to the event document. `map` replaces a value found in the table
//! (strings, or other scalars by their JSON text) and leaves others unchanged; `set` writes
//! a constant or copies another path (skipped when the source is missing), creating
//! objects on the way; `remove` deletes. Targets must be inside `payload`.

use serde_json::{Map, Value};

use crate::FilterError;
use crate::eval::resolve;

/// A validated transform.
#[derive(Debug, Clone)]
pub struct Transform {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Map {
        path: Vec<String>,
        table: Map<String, Value>,
    },
    Set {
        path: Vec<String>,
        source: Source,
    },
    Remove {
        path: Vec<String>,
    },
}

#[derive(Debug, Clone)]
enum Source {
    Value(Value),
    From(Vec<String>),
}

fn error(at: &[&str], message: impl Into<String>) -> FilterError {
    FilterError {
        location: at.iter().map(|s| (*s).to_owned()).collect(),
        message: message.into(),
    }
}

fn target(path: &str, at: &[&str]) -> Result<Vec<String>, FilterError> {
    let segments = source(path, at)?;
    if segments.len() < 2 || segments[0] != "payload" {
        return Err(error(
            at,
            format!("`{path}` must be a path inside the payload, such as payload.status"),
        ));
    }
    Ok(segments)
}

fn source(path: &str, at: &[&str]) -> Result<Vec<String>, FilterError> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(error(
            at,
            format!("`{path}` is not a dotted path such as payload.status"),
        ));
    }
    Ok(path.split('.').map(str::to_owned).collect())
}

impl Transform {
    /// Validates a transform, or names the first problem and where it is.
    pub fn compile(spec: &Value) -> Result<Self, FilterError> {
        let Value::Object(spec) = spec else {
            return Err(error(
                &[],
                "a transform must be a JSON object with map, set and/or remove",
            ));
        };
        let mut steps = Vec::new();
        for key in spec.keys() {
            if !matches!(key.as_str(), "map" | "set" | "remove") {
                return Err(error(
                    &[key],
                    format!("unknown transform step `{key}`; use map, set or remove"),
                ));
            }
        }
        if let Some(map) = spec.get("map") {
            let Value::Object(map) = map else {
                return Err(error(
                    &["map"],
                    "`map` takes an object of path → value table",
                ));
            };
            for (path, table) in map {
                let at = ["map", path.as_str()];
                let Value::Object(table) = table else {
                    return Err(error(
                        &at,
                        "a mapping is an object from old values to new ones",
                    ));
                };
                steps.push(Step::Map {
                    path: target(path, &at)?,
                    table: table.clone(),
                });
            }
        }
        if let Some(set) = spec.get("set") {
            let Value::Object(set) = set else {
                return Err(error(
                    &["set"],
                    "`set` takes an object of path → {\"value\": …} or {\"from\": path}",
                ));
            };
            for (path, how) in set {
                let at = ["set", path.as_str()];
                let source = match how {
                    Value::Object(o) if o.len() == 1 && o.contains_key("value") => {
                        Source::Value(o["value"].clone())
                    }
                    Value::Object(o)
                        if o.len() == 1 && o.get("from").is_some_and(Value::is_string) =>
                    {
                        let from = o["from"].as_str().unwrap_or_default();
                        Source::From(source(from, &["set", path.as_str(), "from"])?)
                    }
                    _ => {
                        return Err(error(
                            &at,
                            "use {\"value\": constant} or {\"from\": \"a.path\"}",
                        ));
                    }
                };
                steps.push(Step::Set {
                    path: target(path, &at)?,
                    source,
                });
            }
        }
        if let Some(remove) = spec.get("remove") {
            let Value::Array(paths) = remove else {
                return Err(error(&["remove"], "`remove` takes a list of paths"));
            };
            for (i, path) in paths.iter().enumerate() {
                let index = i.to_string();
                let at = ["remove", index.as_str()];
                let Value::String(path) = path else {
                    return Err(error(&at, "a path is a string"));
                };
                steps.push(Step::Remove {
                    path: target(path, &at)?,
                });
            }
        }
        Ok(Self { steps })
    }

    /// Rewrites the event document in place.
    pub fn apply(&self, event: &mut Value) {
        for step in &self.steps {
            match step {
                Step::Map { path, table } => {
                    if let Some(value) = get_mut(event, path) {
                        let key = match value {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
                            _ => None,
                        };
                        if let Some(new) = key.and_then(|k| table.get(&k)) {
                            *value = new.clone();
                        }
                    }
                }
                Step::Set { path, source } => {
                    let value = match source {
                        Source::Value(v) => Some(v.clone()),
                        Source::From(from) => resolve(event, from).cloned(),
                    };
                    if let Some(value) = value {
                        set(event, path, value);
                    }
                }
                Step::Remove { path } => {
                    let (last, parent) = path.split_last().expect("targets have two segments");
                    if let Some(Value::Object(map)) = get_mut(event, parent) {
                        map.remove(last);
                    }
                }
            }
        }
    }
}

fn get_mut<'a>(mut value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    for segment in path {
        value = match value {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(list) => list.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Writes `new` at `path`, creating objects on the way; a non-object in the way is left
/// alone (the step is skipped).
fn set(event: &mut Value, path: &[String], new: Value) {
    let (last, parents) = path.split_last().expect("targets have two segments");
    let mut value = event;
    for segment in parents {
        let Value::Object(map) = value else {
            return;
        };
        value = map
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = value {
        map.insert(last.clone(), new);
    }
}
