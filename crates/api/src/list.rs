//! Svix pagination: `limit` (default 50, at most 250), `iterator` (the last item's id;
//! a leading `-` pages backwards), `order`, and `ListResponse{data, iterator,
//! prevIterator, done}`.

use serde::{Deserialize, Serialize};
use store::{Order, Page};
use utoipa::ToSchema;

use crate::error::ValidationErrorItem;

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 250;

/// `ascending` or `descending`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Ordering {
    Ascending,
    Descending,
}

/// The paging part of a list query (`limit`, `iterator`). Query structs carry the two
/// fields themselves, since flattening breaks numbers in query strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Paging {
    pub(crate) limit: Option<usize>,
    pub(crate) iterator: Option<String>,
}

/// The paging of a query's `limit` and `iterator`.
pub(crate) fn paging(limit: Option<usize>, iterator: &Option<String>) -> Paging {
    Paging {
        limit,
        iterator: iterator.clone(),
    }
}

impl Paging {
    pub(crate) fn problems(&self) -> Vec<ValidationErrorItem> {
        match self.limit {
            Some(0) => vec![ValidationErrorItem::new(
                &["query", "limit"],
                "limit must be at least 1",
            )],
            Some(n) if n > MAX_LIMIT => vec![ValidationErrorItem::new(
                &["query", "limit"],
                format!("limit must be at most {MAX_LIMIT}"),
            )],
            _ => Vec::new(),
        }
    }

    /// The store page for this query in `order`, and whether it goes backwards.
    pub(crate) fn page(&self, order: Order) -> (Page, bool) {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        match self.iterator.as_deref() {
            Some(back) if back.starts_with('-') => (
                Page {
                    limit,
                    cursor: Some(back[1..].to_owned()),
                    order: match order {
                        Order::Ascending => Order::Descending,
                        Order::Descending => Order::Ascending,
                    },
                },
                true,
            ),
            cursor => (
                Page {
                    limit,
                    cursor: cursor.filter(|c| !c.is_empty()).map(str::to_owned),
                    order,
                },
                false,
            ),
        }
    }
}

pub(crate) fn order_of(ordering: Option<Ordering>, default: Order) -> Order {
    match ordering {
        Some(Ordering::Ascending) => Order::Ascending,
        Some(Ordering::Descending) => Order::Descending,
        None => default,
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse<T> {
    pub(crate) data: Vec<T>,
    pub(crate) iterator: Option<String>,
    pub(crate) prev_iterator: Option<String>,
    pub(crate) done: bool,
}

impl<T> ListResponse<T> {
    /// Builds a page from the store's `limit + 1` rows, each keyed for the iterator.
    pub(crate) fn from_rows<R>(
        mut rows: Vec<R>,
        page: &Page,
        backwards: bool,
        key: impl Fn(&R) -> String,
        out: impl FnMut(R) -> T,
    ) -> Self {
        let done = rows.len() <= page.limit;
        rows.truncate(page.limit);
        if backwards {
            rows.reverse();
        }
        let iterator = rows.last().map(&key);
        let prev_iterator = rows.first().map(|r| format!("-{}", key(r)));
        Self {
            data: rows.into_iter().map(out).collect(),
            iterator,
            prev_iterator,
            done,
        }
    }
}
