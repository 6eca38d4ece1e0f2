//! Subscription filters and transforms (`transform.rs`). Filters: a condition on an event, in the operator style platforms already
//! use (Outpost, Convoy). Pure functions of data: `Filter::compile` validates a JSON filter
//! once (naming the path of any problem), `Filter::matches` evaluates it against an event
//! document such as `{"eventType": …, "channels": […], "payload": {…}}`.
//!
//! Grammar: a filter is a JSON object whose keys are all ANDed. A key is either a logical
//! operator — `$and` / `$or` (a list of filters), `$not` (a filter) — or a dotted path into
//! the event (`payload.data.status`; a numeric segment indexes a list). A path's value is a
//! literal (equality) or an object of operators, all of which must hold:
//! `$eq $neq $in $nin $gt $gte $lt $lte $exist $regex $startsWith $endsWith`.
//! When the value at a path is a list, `$eq`/`$in` hold if any element matches and
//! `$neq`/`$nin` hold if no element does (so `{"channels": "eu"}` means "in channel eu").
//!
//! `{"$changed": "payload.status"}` is a condition on the entity's earlier snapshot, which
//! the event document carries as `previous` (the previous payload): it holds when the value
//! at `payload.status` differs (`==` on JSON values, so `1` and `1.0` differ) from the one
//! at `previous.status`, or when there is no `previous` (absent or null: a first snapshot
//! is all change). Missing on one side only is a change; missing on both is not.
//!
//! `Diff` (`diff.rs`) computes what changed between two payload snapshots.

mod compile;
mod diff;
mod eval;
mod transform;

use regex::Regex;
use serde_json::Value;

pub use compile::FilterError;
pub use diff::Diff;
pub use transform::Transform;

/// A validated filter, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Filter(Node);

#[derive(Debug, Clone)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field {
        path: Vec<String>,
        test: Test,
    },
    /// `$changed`: the full path (`payload` first); its counterpart under `previous` is the
    /// same path without that first segment.
    Changed(Vec<String>),
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    Exist(bool),
    Regex(Regex),
    StartsWith(String),
    EndsWith(String),
}

impl Filter {
    /// Validates `filter`, or names the first problem and where it is.
    pub fn compile(filter: &Value) -> Result<Self, FilterError> {
        compile::node(filter, &mut Vec::new()).map(Self)
    }

    /// Whether `event` satisfies the filter.
    pub fn matches(&self, event: &Value) -> bool {
        eval::node(&self.0, event)
    }
}

#[cfg(test)]
mod tests;
