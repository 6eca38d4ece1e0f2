//! Running statements, and listing queries built at run time. Every statement is
//! prepared once per connection (the pool's statement cache) and then only bound and
//! executed: one round trip per statement. `Select` builds a listing from conditions with
//! their parameters, then the page's cursor, order and `limit + 1`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use store::{Order, Page};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::rows::{Param, ms};

/// The statement's rows.
pub(crate) async fn rows<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// The statement's row, if it returned one (at most one is expected).
pub(crate) async fn row<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// How many rows the statement changed.
pub(crate) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

pub(crate) struct Select {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Select {
    pub(crate) fn new() -> Self {
        Self {
            conditions: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds `condition`, whose one `?` stands for `value`.
    pub(crate) fn when(
        &mut self,
        condition: &str,
        value: impl ToSql + Sync + Send + 'static,
    ) -> &mut Self {
        self.params.push(Box::new(value));
        self.conditions
            .push(condition.replace('?', &format!("${}", self.params.len())));
        self
    }

    /// `column` strictly between `after` and `before`, where given.
    pub(crate) fn created(
        &mut self,
        column: &str,
        before: Option<DateTime<Utc>>,
        after: Option<DateTime<Utc>>,
    ) -> &mut Self {
        if let Some(before) = before {
            self.when(&format!("{column} < ?"), ms(before));
        }
        if let Some(after) = after {
            self.when(&format!("{column} > ?"), ms(after));
        }
        self
    }

    /// Finishes the query with the page's cursor (on `key`), order and `limit + 1`.
    pub(crate) fn finish(mut self, head: &str, key: &str, page: &Page) -> (String, Vec<Param>) {
        let (cmp, dir) = match page.order {
            Order::Ascending => (">", "ASC"),
            Order::Descending => ("<", "DESC"),
        };
        if let Some(cursor) = &page.cursor {
            self.when(&format!("{key} {cmp} ?"), cursor.clone());
        }
        let mut sql = head.to_owned();
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        let limit = i64::try_from(page.limit.saturating_add(1)).unwrap_or(i64::MAX);
        self.params.push(Box::new(limit));
        sql.push_str(&format!(
            " ORDER BY {key} {dir} LIMIT ${}",
            self.params.len()
        ));
        (sql, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_numbered_in_order() {
        let mut select = Select::new();
        select.when("a = ?", 1_i64).when("b = ?", "x".to_owned());
        let (sql, params) = select.finish(
            "SELECT * FROM t",
            "id",
            &Page {
                limit: 10,
                cursor: Some("c".into()),
                order: Order::Descending,
            },
        );
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE a = $1 AND b = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
        );
        assert_eq!(params.len(), 4);
    }
}
