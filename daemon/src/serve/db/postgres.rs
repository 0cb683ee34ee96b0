//! The shared engine: PostgreSQL, for several `buildd serve` nodes at once. Connections come
//! from a pool (r2d2) and run on tokio's blocking pool, like SQLite's; each keeps its prepared
//! statements, so a query is parsed once per connection.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::BytesMut;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{NoTls, Statement};

use super::pg_tls::Tls;
use super::sql::{Dialect, RawConn, Row, Value, to_dollar_placeholders};

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Values carry their own type; `to_sql` converts or fails per parameter.
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A pooled connection with its prepared statements.
pub struct PgClient {
    /// Always `Some` until dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, Statement>,
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // The sync client closes by blocking on a runtime of its own, which panics on a thread
        // that drives tokio, and the pool may drop a connection anywhere.
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new()
                .name("buildd-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

impl PgClient {
    fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("live until dropped")
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self
            .client()
            .prepare(&to_dollar_placeholders(sql))
            .with_context(|| format!("preparing {sql}"))?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl RawConn for PgClient {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        Ok(self.client().execute(&stmt, &refs(params))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        self.client()
            .query(&stmt, &refs(params))?
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| Ok(r.try_get::<_, Value>(i)?))
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client().batch_execute(sql)?)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

/// What a connection needs: the client's settings and the TLS connector `sslmode` asked for.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    tls: Tls,
}

impl Target {
    fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Tls::Off => self.config.connect(NoTls),
            Tls::On(tls) => self.config.connect(tls.clone()),
        }
    }
}

/// Makes pooled connections.
pub struct Manager(Target);

impl r2d2::ManageConnection for Manager {
    type Connection = PgClient;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgClient, postgres::Error> {
        Ok(PgClient {
            client: Some(self.0.connect()?),
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgClient) -> Result<(), postgres::Error> {
        conn.client().simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgClient) -> bool {
        conn.client.as_ref().is_none_or(|c| c.is_closed())
    }
}

/// Logs why the pool could not connect, cause and all (r2d2's own handler says only "db error").
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!("database connection: {:#}", anyhow::Error::from(error));
    }
}

/// A pool of connections to the database at `url`.
pub fn pool(url: &str, size: u32) -> Result<(r2d2::Pool<Manager>, Target)> {
    let (url, tls) = super::pg_tls::from_url(url)?;
    let config: postgres::Config = url
        .parse()
        .with_context(|| format!("parsing the database URL {}", redact(&url)))?;
    let target = Target { config, tls };
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
        .error_handler(Box::new(LogErrors))
        .build(Manager(target.clone()))
        .with_context(|| format!("connecting to {}", redact(&url)))?;
    Ok((pool, target))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Follows `LISTEN` channels on a connection of its own, on a thread of its own, calling
/// `deliver(channel, payload)` for each notification; reconnects after errors. Notifications
/// sent while it reconnects are lost, which is why every waiter also polls now and then.
pub fn listen(
    target: Target,
    channels: &'static [&'static str],
    deliver: impl Fn(&str, &str) + Send + 'static,
) {
    std::thread::Builder::new()
        .name("buildd-pg-listen".into())
        .spawn(move || {
            loop {
                if let Err(err) = listen_once(&target, channels, &deliver) {
                    tracing::warn!("database notifications: {err:#}; reconnecting");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .expect("spawning the listener thread");
}

fn listen_once(target: &Target, channels: &[&str], deliver: &impl Fn(&str, &str)) -> Result<()> {
    let mut client = target.connect()?;
    for ch in channels {
        client.batch_execute(&format!("LISTEN {ch}"))?;
    }
    loop {
        {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_secs(30));
            while let Some(n) = iter.next()? {
                deliver(n.channel(), n.payload());
            }
        }
        if client.is_closed() {
            anyhow::bail!("connection closed");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The test server (`BUILDD_TEST_POSTGRES`, default 127.0.0.1:5432), or `None` after a
    /// loud message; under CI a missing server is a failure.
    pub(crate) fn server() -> Option<String> {
        let base = std::env::var("BUILDD_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/".into());
        if std::net::TcpStream::connect("127.0.0.1:5432").is_err() && !base.contains("@/") {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required under CI"
            );
            eprintln!("*** SKIPPED: no PostgreSQL on 127.0.0.1:5432 ***");
            return None;
        }
        Some(format!("{base}postgres"))
    }

    fn query_one(pool: &r2d2::Pool<Manager>, sql: &str) -> Value {
        let mut conn = pool.get().unwrap();
        conn.query(sql, &[]).unwrap()[0].0[0].clone()
    }

    #[test]
    fn sslmode_require_encrypts_and_verify_full_checks_the_certificate() {
        let Some(url) = server() else { return };
        let (plain, _) = pool(&format!("{url}?sslmode=disable"), 1).unwrap();
        if query_one(&plain, "SHOW ssl") != Value::Text("on".into()) {
            eprintln!("*** SKIPPED: this PostgreSQL has ssl = off ***");
            return;
        }
        let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        assert_eq!(query_one(&plain, encrypted), Value::Int(0));
        let (tls, _) = pool(&format!("{url}?sslmode=require"), 1).unwrap();
        assert_eq!(query_one(&tls, encrypted), Value::Int(1));
        // A server whose certificate the machine does not trust (Debian's self-signed
        // snakeoil, here) is refused when verification is asked for.
        let err = pool(&format!("{url}?sslmode=verify-full"), 1)
            .err()
            .expect("an untrusted certificate is refused");
        assert!(format!("{err:#}").contains("connecting"), "{err:#}");
    }
}
