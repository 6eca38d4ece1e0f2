//! Turning a JSON filter into a `Node` tree, with errors that name where they are.

use regex::Regex;
use serde_json::{Map, Value};

use crate::{Node, Test};

/// Why a filter is invalid, and where: `location` is the list of keys leading to the
/// problem, e.g. `["payload.status", "$in"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub location: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.location.join(" > "), self.message)
        }
    }
}

impl std::error::Error for FilterError {}

/// Deepest nesting of `$and`/`$or`/`$not` accepted (bounds evaluation and recursion).
const MAX_DEPTH: usize = 16;
/// Longest regex pattern accepted.
const MAX_REGEX_LEN: usize = 1024;

fn error(at: &[String], message: impl Into<String>) -> FilterError {
    FilterError {
        location: at.to_vec(),
        message: message.into(),
    }
}

pub(crate) fn node(filter: &Value, at: &mut Vec<String>) -> Result<Node, FilterError> {
    if at.len() > MAX_DEPTH * 2 {
        return Err(error(
            at,
            format!("filters nest at most {MAX_DEPTH} levels deep"),
        ));
    }
    let Value::Object(map) = filter else {
        return Err(error(at, "a filter must be a JSON object"));
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        at.push(key.clone());
        let compiled = match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(error(at, format!("`{key}` takes a list of filters")));
                };
                if items.is_empty() {
                    return Err(error(at, format!("`{key}` needs at least one filter")));
                }
                let mut nodes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    at.push(i.to_string());
                    nodes.push(node(item, at)?);
                    at.pop();
                }
                if key == "$and" {
                    Node::All(nodes)
                } else {
                    Node::Any(nodes)
                }
            }
            "$not" => Node::Not(Box::new(node(value, at)?)),
            "$changed" => changed(value, at)?,
            op if op.starts_with('$') => {
                return Err(error(
                    at,
                    format!(
                        "unknown logical operator `{op}`; use $and, $or, $not or $changed, or a path"
                    ),
                ));
            }
            path => field(path, value, at)?,
        };
        at.pop();
        all.push(compiled);
    }
    Ok(if all.len() == 1 {
        all.pop().expect("one")
    } else {
        Node::All(all)
    })
}

/// `$changed` compares a payload value with the same one in `previous`, which holds only the
/// payload; so the path must lead into the payload, and to something inside it.
fn changed(value: &Value, at: &[String]) -> Result<Node, FilterError> {
    let path: Option<Vec<String>> = value
        .as_str()
        .map(|p| p.split('.').map(str::to_owned).collect());
    match path {
        Some(path)
            if path.len() >= 2 && path[0] == "payload" && path.iter().all(|s| !s.is_empty()) =>
        {
            Ok(Node::Changed(path))
        }
        _ => Err(error(
            at,
            "`$changed` takes a dotted path inside the payload, such as \"payload.status\"",
        )),
    }
}

fn field(path: &str, value: &Value, at: &[String]) -> Result<Node, FilterError> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(error(
            at,
            format!("`{path}` is not a dotted path such as payload.status"),
        ));
    }
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    let tests = match value {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => operators(ops, at)?,
        literal => vec![Test::Eq(literal.clone())],
    };
    let mut nodes: Vec<Node> = tests
        .into_iter()
        .map(|test| Node::Field {
            path: path.clone(),
            test,
        })
        .collect();
    Ok(if nodes.len() == 1 {
        nodes.pop().expect("one")
    } else {
        Node::All(nodes)
    })
}

fn operators(ops: &Map<String, Value>, at: &[String]) -> Result<Vec<Test>, FilterError> {
    let mut tests = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        let mut here = at.to_vec();
        here.push(op.clone());
        let test = match op.as_str() {
            "$eq" => Test::Eq(operand.clone()),
            "$neq" | "$ne" => Test::Neq(operand.clone()),
            "$in" | "$nin" => {
                let Value::Array(list) = operand else {
                    return Err(error(&here, format!("`{op}` takes a list of values")));
                };
                if op == "$in" {
                    Test::In(list.clone())
                } else {
                    Test::Nin(list.clone())
                }
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                if !(operand.is_number() || operand.is_string()) {
                    return Err(error(
                        &here,
                        format!("`{op}` compares with a number or a string"),
                    ));
                }
                match op.as_str() {
                    "$gt" => Test::Gt(operand.clone()),
                    "$gte" => Test::Gte(operand.clone()),
                    "$lt" => Test::Lt(operand.clone()),
                    _ => Test::Lte(operand.clone()),
                }
            }
            "$exist" | "$exists" => match operand {
                Value::Bool(b) => Test::Exist(*b),
                _ => return Err(error(&here, format!("`{op}` takes true or false"))),
            },
            "$regex" => {
                let Value::String(pattern) = operand else {
                    return Err(error(&here, "`$regex` takes a pattern string"));
                };
                if pattern.len() > MAX_REGEX_LEN {
                    return Err(error(
                        &here,
                        format!("patterns are at most {MAX_REGEX_LEN} bytes"),
                    ));
                }
                let regex = Regex::new(pattern)
                    .map_err(|e| error(&here, format!("invalid regular expression: {e}")))?;
                Test::Regex(regex)
            }
            "$startsWith" | "$endsWith" => {
                let Value::String(s) = operand else {
                    return Err(error(&here, format!("`{op}` takes a string")));
                };
                if op == "$startsWith" {
                    Test::StartsWith(s.clone())
                } else {
                    Test::EndsWith(s.clone())
                }
            }
            other => {
                return Err(error(
                    &here,
                    format!(
                        "unknown operator `{other}`; use $eq $neq $in $nin $gt $gte $lt $lte $exist $regex $startsWith $endsWith"
                    ),
                ));
            }
        };
        tests.push(test);
    }
    Ok(tests)
}
