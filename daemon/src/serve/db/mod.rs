//! Persistence: apps, builds, slugs, releases, config vars, buildpack installations, sources,
//! tokens and build output, in SQLite (WAL, versioned migrations).
//!
//! Handlers call the methods of [`Db`] and never see SQL: this is the seam where PostgreSQL will
//! plug in for the scale-out work. rusqlite is synchronous, so every call runs on the blocking
//! pool behind one connection (SQLite has one writer anyway).

pub mod claims;
mod pg_tls;
mod postgres;
pub mod sql;
mod sqlite;

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sql::{Conn, Dialect, Row, params};

/// Schema versions, applied in order; never edit one that has shipped, add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    stack TEXT NOT NULL,
    maintenance INTEGER NOT NULL DEFAULT 0,
    buildpack_description TEXT,
    slug_size INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    released_at TEXT
);
CREATE TABLE config_vars (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE TABLE buildpack_installations (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    buildpack TEXT NOT NULL,
    PRIMARY KEY (app_id, ordinal)
);
CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    source_url TEXT NOT NULL,
    source_checksum TEXT,
    source_version TEXT,
    source_version_description TEXT,
    buildpacks TEXT,
    do_release INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    output_secret TEXT NOT NULL UNIQUE,
    slug_id TEXT,
    release_id TEXT,
    failure TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX builds_app ON builds(app_id, seq);
CREATE TABLE build_logs (
    build_id TEXT PRIMARY KEY REFERENCES builds(id) ON DELETE CASCADE,
    text BLOB NOT NULL,
    lines TEXT NOT NULL
);
CREATE TABLE slugs (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    blob_secret TEXT NOT NULL UNIQUE,
    blob_sha TEXT,
    checksum TEXT,
    size INTEGER,
    process_types TEXT NOT NULL,
    buildpack_description TEXT,
    commit_sha TEXT,
    commit_description TEXT,
    stack TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    slug_id TEXT,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_id, version)
);
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    put_secret TEXT NOT NULL UNIQUE,
    get_secret TEXT NOT NULL UNIQUE,
    blob_sha TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE buildpacks (
    name TEXT PRIMARY KEY,
    blob_sha TEXT NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE builds ADD COLUMN used_buildpacks TEXT;
"#,
    // Scale-out: which node holds a build and until when, how often it was tried, and its
    // output in chunks that any node can follow while it runs.
    r#"
ALTER TABLE builds ADD COLUMN node TEXT;
ALTER TABLE builds ADD COLUMN lease_until INTEGER;
ALTER TABLE builds ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX builds_status ON builds(status, seq);
CREATE TABLE build_log_chunks (
    build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    text BLOB NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);
"#,
];

/// The current time as Heroku writes it: `2026-01-02T03:04:05Z`.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh lowercase UUID.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An unguessable URL path segment (244 random bits).
pub fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A user, as tokens identify them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
}

/// A token as `buildd tokens list` shows it (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Id.
    pub id: String,
    /// Owner's email.
    pub email: String,
    /// Free text.
    pub description: String,
    /// When it was made.
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
}

/// An app.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub name: String,
    pub owner: User,
    pub stack: String,
    pub maintenance: bool,
    pub buildpack_description: Option<String>,
    pub slug_size: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub released_at: Option<String>,
}

/// Build status, as Heroku names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Succeeded,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// A build.
#[derive(Debug, Clone)]
pub struct Build {
    pub id: String,
    pub app_id: String,
    pub status: Status,
    pub source_url: String,
    pub source_checksum: Option<String>,
    pub source_version: Option<String>,
    pub source_version_description: Option<String>,
    /// Requested buildpacks (names or URLs), `None` when the app's list or detection decides.
    pub buildpacks: Option<Vec<String>>,
    pub release: bool,
    pub user: User,
    pub output_secret: String,
    pub slug_id: Option<String>,
    pub release_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// What ran, with digests; set when the build succeeded.
    pub used_buildpacks: Option<Vec<UsedBuildpack>>,
    /// The node running it, while one does.
    pub node: Option<String>,
    /// How many times it was started.
    pub attempts: i64,
}

/// What a new build needs.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub app_id: String,
    pub source_url: String,
    pub source_checksum: Option<String>,
    pub source_version: Option<String>,
    pub source_version_description: Option<String>,
    pub buildpacks: Option<Vec<String>>,
    pub release: bool,
    pub user_id: String,
}

/// A slug.
#[derive(Debug, Clone)]
pub struct Slug {
    pub id: String,
    pub app_id: String,
    pub blob_secret: String,
    pub blob_sha: Option<String>,
    pub checksum: Option<String>,
    pub size: Option<i64>,
    pub process_types: std::collections::BTreeMap<String, String>,
    pub buildpack_description: Option<String>,
    pub commit: Option<String>,
    pub commit_description: Option<String>,
    pub stack: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A release.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: String,
    pub version: i64,
    pub slug_id: Option<String>,
    pub description: String,
    pub status: String,
    pub user: User,
    pub config: std::collections::BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An upload slot from `POST /sources`.
#[derive(Debug, Clone)]
pub struct SourceSlot {
    pub id: String,
    pub put_secret: String,
    pub get_secret: String,
    pub blob_sha: Option<String>,
    pub expires_at: String,
}

/// One stored line of build output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// `STDOUT` or `STDERR`.
    pub stream: String,
    /// The line, without its newline.
    pub line: String,
}

/// A buildpack uploaded through the API.
#[derive(Debug, Clone)]
pub struct BuildpackRow {
    pub name: String,
    pub blob_sha: String,
    pub created_at: String,
}

/// A buildpack a build ran: its id and the digest of its component.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsedBuildpack {
    pub id: String,
    pub digest: String,
}

/// The database: SQLite in the data dir, or a PostgreSQL shared by several nodes.
#[derive(Clone)]
pub struct Db {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    /// One connection: SQLite has one writer anyway.
    Sqlite(Arc<Mutex<Connection>>),
    /// A pool, and the settings the notification listener connects with.
    Postgres(r2d2::Pool<postgres::Manager>, Box<postgres::Target>),
}

/// Which apps column to look an app up by.
fn app_key(key: &str) -> &'static str {
    if uuid::Uuid::parse_str(key).is_ok() {
        "a.id"
    } else {
        "a.name"
    }
}

const APP_COLUMNS: &str = "a.id, a.name, u.id, u.email, a.stack, a.maintenance, a.buildpack_description, \
     a.slug_size, a.created_at, a.updated_at, a.released_at";

fn app_row(r: &Row) -> Result<App> {
    Ok(App {
        id: r.get(0)?,
        name: r.get(1)?,
        owner: User {
            id: r.get(2)?,
            email: r.get(3)?,
        },
        stack: r.get(4)?,
        maintenance: r.get::<i64>(5)? != 0,
        buildpack_description: r.get(6)?,
        slug_size: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        released_at: r.get(10)?,
    })
}

const BUILD_COLUMNS: &str = "b.id, b.seq, b.app_id, b.status, b.source_url, b.source_checksum, \
     b.source_version, b.source_version_description, b.buildpacks, b.do_release, u.id, u.email, \
     b.output_secret, b.slug_id, b.release_id, b.failure, b.created_at, b.updated_at, b.started_at, \
     b.used_buildpacks, b.node, b.attempts";

fn build_row(r: &Row) -> Result<Build> {
    let buildpacks: Option<String> = r.get(8)?;
    Ok(Build {
        id: r.get(0)?,
        app_id: r.get(2)?,
        status: Status::parse(&r.get::<String>(3)?),
        source_url: r.get(4)?,
        source_checksum: r.get(5)?,
        source_version: r.get(6)?,
        source_version_description: r.get(7)?,
        buildpacks: buildpacks.and_then(|j| serde_json::from_str(&j).ok()),
        release: r.get::<i64>(9)? != 0,
        user: User {
            id: r.get(10)?,
            email: r.get(11)?,
        },
        output_secret: r.get(12)?,
        slug_id: r.get(13)?,
        release_id: r.get(14)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
        used_buildpacks: r
            .get::<Option<String>>(19)?
            .and_then(|j| serde_json::from_str(&j).ok()),
        node: r.get(20)?,
        attempts: r.get(21)?,
    })
}

const SLUG_COLUMNS: &str = "id, app_id, blob_secret, blob_sha, checksum, size, process_types, \
     buildpack_description, commit_sha, commit_description, stack, created_at, updated_at";

fn slug_row(r: &Row) -> Result<Slug> {
    Ok(Slug {
        id: r.get(0)?,
        app_id: r.get(1)?,
        blob_secret: r.get(2)?,
        blob_sha: r.get(3)?,
        checksum: r.get(4)?,
        size: r.get(5)?,
        process_types: serde_json::from_str(&r.get::<String>(6)?).unwrap_or_default(),
        buildpack_description: r.get(7)?,
        commit: r.get(8)?,
        commit_description: r.get(9)?,
        stack: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

const RELEASE_COLUMNS: &str = "r.id, r.app_id, r.version, r.slug_id, r.description, r.status, \
     u.id, u.email, r.config, r.created_at, r.updated_at";

fn release_row(r: &Row) -> Result<Release> {
    Ok(Release {
        id: r.get(0)?,
        version: r.get(2)?,
        slug_id: r.get(3)?,
        description: r.get(4)?,
        status: r.get(5)?,
        user: User {
            id: r.get(6)?,
            email: r.get(7)?,
        },
        config: serde_json::from_str(&r.get::<String>(8)?).unwrap_or_default(),
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    /// A unique name is taken.
    #[error("{0}")]
    Taken(String),
}

impl Db {
    /// Opens the database a `--database` value names: `sqlite:///path/file`, a bare path, or
    /// `postgres://user@host:port/db`; brings its schema up to date.
    pub fn open(url: &str) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (pool, target) = postgres::pool(url, 16)?;
            let db = Db {
                engine: Engine::Postgres(pool, Box::new(target)),
            };
            db.call_sync(migrate)
                .with_context(|| format!("migrating {}", postgres::redact(url)))?;
            return Ok(db);
        }
        let path = match url.strip_prefix("sqlite://") {
            Some(path) => path,
            None if url.contains("://") => anyhow::bail!(
                "unsupported database URL {}: use sqlite:///path/to/file or postgres://user@host/db",
                postgres::redact(url)
            ),
            None => url,
        };
        let path = Path::new(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut conn = sqlite::open(path)?;
        migrate(&mut Conn(&mut conn))?;
        Ok(Db {
            engine: Engine::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    /// The engine, for the few callers that behave differently on a shared database.
    pub fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Calls `deliver(channel, payload)` for every notification on `channels` (PostgreSQL
    /// only; with SQLite every writer is in this process, so there is nothing to hear).
    pub fn listen(
        &self,
        channels: &'static [&'static str],
        deliver: impl Fn(&str, &str) + Send + 'static,
    ) {
        if let Engine::Postgres(_, target) = &self.engine {
            postgres::listen((**target).clone(), channels, deliver);
        }
    }

    /// Runs `f` with a connection on the blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.call_sync(f)).await?
    }

    /// Runs `f` with a connection on this thread (CLI commands, and inside [`Db::call`]).
    pub fn call_sync<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        match &self.engine {
            Engine::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut Conn(&mut *conn))
            }
            // The sync client blocks on a runtime of its own, which tokio allows only outside
            // its worker threads: this hands the worker's other tasks to another thread first
            // (and is a no-op on the blocking pool, where `call` runs).
            Engine::Postgres(pool, _) => tokio::task::block_in_place(|| {
                let mut conn = pool.get().context("no database connection")?;
                f(&mut Conn(&mut *conn))
            }),
        }
    }

    // ---- tokens -------------------------------------------------------------------------

    /// Stores a token's hash for the user with `email` (created if new). Returns the token id.
    pub fn create_token(&self, email: &str, hash: &str, description: &str) -> Result<String> {
        self.call_sync(|c| {
            c.transaction(|tx| {
            let user_id: String = match tx
                .query_opt("SELECT id FROM users WHERE email = ?1", params![email], |r| r.get(0))?
            {
                Some(id) => id,
                None => {
                    let id = new_id();
                    tx.execute("INSERT INTO users (id, email) VALUES (?1, ?2)", params![id, email])?;
                    id
                }
            };
            let id = new_id();
            tx.execute(
                "INSERT INTO tokens (id, user_id, hash, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, user_id, hash, description, now()],
            )?;
            Ok(id)
            })
        })
    }

    /// Every token, newest last.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.call_sync(|c| {
            c.all(
                "SELECT t.id, u.email, t.description, t.created_at, t.revoked_at FROM tokens t \
                 JOIN users u ON u.id = t.user_id ORDER BY t.created_at, t.id",
                params![],
                |r| {
                    Ok(TokenInfo {
                        id: r.get(0)?,
                        email: r.get(1)?,
                        description: r.get(2)?,
                        created_at: r.get(3)?,
                        revoked_at: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Revokes a token by id; false when there is no such live token.
    pub fn revoke_token(&self, id: &str) -> Result<bool> {
        self.call_sync(|c| {
            Ok(c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now()],
            )? == 1)
        })
    }

    /// The user a live token hash belongs to.
    pub async fn user_for_token(&self, hash: String) -> Result<Option<User>> {
        self.call(move |c| {
            c.query_opt(
                "SELECT u.id, u.email FROM tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.hash = ?1 AND t.revoked_at IS NULL",
                params![hash],
                |r| {
                    Ok(User {
                        id: r.get(0)?,
                        email: r.get(1)?,
                    })
                },
            )
        })
        .await
    }

    // ---- apps ---------------------------------------------------------------------------

    /// Creates an app; `Err(Conflict)` inside when the name is taken.
    pub async fn create_app(
        &self,
        name: String,
        stack: String,
        owner: User,
    ) -> Result<Result<App, Conflict>> {
        self.call(move |c| {
            let taken: bool = c.query_row("SELECT EXISTS(SELECT 1 FROM apps WHERE name = ?1)", params![&name], |r| r.get(0))?;
            if taken {
                return Ok(Err(Conflict::Taken(format!("Name {name} is already taken"))));
            }
            let (id, ts) = (new_id(), now());
            let inserted = c.execute(
                "INSERT INTO apps (id, name, owner_id, stack, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, name, owner.id, stack, ts],
            );
            match inserted {
                Ok(_) => Ok(Ok(find_app(c, &id)?.expect("just inserted"))),
                // Another node created the name between the check and the insert.
                Err(err) if sql::is_unique_violation(&err) => {
                    Ok(Err(Conflict::Taken(format!("Name {name} is already taken"))))
                }
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// An app by id or name.
    pub async fn app(&self, key: String) -> Result<Option<App>> {
        self.call(move |c| find_app(c, &key)).await
    }

    /// Every app.
    pub async fn apps(&self) -> Result<Vec<App>> {
        self.call(|c| {
            c.all(&format!(
                "SELECT {APP_COLUMNS} FROM apps a JOIN users u ON u.id = a.owner_id ORDER BY a.created_at, a.id"
            ), params![], app_row)
        })
        .await
    }

    /// Renames an app and/or sets maintenance.
    pub async fn update_app(
        &self,
        id: String,
        name: Option<String>,
        maintenance: Option<bool>,
    ) -> Result<Result<App, Conflict>> {
        self.call(move |c| {
            if let Some(name) = &name {
                let taken: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM apps WHERE name = ?1 AND id != ?2)",
                    params![name, id],
                    |r| r.get(0),
                )?;
                if taken {
                    return Ok(Err(Conflict::Taken(format!(
                        "Name {name} is already taken"
                    ))));
                }
                c.execute(
                    "UPDATE apps SET name = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, name, now()],
                )?;
            }
            if let Some(m) = maintenance {
                c.execute(
                    "UPDATE apps SET maintenance = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, m as i64, now()],
                )?;
            }
            Ok(Ok(find_app(c, &id)?.expect("exists")))
        })
        .await
    }

    /// Deletes an app with its builds, releases, config and installations.
    pub async fn delete_app(&self, id: String) -> Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM apps WHERE id = ?1", params![id])?;
            Ok(())
        })
        .await
    }

    // ---- config vars ----------------------------------------------------------------------

    /// An app's config vars.
    pub async fn config_vars(
        &self,
        app_id: String,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        self.call(move |c| config_of(c, &app_id)).await
    }

    /// Applies a patch (`None` deletes) and records a release with the new config on the current
    /// slug. Returns the new config.
    pub async fn patch_config_vars(
        &self,
        app_id: String,
        patch: std::collections::BTreeMap<String, Option<String>>,
        user_id: String,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        self.call(move |c| {
            c.transaction(|tx| {
                for (key, value) in &patch {
                    match value {
                        Some(v) => tx.execute(
                            "INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                            params![app_id, key, v],
                        )?,
                        None => tx.execute(
                            "DELETE FROM config_vars WHERE app_id = ?1 AND key = ?2",
                            params![app_id, key],
                        )?,
                    };
                }
                let config = config_of(tx, &app_id)?;
                let set: Vec<&str> = patch
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, _)| k.as_str())
                    .collect();
                let unset: Vec<&str> = patch
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| k.as_str())
                    .collect();
                let mut parts = Vec::new();
                if !set.is_empty() {
                    parts.push(format!("Set {} config vars", set.join(", ")));
                }
                if !unset.is_empty() {
                    parts.push(format!("Remove {} config vars", unset.join(", ")));
                }
                if !parts.is_empty() {
                    let slug = current_release(tx, &app_id)?.and_then(|r| r.slug_id);
                    insert_release(
                        tx,
                        &app_id,
                        slug.as_deref(),
                        &parts.join("; "),
                        &user_id,
                        &config,
                    )?;
                }
                Ok(config)
            })
        })
        .await
    }

    // ---- buildpack installations ----------------------------------------------------------

    /// The app's buildpack list, in order.
    pub async fn installations(&self, app_id: String) -> Result<Vec<String>> {
        self.call(move |c| installations_of(c, &app_id)).await
    }

    /// Replaces the app's buildpack list.
    pub async fn set_installations(
        &self,
        app_id: String,
        buildpacks: Vec<String>,
    ) -> Result<Vec<String>> {
        self.call(move |c| {
            c.transaction(|tx| {
            tx.execute("DELETE FROM buildpack_installations WHERE app_id = ?1", params![&app_id])?;
            for (i, bp) in buildpacks.iter().enumerate() {
                tx.execute(
                    "INSERT INTO buildpack_installations (app_id, ordinal, buildpack) VALUES (?1, ?2, ?3)",
                    params![app_id, i as i64 + 1, bp],
                )?;
            }
            let list = installations_of(tx, &app_id)?;
            Ok(list)
            })
        })
        .await
    }

    // ---- builds -----------------------------------------------------------------------------

    /// Records a new pending build.
    pub async fn create_build(&self, new: NewBuild) -> Result<Build> {
        self.call(move |c| {
            let (id, ts) = (new_id(), now());
            let next_seq = match c.dialect() {
                Dialect::Sqlite => "SELECT COALESCE(MAX(seq), 0) + 1 FROM builds",
                Dialect::Postgres => "SELECT nextval('builds_seq')",
            };
            let seq: i64 = c.query_row(next_seq, params![], |r| r.get(0))?;
            c.execute(
                "INSERT INTO builds (id, seq, app_id, status, source_url, source_checksum, source_version, \
                 source_version_description, buildpacks, do_release, user_id, output_secret, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
                params![
                    id,
                    seq,
                    new.app_id,
                    new.source_url,
                    new.source_checksum,
                    new.source_version,
                    new.source_version_description,
                    new.buildpacks.as_ref().map(|b| serde_json::to_string(b).unwrap()),
                    new.release as i64,
                    new.user_id,
                    new_secret(),
                    ts
                ],
            )?;
            claims::notify_queue(c)?;
            Ok(find_build(c, "b.id = ?1", &id)?.expect("just inserted"))
        })
        .await
    }

    /// A build of an app, by id (or the app's latest for `current`).
    pub async fn build(&self, app_id: String, id: String) -> Result<Option<Build>> {
        self.call(move |c| {
            if id == "current" {
                let latest: Option<String> = c.query_opt(
                    "SELECT id FROM builds WHERE app_id = ?1 ORDER BY seq DESC LIMIT 1",
                    params![&app_id],
                    |r| r.get(0),
                )?;
                return match latest {
                    Some(id) => find_build(c, "b.id = ?1", &id),
                    None => Ok(None),
                };
            }
            Ok(find_build(c, "b.id = ?1", &id)?.filter(|b| b.app_id == app_id))
        })
        .await
    }

    /// A build by its output stream secret.
    pub async fn build_by_output_secret(&self, secret: String) -> Result<Option<Build>> {
        self.call(move |c| find_build(c, "b.output_secret = ?1", &secret))
            .await
    }

    /// An app's builds, oldest first.
    pub async fn builds(&self, app_id: String) -> Result<Vec<Build>> {
        self.call(move |c| {
            c.all(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds b JOIN users u ON u.id = b.user_id WHERE b.app_id = ?1 ORDER BY b.seq"
            ), params![app_id], build_row)
        })
        .await
    }

    /// Fails a pending build with a reason (no-op if it already finished). True if it changed.
    pub async fn fail_build(
        &self,
        id: String,
        failure: String,
        node: Option<String>,
    ) -> Result<bool> {
        self.call(move |c| {
            // With `node`, only while that node holds it: a node that lost its claim (it was
            // thought dead and the build runs elsewhere) must not fail the other attempt.
            let changed = c.execute(
                "UPDATE builds SET status = 'failed', failure = ?2, finished_at = ?3, updated_at = ?3 \
                 WHERE id = ?1 AND status = 'pending' AND (CAST(?4 AS TEXT) IS NULL OR node = ?4)",
                params![id, failure, now(), node],
            )? == 1;
            if changed {
                claims::notify_queue(c)?;
            }
            Ok(changed)
        })
        .await
    }

    /// Records a successful build: its slug and, when asked, a release that becomes current.
    /// All in one transaction, so a crash leaves neither half.
    pub async fn succeed_build(
        &self,
        build: Build,
        slug: Slug,
        release_description: String,
        used: Vec<UsedBuildpack>,
    ) -> Result<Build> {
        self.call(move |c| {
            c.transaction(|tx| {
            // Only the node holding the build may finish it (see `fail_build`).
            let held = tx.execute(
                "UPDATE builds SET status = 'succeeded', finished_at = ?3, updated_at = ?3 \
                 WHERE id = ?1 AND status = 'pending' AND (CAST(?2 AS TEXT) IS NULL OR node = ?2)",
                params![build.id, build.node, now()],
            )?;
            if held != 1 {
                anyhow::bail!("build {} is no longer held by this node", build.id);
            }
            insert_slug(tx, &slug)?;
            let mut release_id = None;
            if build.release {
                let config = config_of(tx, &build.app_id)?;
                let release = insert_release(tx, &build.app_id, Some(&slug.id), &release_description, &build.user.id, &config)?;
                tx.execute(
                    "UPDATE apps SET released_at = ?2, updated_at = ?2, slug_size = ?3, buildpack_description = ?4 WHERE id = ?1",
                    params![build.app_id, now(), slug.size, slug.buildpack_description],
                )?;
                release_id = Some(release.id);
            }
            tx.execute(
                "UPDATE builds SET slug_id = ?2, release_id = ?3, used_buildpacks = ?4 WHERE id = ?1",
                params![build.id, slug.id, release_id, serde_json::to_string(&used)?],
            )?;
            claims::notify_queue(tx)?;
            let done = find_build(tx, "b.id = ?1", &build.id)?.expect("exists");
            Ok(done)
            })
        })
        .await
    }

    /// Builds per status, for metrics.
    pub async fn build_counts(&self) -> Result<Vec<(String, i64)>> {
        self.call(|c| {
            c.all(
                "SELECT status, COUNT(*) FROM builds GROUP BY status ORDER BY status",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    // ---- slugs ------------------------------------------------------------------------------

    /// Records a slug created through the API (its blob is uploaded later).
    pub async fn create_slug(&self, slug: Slug) -> Result<Slug> {
        self.call(move |c| {
            insert_slug(c, &slug)?;
            Ok(find_slug(c, "id", &slug.id)?.expect("just inserted"))
        })
        .await
    }

    /// A slug by id.
    pub async fn slug(&self, id: String) -> Result<Option<Slug>> {
        self.call(move |c| find_slug(c, "id", &id)).await
    }

    /// A slug by its blob secret.
    pub async fn slug_by_secret(&self, secret: String) -> Result<Option<Slug>> {
        self.call(move |c| find_slug(c, "blob_secret", &secret))
            .await
    }

    /// Attaches an uploaded blob to a slug.
    pub async fn set_slug_blob(&self, id: String, sha: String, size: i64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "UPDATE slugs SET blob_sha = ?2, size = ?3, checksum = COALESCE(checksum, ?4), updated_at = ?5 WHERE id = ?1",
                params![id, sha, size, format!("SHA256:{sha}"), now()],
            )?;
            Ok(())
        })
        .await
    }

    // ---- releases ---------------------------------------------------------------------------

    /// An app's releases, oldest first.
    pub async fn releases(&self, app_id: String) -> Result<Vec<Release>> {
        self.call(move |c| {
            c.all(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases r JOIN users u ON u.id = r.user_id WHERE r.app_id = ?1 ORDER BY r.version"
            ), params![app_id], release_row)
        })
        .await
    }

    /// A release by id or version.
    pub async fn release(&self, app_id: String, key: String) -> Result<Option<Release>> {
        self.call(move |c| {
            let version = key.strip_prefix('v').unwrap_or(&key).parse::<i64>().ok();
            let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases r JOIN users u ON u.id = r.user_id WHERE r.app_id = ?1 AND ");
            Ok(match version {
                Some(v) => c.query_opt(&(sql + "r.version = ?2"), params![app_id, v], release_row)?,
                None => c.query_opt(&(sql + "r.id = ?2"), params![app_id, key], release_row)?,
            })
        })
        .await
    }

    /// The app's current release.
    pub async fn current_release(&self, app_id: String) -> Result<Option<Release>> {
        self.call(move |c| current_release(c, &app_id)).await
    }

    /// Releases `slug_id` to the app with the given config (the app's current one when `None`).
    pub async fn create_release(
        &self,
        app_id: String,
        slug_id: Option<String>,
        description: String,
        user_id: String,
        config: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<Release> {
        self.call(move |c| {
            c.transaction(|tx| {
            let config = match config {
                Some(config) => {
                    tx.execute("DELETE FROM config_vars WHERE app_id = ?1", params![&app_id])?;
                    for (k, v) in &config {
                        tx.execute("INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3)", params![app_id, k, v])?;
                    }
                    config
                }
                None => config_of(tx, &app_id)?,
            };
            let release = insert_release(tx, &app_id, slug_id.as_deref(), &description, &user_id, &config)?;
            if let Some(slug_id) = &slug_id {
                let (size, desc): (Option<i64>, Option<String>) = tx.query_row(
                    "SELECT size, buildpack_description FROM slugs WHERE id = ?1", params![slug_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                tx.execute(
                    "UPDATE apps SET released_at = ?2, updated_at = ?2, slug_size = ?3, buildpack_description = ?4 WHERE id = ?1",
                    params![app_id, now(), size, desc],
                )?;
            }
            Ok(release)
            })
        })
        .await
    }

    // ---- uploaded buildpacks ----------------------------------------------------------------

    /// Buildpacks uploaded through the API, oldest first.
    pub async fn buildpacks(&self) -> Result<Vec<BuildpackRow>> {
        self.call(|c| {
            c.all(
                "SELECT name, blob_sha, created_at FROM buildpacks ORDER BY created_at, name",
                params![],
                |r| {
                    Ok(BuildpackRow {
                        name: r.get(0)?,
                        blob_sha: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    /// Records an uploaded buildpack; `false` when the name is taken.
    pub async fn add_buildpack(&self, row: BuildpackRow) -> Result<bool> {
        self.call(move |c| {
            Ok(c.execute(
                "INSERT INTO buildpacks (name, blob_sha, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![row.name, row.blob_sha, row.created_at],
            )? == 1)
        })
        .await
    }

    /// Forgets an uploaded buildpack.
    pub async fn remove_buildpack(&self, name: String) -> Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM buildpacks WHERE name = ?1", params![name])?;
            Ok(())
        })
        .await
    }

    // ---- sources ----------------------------------------------------------------------------

    /// Makes an upload slot that expires at `expires_at`.
    pub async fn create_source(&self, expires_at: String) -> Result<SourceSlot> {
        self.call(move |c| {
            let slot = SourceSlot {
                id: new_id(),
                put_secret: new_secret(),
                get_secret: new_secret(),
                blob_sha: None,
                expires_at,
            };
            c.execute(
                "INSERT INTO sources (id, put_secret, get_secret, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![slot.id, slot.put_secret, slot.get_secret, now(), slot.expires_at],
            )?;
            Ok(slot)
        })
        .await
    }

    /// An upload slot by its put or get secret.
    pub async fn source_by_secret(&self, secret: String) -> Result<Option<SourceSlot>> {
        self.call(move |c| {
            c.query_opt(
                "SELECT id, put_secret, get_secret, blob_sha, expires_at FROM sources WHERE put_secret = ?1 OR get_secret = ?1", params![secret],
                |r| {
                    Ok(SourceSlot {
                        id: r.get(0)?,
                        put_secret: r.get(1)?,
                        get_secret: r.get(2)?,
                        blob_sha: r.get(3)?,
                        expires_at: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    /// Deletes slots that expired before `now`; returns the blobs no slot or slug uses any more.
    pub async fn expire_sources(&self, now: String) -> Result<Vec<String>> {
        self.call(move |c| {
            c.transaction(|tx| {
            let shas: Vec<String> = tx.all(
                "SELECT DISTINCT blob_sha FROM sources WHERE expires_at < ?1 AND blob_sha IS NOT NULL",
                params![now],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM sources WHERE expires_at < ?1", params![&now])?;
            let mut orphans = Vec::new();
            for sha in shas {
                let used: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM sources WHERE blob_sha = ?1) OR EXISTS(SELECT 1 FROM slugs WHERE blob_sha = ?1)", params![&sha],
                    |r| r.get(0),
                )?;
                if !used {
                    orphans.push(sha);
                }
            }
            Ok(orphans)
            })
        })
        .await
    }

    /// Attaches an uploaded blob to a slot.
    pub async fn set_source_blob(&self, id: String, sha: String) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "UPDATE sources SET blob_sha = ?2 WHERE id = ?1",
                params![id, sha],
            )?;
            Ok(())
        })
        .await
    }
}

/// Statements only PostgreSQL runs, after the migration of the same version.
const POSTGRES_ONLY: &[(i64, &str)] = &[(
    3,
    // Several nodes create builds at once; MAX(seq) + 1 would hand two of them the same number.
    "CREATE SEQUENCE builds_seq; SELECT setval('builds_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM builds), false);",
)];

/// A migration's DDL as the engine spells it: the schema is written once, in SQLite's words.
fn ddl(sql: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => sql.to_string(),
        Dialect::Postgres => sql
            .replace(" INTEGER", " BIGINT")
            .replace(" BLOB", " BYTEA"),
    }
}

fn migrate(c: &mut Conn) -> Result<()> {
    // Nodes that start together must not apply the same migration twice.
    const LOCK: &str = "SELECT pg_advisory_lock(7402251)";
    let postgres = c.dialect() == Dialect::Postgres;
    if postgres {
        c.batch(LOCK)?;
    }
    let result = apply_migrations(c);
    if postgres {
        let _ = c.batch("SELECT pg_advisory_unlock(7402251)");
    }
    result
}

fn apply_migrations(c: &mut Conn) -> Result<()> {
    let dialect = c.dialect();
    c.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")?;
    let applied: i64 = c.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        params![],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= applied {
            continue;
        }
        let mut sql = ddl(sql, dialect);
        if dialect == Dialect::Postgres {
            for (_, extra) in POSTGRES_ONLY.iter().filter(|(v, _)| *v == version) {
                sql.push_str(extra);
            }
        }
        c.batch(&format!(
            "BEGIN; {sql}; INSERT INTO schema_migrations VALUES ({version}, '{}'); COMMIT;",
            now()
        ))
        .with_context(|| format!("applying migration {version}"))?;
    }
    Ok(())
}

fn find_app(c: &mut Conn, key: &str) -> Result<Option<App>> {
    c.query_opt(
        &format!(
            "SELECT {APP_COLUMNS} FROM apps a JOIN users u ON u.id = a.owner_id WHERE {} = ?1",
            app_key(key)
        ),
        params![key],
        app_row,
    )
}

fn find_build(c: &mut Conn, filter: &str, value: &str) -> Result<Option<Build>> {
    c.query_opt(
        &format!(
            "SELECT {BUILD_COLUMNS} FROM builds b JOIN users u ON u.id = b.user_id WHERE {filter}"
        ),
        params![value],
        build_row,
    )
}

fn config_of(c: &mut Conn, app_id: &str) -> Result<std::collections::BTreeMap<String, String>> {
    c.all(
        "SELECT key, value FROM config_vars WHERE app_id = ?1",
        params![app_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn installations_of(c: &mut Conn, app_id: &str) -> Result<Vec<String>> {
    c.all(
        "SELECT buildpack FROM buildpack_installations WHERE app_id = ?1 ORDER BY ordinal",
        params![app_id],
        |r| r.get(0),
    )
}

fn current_release(c: &mut Conn, app_id: &str) -> Result<Option<Release>> {
    c.query_opt(
        &format!(
            "SELECT {RELEASE_COLUMNS} FROM releases r JOIN users u ON u.id = r.user_id \
             WHERE r.app_id = ?1 AND r.status = 'succeeded' ORDER BY r.version DESC LIMIT 1"
        ),
        params![app_id],
        release_row,
    )
}

fn insert_release(
    c: &mut Conn,
    app_id: &str,
    slug_id: Option<&str>,
    description: &str,
    user_id: &str,
    config: &std::collections::BTreeMap<String, String>,
) -> Result<Release> {
    if c.dialect() == Dialect::Postgres {
        // Two nodes releasing the same app at once would both pick the same next version:
        // the app's row lock makes the second wait for the first (callers are in a transaction).
        c.execute(
            "SELECT id FROM apps WHERE id = ?1 FOR UPDATE",
            params![app_id],
        )?;
    }
    let version: i64 = c.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app_id = ?1",
        params![app_id],
        |r| r.get(0),
    )?;
    let (id, ts) = (new_id(), now());
    c.execute(
        "INSERT INTO releases (id, app_id, version, slug_id, description, status, user_id, config, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'succeeded', ?6, ?7, ?8, ?8)",
        params![id, app_id, version, slug_id, description, user_id, serde_json::to_string(config)?, ts],
    )?;
    c.query_row(
        &format!("SELECT {RELEASE_COLUMNS} FROM releases r JOIN users u ON u.id = r.user_id WHERE r.id = ?1"), params![id],
        release_row,
    )
}

/// A slug by a unique column (`id` or `blob_secret`).
fn find_slug(c: &mut Conn, column: &str, value: &str) -> Result<Option<Slug>> {
    c.query_opt(
        &format!("SELECT {SLUG_COLUMNS} FROM slugs WHERE {column} = ?1"),
        params![value],
        slug_row,
    )
}

fn insert_slug(c: &mut Conn, slug: &Slug) -> Result<()> {
    c.execute(
        &format!("INSERT INTO slugs ({SLUG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            slug.id,
            slug.app_id,
            slug.blob_secret,
            slug.blob_sha,
            slug.checksum,
            slug.size,
            serde_json::to_string(&slug.process_types)?,
            slug.buildpack_description,
            slug.commit,
            slug.commit_description,
            slug.stack,
            slug.created_at,
            slug.updated_at
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::claims::now_ms;
    use super::*;

    #[test]
    fn database_urls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b.sqlite3");
        Db::open(&format!("sqlite://{}", file.display())).unwrap();
        assert!(file.exists());
        Db::open(&dir.path().join("plain.sqlite3").to_string_lossy()).unwrap();
        let err = Db::open("mysql://root:hunter2@localhost/db").err().unwrap();
        let err = format!("{err:#}");
        assert!(err.contains("unsupported database URL"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "passwords stay out of messages: {err}"
        );
    }

    fn new_build(app: &App, user: &User) -> NewBuild {
        NewBuild {
            app_id: app.id.clone(),
            source_url: "https://example.com/app.tgz".into(),
            source_checksum: None,
            source_version: None,
            source_version_description: None,
            buildpacks: None,
            release: true,
            user_id: user.id.clone(),
        }
    }

    /// The queue's rules, as SQL on whichever engine: oldest first, one build of an app at a
    /// time across nodes, a claim only once, results only from the holder, expired leases taken
    /// back then failed after the last attempt.
    async fn queue_rules(db: Db) {
        db.create_token("q@example.com", "hash", "").unwrap();
        let user = db.user_for_token("hash".into()).await.unwrap().unwrap();
        let a = db
            .create_app("qa".into(), "buildd-1".into(), user.clone())
            .await
            .unwrap()
            .unwrap();
        let b = db
            .create_app("qb".into(), "buildd-1".into(), user.clone())
            .await
            .unwrap()
            .unwrap();
        let a1 = db.create_build(new_build(&a, &user)).await.unwrap();
        let a2 = db.create_build(new_build(&a, &user)).await.unwrap();
        let b1 = db.create_build(new_build(&b, &user)).await.unwrap();
        let claim = |node: &str| db.claim_build(node.to_string(), 60_000);

        let first = claim("n1").await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.attempts), (a1.id.as_str(), 1));
        assert_eq!(first.node.as_deref(), Some("n1"));
        // a2 waits behind a1 (same app) whichever node asks; b1 is free.
        assert_eq!(claim("n2").await.unwrap().unwrap().id, b1.id);
        assert!(claim("n3").await.unwrap().is_none());
        assert_eq!(db.queue_depth().await.unwrap(), 1);

        // Only the holder records the result.
        assert!(
            !db.fail_build(a1.id.clone(), "x".into(), Some("n2".into()))
                .await
                .unwrap()
        );
        assert!(
            db.fail_build(a1.id.clone(), "boom".into(), Some("n1".into()))
                .await
                .unwrap()
        );
        let next = claim("n2").await.unwrap().unwrap();
        assert_eq!(next.id, a2.id);

        // n2 goes silent: its leases expire and another node takes its builds back.
        db.call(|c| {
            c.execute(
                "UPDATE builds SET lease_until = ?1 WHERE node = 'n2'",
                params![now_ms() - 1],
            )
        })
        .await
        .unwrap();
        assert_eq!(
            db.renew_leases("n1".into(), 60_000).await.unwrap(),
            Vec::<String>::new()
        );
        let taken = db.reclaim(None, false, 2).await.unwrap();
        assert_eq!(taken.len(), 2);
        assert!(taken.iter().all(|r| r.requeued && r.node == "n2"));
        let lines = db.log_lines(a2.id.clone()).await.unwrap();
        assert!(
            lines[0]
                .line
                .contains("Node n2 stopped during this build; it will run again (attempt 2 of 2)")
        );
        // Run again: attempt 2, the last. n1 dies too: now the build fails, output stored.
        let again = claim("n1").await.unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        let taken = db.reclaim(Some("n1".into()), false, 2).await.unwrap();
        assert!(taken.iter().any(|r| r.id == again.id && !r.requeued));
        let failed = db
            .build(again.app_id.clone(), again.id.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failed.status, Status::Failed);
        let stored = db
            .log_since(again.id.clone(), 0)
            .await
            .unwrap()
            .stored
            .unwrap();
        assert!(String::from_utf8(stored).unwrap().contains("giving up"));

        // Two nodes creating one app name at once: the insert that loses is told apart from
        // other failures, so the API answers 409, not 500.
        db.call(move |c| {
            let err = c
                .execute(
                    "INSERT INTO apps (id, name, owner_id, stack, created_at, updated_at) \
                     VALUES ('another', 'qa', ?1, 's', 't', 't')",
                    params![user.id],
                )
                .unwrap_err();
            assert!(sql::is_unique_violation(&err), "{err:#}");
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn queue_rules_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        queue_rules(Db::open(&dir.path().join("q.sqlite3").to_string_lossy()).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn queue_rules_on_postgres() {
        let Some(admin) = postgres::tests::server() else {
            return;
        };
        let name = format!("buildd_unit_{}", &new_id()[..8]);
        let (pool, _) = postgres::pool(&format!("{admin}?sslmode=disable"), 1).unwrap();
        let run = |sql: String| {
            let pool = pool.clone();
            tokio::task::block_in_place(move || {
                Conn(&mut *pool.get().unwrap()).batch(&sql).unwrap()
            })
        };
        run(format!("CREATE DATABASE {name}"));
        let url = format!("{}{name}", admin.trim_end_matches("postgres"));
        queue_rules(Db::open(&url).unwrap()).await;
        run(format!("DROP DATABASE {name} WITH (FORCE)"));
    }
}
