//! A fresh PostgreSQL database per test, on the server at 127.0.0.1:5432 (or
//! `BUILDD_TEST_POSTGRES`, a server URL ending in `/`), dropped afterwards.

use std::process::Command;
use std::time::Duration;

/// A database made for one test.
pub struct Postgres {
    /// `postgres://…/buildd_test_…`, for `--database`.
    pub url: String,
    server: String,
    name: String,
}

fn server() -> String {
    std::env::var("BUILDD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/".to_string())
}

fn psql(server: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .arg(format!("{server}postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("running psql: {e}"))
}

impl Postgres {
    /// A new empty database, or `None` (after a loud message) when no server answers; under
    /// CI (`CI` set) a missing server fails the test instead.
    pub fn create() -> Option<Postgres> {
        let server = server();
        let reachable = url_host_port(&server).is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        }) && Command::new("psql").arg("--version").output().is_ok();
        if !reachable {
            return super::unavailable(&format!("PostgreSQL at {server} (with psql)"));
        }
        let name = format!("buildd_test_{}", uuid_like());
        let out = psql(&server, &format!("CREATE DATABASE {name}"));
        assert!(out.status.success(), "creating {name}: {out:?}");
        Some(Postgres {
            url: format!("{server}{name}"),
            server,
            name,
        })
    }

    /// Takes the database away (closes every session and refuses new ones), or gives it back.
    pub fn set_available(&self, available: bool) {
        let out = psql(
            &self.server,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS {available}", self.name),
        );
        assert!(out.status.success(), "{out:?}");
        if !available {
            let out = psql(
                &self.server,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            );
            assert!(out.status.success(), "{out:?}");
        }
    }

    /// Runs SQL in the test's database; returns psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn url_host_port(url: &str) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.split("://").nth(1)?;
    let hostport = rest.split('/').next()?.rsplit('@').next()?;
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    hostport.to_socket_addrs().ok()?.next()
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}
