//! Build output on its way to readers. A running build's lines collect in a [`LiveLog`]; a
//! flusher task writes them to the database as numbered chunks (batching whatever arrived while
//! the previous write was in flight) and wakes the readers. Readers on any node follow the
//! chunks: [`LogEvents`] wakes them at once on this node, and PostgreSQL's `NOTIFY` (through
//! the same [`LogEvents`]) on the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::db::{Db, LogLine};

/// Lines of a build running on this node that are not in the database yet.
pub struct LiveLog {
    pending: Mutex<(Vec<LogLine>, bool)>,
    /// Bumped on every push and on finish.
    changed: watch::Sender<()>,
}

impl LiveLog {
    /// Appends one line.
    pub fn push(&self, stream: &str, line: &str) {
        self.pending.lock().unwrap().0.push(LogLine {
            stream: stream.to_string(),
            line: line.to_string(),
        });
        self.changed.send_replace(());
    }

    fn take(&self) -> (Vec<LogLine>, bool) {
        let mut p = self.pending.lock().unwrap();
        (std::mem::take(&mut p.0), p.1)
    }
}

/// The writer side of a running build's output.
pub struct LogWriter {
    /// Where the build's sink pushes lines.
    pub live: Arc<LiveLog>,
    /// `None` once flushed.
    flusher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Dropped without `flush`: the build was aborted (cancelled, or taken from this node);
        // whoever stopped it writes the last word.
        if let Some(flusher) = self.flusher.take() {
            flusher.abort();
        }
    }
}

impl LogWriter {
    /// Starts flushing `build_id`'s output to the database.
    pub fn start(db: Db, events: LogEvents, build_id: String) -> LogWriter {
        let live = Arc::new(LiveLog {
            pending: Mutex::new((Vec::new(), false)),
            changed: watch::channel(()).0,
        });
        let mut rx = live.changed.subscribe();
        let log = live.clone();
        let flusher = tokio::spawn(async move {
            loop {
                let (lines, done) = log.take();
                if !lines.is_empty() {
                    if let Err(err) = db.append_log(build_id.clone(), lines).await {
                        tracing::error!(build = %build_id, "storing output: {err:#}");
                    }
                    events.wake(&build_id);
                }
                if done {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        LogWriter {
            live,
            flusher: Some(flusher),
        }
    }

    /// Writes what is left and stops the flusher.
    pub async fn flush(mut self) {
        self.live.pending.lock().unwrap().1 = true;
        self.live.changed.send_replace(());
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.await;
        }
    }
}

/// Wakes the readers of a build's output, by build id.
#[derive(Default, Clone)]
pub struct LogEvents(Arc<Mutex<HashMap<String, watch::Sender<()>>>>);

impl LogEvents {
    /// A receiver that changes whenever `build_id`'s output may have grown.
    pub fn subscribe(&self, build_id: &str) -> watch::Receiver<()> {
        let mut map = self.0.lock().unwrap();
        // Forget builds nobody follows any more, so the map stays as small as the readers.
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(build_id.to_string())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// Wakes `build_id`'s readers on this node.
    pub fn wake(&self, build_id: &str) {
        if let Some(tx) = self.0.lock().unwrap().get(build_id) {
            tx.send_replace(());
        }
    }
}
