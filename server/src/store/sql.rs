//! A small executor both backends implement, so that a statement reading the same in both
//! dialects, and the logic around it, is written once (`enrollment.rs`, `auth.rs`, …).
//!
//! Statements are written with PostgreSQL's `$n` placeholders; SQLite reads them as `?n`.
//! Where the dialects differ, the shared code asks [`Sql::dialect`].

use std::borrow::Cow;

use super::Result;
use super::rows::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(Option<&'a [u8]>),
    Flag(Option<bool>),
    /// A list, for [`in_list`].
    Texts(&'a [String]),
}

impl<'a> From<&'a [String]> for Param<'a> {
    fn from(v: &'a [String]) -> Self {
        Param::Texts(v)
    }
}
impl<'a> From<&'a Vec<String>> for Param<'a> {
    fn from(v: &'a Vec<String>) -> Self {
        Param::Texts(v)
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<Option<&'a String>> for Param<'a> {
    fn from(v: Option<&'a String>) -> Self {
        Param::Text(v.map(String::as_str))
    }
}
impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::Text(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(Some(v))
    }
}
impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Bytes(Some(v))
    }
}
impl<'a> From<Option<&'a Vec<u8>>> for Param<'a> {
    fn from(v: Option<&'a Vec<u8>>) -> Self {
        Param::Bytes(v.map(Vec::as_slice))
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Flag(Some(v))
    }
}
impl From<Option<bool>> for Param<'_> {
    fn from(v: Option<bool>) -> Self {
        Param::Flag(v)
    }
}

/// `args![a, b]`: the values as [`Param`]s.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::sql::Param::from($v)),*]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => v.to_sql(),
            Param::Text(v) => v.to_sql(),
            Param::Bytes(v) => v.to_sql(),
            Param::Flag(v) => v.to_sql(),
            Param::Texts(v) => Ok(rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(
                serde_json::to_string(v).unwrap_or_else(|_| "[]".into()),
            ))),
        }
    }
}

// `BytesMut` by the path the postgres crate's own `to_sql_checked!` uses: the one type it
// writes into, re-exported nowhere else, which spares a direct dependency on `bytes`.
impl postgres::types::ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // The inner value's own check: a value of the wrong type for the column is an error,
        // never bytes of the wrong width.
        match *self {
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::Bytes(v) => v.to_sql_checked(ty, out),
            Param::Flag(v) => v.to_sql_checked(ty, out),
            Param::Texts(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A connection or open transaction of either backend.
pub(crate) trait Sql {
    fn dialect(&self) -> Dialect;
    /// Rows changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64>;
    /// Calls `f` with each row.
    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()>;
}

impl dyn Sql + '_ {
    /// Every row, mapped.
    pub(crate) fn all<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, params, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped.
    pub(crate) fn one<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut out = None;
        self.each(sql, params, &mut |r| {
            if out.is_none() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// `$n` placeholders as SQLite's `?n`.
pub(crate) fn sqlite_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A SQLite connection (or a transaction, through `Deref`).
pub(crate) struct Lite<'c>(pub &'c rusqlite::Connection);

impl Sql for Lite<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            f(r)?;
        }
        Ok(())
    }
}

/// The parameters as the postgres crate takes them.
pub(crate) fn pg_params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)).collect()
}

/// A backend as the shared role implementations see it.
pub(crate) trait Database: Send + Sync {
    /// `f` on a connection, each statement committing on its own.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T>;
    /// `f` in one transaction, committed when it returns `Ok` (a write transaction from
    /// the start in SQLite, so two writers never deadlock upgrading).
    fn write<T>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<T>) -> Result<T>;
    /// Makes what this process wrote but holds back visible to reads of the connector
    /// summaries (PostgreSQL folds them in memory for a second).
    fn settle(&self) -> Result<()> {
        Ok(())
    }
}

/// `cond` when the value bound at `$n` is given; else a condition only true for NULL.
/// Spelled out rather than `$n IS NULL OR cond`, which keeps SQLite off the indexes.
pub(crate) fn when_given(d: Dialect, given: bool, cond: &str, n: usize) -> String {
    match (given, d) {
        (true, _) => cond.to_owned(),
        (false, Dialect::Sqlite) => format!("${n} IS NULL"),
        (false, Dialect::Postgres) => format!("${n}::text IS NULL"),
    }
}

/// `col` is one of the strings bound at `$n` (a JSON array in SQLite, an array in PostgreSQL).
pub(crate) fn in_list(d: Dialect, col: &str, n: usize) -> String {
    match d {
        Dialect::Sqlite => format!("{col} IN (SELECT value FROM json_each(${n}))"),
        Dialect::Postgres => format!("{col} = ANY(${n})"),
    }
}

/// Text compared case-insensitively as each backend always has (SQLite's NOCASE folds
/// ASCII only; PostgreSQL's `lower` folds more).
pub(crate) fn nocase_eq(d: Dialect, col: &str, n: usize) -> String {
    match d {
        Dialect::Sqlite => format!("{col} = ${n} COLLATE NOCASE"),
        Dialect::Postgres => format!("lower({col}) = lower(${n})"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_spelled_for_sqlite() {
        assert_eq!(
            super::sqlite_placeholders("a = $1 AND b = $12 AND c = '$x'"),
            "a = ?1 AND b = ?12 AND c = '$x'"
        );
    }
}
