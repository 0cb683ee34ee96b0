//! The little SQL layer both database engines share: values, rows and a connection that runs
//! SQL written once, with `?N` placeholders, on SQLite or PostgreSQL.
//!
//! The schema and the queries are plain SQL that both engines accept; the few places where they
//! differ ask [`Conn::dialect`]. Typed access stays in `db/mod.rs`, so nothing above this sees
//! which engine is underneath.

use anyhow::{Result, anyhow, bail};

/// One SQL value, in the types the schema uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// INTEGER / BIGINT (and booleans, as 0 or 1).
    Int(i64),
    /// TEXT.
    Text(String),
    /// BLOB / BYTEA.
    Blob(Vec<u8>),
}

/// Turns a Rust value into a [`Value`] without taking it.
pub trait ToValue {
    /// The SQL value.
    fn to_value(&self) -> Value;
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// Query parameters: `params![a, b]` is `&[Value]` (each argument is borrowed, not moved).
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::serve::db::sql::ToValue::to_value(&$v)),*][..]
    };
}
pub(crate) use params;

/// Reads a [`Value`] back into a Rust type.
pub trait FromValue: Sized {
    /// The Rust value, or an error naming the mismatch.
    fn from_value(v: Value) -> Result<Self>;
}

impl FromValue for String {
    fn from_value(v: Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s),
            Value::Blob(b) => Ok(String::from_utf8(b)?),
            other => bail!("expected text, found {other:?}"),
        }
    }
}
impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(i),
            other => bail!("expected an integer, found {other:?}"),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => bail!("expected bytes, found {other:?}"),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as a `T`.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .cloned()
            .ok_or_else(|| anyhow!("no column {i}"))?;
        T::from_value(v).map_err(|e| anyhow!("column {i}: {e}"))
    }
}

/// Which engine a connection talks to, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: one writer at a time, so no row locks are needed.
    Sqlite,
    /// PostgreSQL: many nodes at once; claims lock rows (`FOR UPDATE SKIP LOCKED`).
    Postgres,
}

/// What an engine's connection provides; [`Conn`] builds the conveniences on top.
pub trait RawConn {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs several statements without parameters.
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// The engine.
    fn dialect(&self) -> Dialect;
}

/// A connection, whichever engine it is.
pub struct Conn<'a>(pub &'a mut dyn RawConn);

impl Conn<'_> {
    /// Runs a statement; returns the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.0.execute(sql, params)
    }

    /// Every row of a query, mapped.
    pub fn all<T, C: FromIterator<T>>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<C> {
        self.0.query(sql, params)?.iter().map(f).collect()
    }

    /// The first row of a query, mapped, if there is one.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.0.query(sql, params)?.first().map(f).transpose()
    }

    /// The first row of a query, mapped; an error when there is none.
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| anyhow!("query returned no rows"))
    }

    /// Several statements without parameters.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        self.0.batch(sql)
    }

    /// The engine.
    pub fn dialect(&self) -> Dialect {
        self.0.dialect()
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // The error that made us roll back is the one worth reporting.
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// Whether a statement failed on a UNIQUE constraint (another writer got there first), in either
/// engine's words.
pub fn is_unique_violation(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    text.contains("UNIQUE constraint failed")
        || text.contains("duplicate key value violates unique")
}

/// `?N` placeholders as PostgreSQL writes them (`$N`); text in quotes is left alone.
pub fn to_dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    out.push_str(&next.to_string());
                    next += 1;
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_dollar_placeholders("SELECT a FROM t WHERE x = ?1 AND y = ?12 AND z = '?3'"),
            "SELECT a FROM t WHERE x = $1 AND y = $12 AND z = '?3'"
        );
        assert_eq!(to_dollar_placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn values_round_trip_through_options() {
        let v = params![Some("a"), None::<i64>, 3i64, true];
        assert_eq!(
            v,
            &[
                Value::Text("a".into()),
                Value::Null,
                Value::Int(3),
                Value::Int(1)
            ]
        );
        let row = Row(v.to_vec());
        assert_eq!(row.get::<Option<String>>(0).unwrap().as_deref(), Some("a"));
        assert_eq!(row.get::<Option<i64>>(1).unwrap(), None);
        assert!(row.get::<bool>(3).unwrap());
        assert!(row.get::<i64>(0).is_err());
    }
}
