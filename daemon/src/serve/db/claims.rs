//! The shared build queue and build output, as rows every node sees.
//!
//! A pending build is claimed by one node at a time: the claim names the node and holds a lease
//! that the node renews while the build runs. Of each app only the oldest pending build can be
//! claimed, so an app's builds run one after another whichever nodes run them. A lease that runs
//! out means the node died: the build is handed back to the queue (or failed, after its last
//! attempt). Output goes into numbered chunks as it is written, so any node can follow it.

use anyhow::Result;

use super::sql::{Conn, Dialect, params};
use super::{BUILD_COLUMNS, Build, Db, LogLine, build_row, find_build, now};

/// Milliseconds since the Unix epoch: lease deadlines are compared as numbers on every engine.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A build taken from a node that stopped renewing it.
#[derive(Debug, Clone)]
pub struct Reclaimed {
    /// The build.
    pub id: String,
    /// The node that held it.
    pub node: String,
    /// Whether it went back to the queue (else it was failed).
    pub requeued: bool,
}

/// A build's output from some chunk on, or all of it once stored.
#[derive(Debug, Default)]
pub struct LogSince {
    /// New chunks: (number, text).
    pub chunks: Vec<(i64, Vec<u8>)>,
    /// The whole output, when the build is over and its output stored.
    pub stored: Option<Vec<u8>>,
}

/// The `NOTIFY` channels: a build became claimable; a build's output grew (payload: its id).
pub const QUEUE_CHANNEL: &str = "buildd_queue";
/// See [`QUEUE_CHANNEL`].
pub const LOG_CHANNEL: &str = "buildd_log";

fn notify(c: &mut Conn, channel: &str, payload: &str) -> Result<()> {
    if c.dialect() == Dialect::Postgres {
        c.query_row(
            "SELECT pg_notify(?1, ?2)",
            params![channel, payload],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// Tells waiting nodes to look for work.
pub(super) fn notify_queue(c: &mut Conn) -> Result<()> {
    notify(c, QUEUE_CHANNEL, "")
}

fn append_chunk(c: &mut Conn, build_id: &str, lines: &[LogLine]) -> Result<()> {
    let mut text = Vec::new();
    for l in lines {
        text.extend_from_slice(l.line.as_bytes());
        text.push(b'\n');
    }
    const INSERT: &str = "INSERT INTO build_log_chunks (build_id, seq, text, lines) VALUES \
         (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM build_log_chunks WHERE build_id = ?1), ?2, ?3)";
    let params = params![build_id, text, serde_json::to_string(lines)?];
    match c.dialect() {
        Dialect::Sqlite => c.execute(INSERT, params).map(drop),
        // The insert and its NOTIFY in one round trip: output is the chattiest thing a build
        // writes.
        Dialect::Postgres => c.query_row(
            &format!(
                "WITH chunk AS ({INSERT} RETURNING build_id) \
                 SELECT pg_notify('{LOG_CHANNEL}', build_id) FROM chunk"
            ),
            params,
            |_| Ok(()),
        ),
    }
}

/// Moves a build's chunks into its stored output (kept when already stored).
fn store_log(c: &mut Conn, build_id: &str) -> Result<()> {
    let chunks: Vec<(Vec<u8>, String)> = c.all(
        "SELECT text, lines FROM build_log_chunks WHERE build_id = ?1 ORDER BY seq",
        params![build_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut text = Vec::new();
    let mut lines: Vec<LogLine> = Vec::new();
    for (t, l) in chunks {
        text.extend_from_slice(&t);
        lines.extend(serde_json::from_str::<Vec<LogLine>>(&l).unwrap_or_default());
    }
    c.execute(
        "INSERT INTO build_logs (build_id, text, lines) VALUES (?1, ?2, ?3) \
         ON CONFLICT (build_id) DO NOTHING",
        params![build_id, text, serde_json::to_string(&lines)?],
    )?;
    c.execute(
        "DELETE FROM build_log_chunks WHERE build_id = ?1",
        params![build_id],
    )?;
    notify(c, LOG_CHANNEL, build_id)
}

impl Db {
    /// Claims the oldest claimable pending build for `node`, holding it for `lease_ms`.
    pub async fn claim_build(&self, node: String, lease_ms: i64) -> Result<Option<Build>> {
        self.call(move |c| {
            // SKIP LOCKED lets nodes claiming at the same moment take different builds instead
            // of queueing behind one row lock; SQLite has one writer, so nothing to skip.
            let lock = match c.dialect() {
                Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
                Dialect::Sqlite => "",
            };
            let ts = now();
            let claim = format!(
                "UPDATE builds SET node = ?1, lease_until = ?2, attempts = attempts + 1, \
                 started_at = ?3, updated_at = ?3 \
                 WHERE node IS NULL AND id = (SELECT b.id FROM builds b \
                   WHERE b.status = 'pending' AND b.node IS NULL AND NOT EXISTS \
                     (SELECT 1 FROM builds o WHERE o.app_id = b.app_id AND o.status = 'pending' AND o.seq < b.seq) \
                   ORDER BY b.seq LIMIT 1 {lock})"
            );
            let params = params![node, now_ms() + lease_ms, ts];
            if c.dialect() == Dialect::Postgres {
                // The claim and the claimed build in one round trip (SQLite has no UPDATE in
                // a WITH).
                return c.query_opt(
                    &format!(
                        "WITH b AS ({claim} RETURNING *) SELECT {BUILD_COLUMNS} FROM b \
                         JOIN users u ON u.id = b.user_id"
                    ),
                    params,
                    build_row,
                );
            }
            let id: Option<String> =
                c.query_opt(&format!("{claim} RETURNING id"), params, |r| r.get(0))?;
            match id {
                Some(id) => find_build(c, "b.id = ?1", &id),
                None => Ok(None),
            }
        })
        .await
    }

    /// Extends `node`'s leases; returns the builds it still holds (others were cancelled,
    /// deleted or taken from it, and must stop).
    pub async fn renew_leases(&self, node: String, lease_ms: i64) -> Result<Vec<String>> {
        self.call(move |c| {
            c.all(
                "UPDATE builds SET lease_until = ?2 WHERE node = ?1 AND status = 'pending' RETURNING id",
                params![node, now_ms() + lease_ms],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Takes back the builds of nodes whose leases ran out, and with `node` also every build
    /// that node holds (it restarted: they are not running). `all_held` takes every held build
    /// (one node on SQLite: none can be running at start). Builds with attempts left go back to
    /// the queue; the others fail with `reason`. Also stores the output of finished builds whose
    /// node died before storing it.
    pub async fn reclaim(
        &self,
        node: Option<String>,
        all_held: bool,
        max_attempts: i64,
    ) -> Result<Vec<Reclaimed>> {
        self.call(move |c| {
            let lock = match c.dialect() {
                Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
                Dialect::Sqlite => "",
            };
            c.transaction(|c| {
                let held: Vec<(String, String, i64)> = c.all(
                    &format!(
                        "SELECT id, node, attempts FROM builds WHERE status = 'pending' AND node IS NOT NULL \
                         AND (lease_until < ?1 OR node = ?2 OR ?3 = 1) ORDER BY seq {lock}"
                    ),
                    params![now_ms(), node, all_held],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let mut out = Vec::new();
                for (id, holder, attempts) in held {
                    let requeued = attempts < max_attempts;
                    let line = if requeued {
                        format!(
                            " !     Node {holder} stopped during this build; it will run again (attempt {} of {max_attempts}).",
                            attempts + 1
                        )
                    } else {
                        format!(" !     Node {holder} stopped during this build (attempt {attempts} of {max_attempts}); giving up.")
                    };
                    append_chunk(c, &id, &[LogLine { stream: "STDOUT".into(), line }])?;
                    if requeued {
                        c.execute(
                            "UPDATE builds SET node = NULL, lease_until = NULL, started_at = NULL, updated_at = ?2 WHERE id = ?1",
                            params![id, now()],
                        )?;
                    } else {
                        c.execute(
                            "UPDATE builds SET status = 'failed', failure = ?2, finished_at = ?3, updated_at = ?3, \
                             node = NULL, lease_until = NULL WHERE id = ?1",
                            params![id, format!("node {holder} stopped during the build"), now()],
                        )?;
                        store_log(c, &id)?;
                    }
                    out.push(Reclaimed { id, node: holder, requeued });
                }
                if !out.is_empty() {
                    notify(c, QUEUE_CHANNEL, "")?;
                }
                // Finished builds whose output never reached build_logs (the node died between
                // the two writes): their chunks are all there is. Driven by the chunks table,
                // which holds only builds in flight, so this stays cheap however many builds
                // an installation has.
                let orphans: Vec<String> = c.all(
                    "SELECT DISTINCT k.build_id FROM build_log_chunks k JOIN builds b ON b.id = k.build_id \
                     WHERE b.status != 'pending' AND (b.lease_until IS NULL OR b.lease_until < ?1) \
                     AND NOT EXISTS (SELECT 1 FROM build_logs l WHERE l.build_id = k.build_id)",
                    params![now_ms()],
                    |r| r.get(0),
                )?;
                for id in orphans {
                    store_log(c, &id)?;
                }
                // Lines a stopped node flushed after its build's output was stored.
                c.execute(
                    "DELETE FROM build_log_chunks WHERE EXISTS \
                     (SELECT 1 FROM build_logs l WHERE l.build_id = build_log_chunks.build_id)",
                    params![],
                )?;
                Ok(out)
            })
        })
        .await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.call(|c| c.query_row("SELECT 1", params![], |_| Ok(())))
            .await
    }

    /// Pending builds no node has claimed.
    pub async fn queue_depth(&self) -> Result<i64> {
        self.call(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM builds WHERE status = 'pending' AND node IS NULL",
                params![],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Appends lines to a build's output.
    pub async fn append_log(&self, build_id: String, lines: Vec<LogLine>) -> Result<()> {
        self.call(move |c| append_chunk(c, &build_id, &lines)).await
    }

    /// Stores a build's output for good (after its status became final).
    pub async fn store_log(&self, build_id: String) -> Result<()> {
        self.call(move |c| c.transaction(|c| store_log(c, &build_id)))
            .await
    }

    /// A build's output after chunk `after`, or all of it once stored.
    pub async fn log_since(&self, build_id: String, after: i64) -> Result<LogSince> {
        self.call(move |c| {
            let stored: Option<Vec<u8>> = c.query_opt(
                "SELECT text FROM build_logs WHERE build_id = ?1",
                params![build_id],
                |r| r.get(0),
            )?;
            if stored.is_some() {
                return Ok(LogSince {
                    chunks: Vec::new(),
                    stored,
                });
            }
            let chunks = c.all(
                "SELECT seq, text FROM build_log_chunks WHERE build_id = ?1 AND seq > ?2 ORDER BY seq",
                params![build_id, after],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(LogSince { chunks, stored })
        })
        .await
    }

    /// A build's output lines so far: stored, or from its chunks while it runs.
    pub async fn log_lines(&self, build_id: String) -> Result<Vec<LogLine>> {
        self.call(move |c| {
            let stored: Option<String> = c.query_opt(
                "SELECT lines FROM build_logs WHERE build_id = ?1",
                params![build_id],
                |r| r.get(0),
            )?;
            if let Some(lines) = stored {
                return Ok(serde_json::from_str(&lines).unwrap_or_default());
            }
            let chunks: Vec<String> = c.all(
                "SELECT lines FROM build_log_chunks WHERE build_id = ?1 ORDER BY seq",
                params![build_id],
                |r| r.get(0),
            )?;
            Ok(chunks
                .iter()
                .flat_map(|l| serde_json::from_str::<Vec<LogLine>>(l).unwrap_or_default())
                .collect())
        })
        .await
    }
}
