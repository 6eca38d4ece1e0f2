//! Evaluating a compiled filter against an event document.

use std::cmp::Ordering;

use serde_json::Value;

use crate::{Node, Test};

pub(crate) fn node(node: &Node, event: &Value) -> bool {
    match node {
        Node::All(nodes) => nodes.iter().all(|n| self::node(n, event)),
        Node::Any(nodes) => nodes.iter().any(|n| self::node(n, event)),
        Node::Not(inner) => !self::node(inner, event),
        Node::Field { path, test } => field(resolve(event, path), test),
        Node::Changed(path) => match event.get("previous") {
            None | Some(Value::Null) => true,
            Some(previous) => resolve(event, path) != resolve(previous, &path[1..]),
        },
    }
}

/// The value at a dotted path; a numeric segment indexes a list.
pub(crate) fn resolve<'a>(mut value: &'a Value, path: &[String]) -> Option<&'a Value> {
    for segment in path {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(list) => list.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn field(value: Option<&Value>, test: &Test) -> bool {
    match test {
        Test::Exist(want) => value.is_some() == *want,
        Test::Neq(x) => !value.is_some_and(|v| any(v, |e| equal(e, x))),
        Test::Nin(list) => !value.is_some_and(|v| any(v, |e| list.iter().any(|x| equal(e, x)))),
        _ => {
            let Some(value) = value else {
                return false;
            };
            match test {
                Test::Eq(x) => any(value, |e| equal(e, x)),
                Test::In(list) => any(value, |e| list.iter().any(|x| equal(e, x))),
                Test::Gt(x) => compare(value, x) == Some(Ordering::Greater),
                Test::Gte(x) => {
                    matches!(compare(value, x), Some(Ordering::Greater | Ordering::Equal))
                }
                Test::Lt(x) => compare(value, x) == Some(Ordering::Less),
                Test::Lte(x) => matches!(compare(value, x), Some(Ordering::Less | Ordering::Equal)),
                Test::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
                Test::StartsWith(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
                Test::EndsWith(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
                Test::Exist(_) | Test::Neq(_) | Test::Nin(_) => unreachable!("handled above"),
            }
        }
    }
}

/// `value` itself matches, or — when it is a list and the operand is not — one element does.
fn any(value: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    pred(value) || matches!(value, Value::Array(list) if list.iter().any(&pred))
}

/// JSON equality, with numbers compared by value (1 == 1.0).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}
