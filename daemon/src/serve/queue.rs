//! The build queue: builds of one app run one at a time, in the order they were created; at most
//! `concurrency` builds run at once across apps. Cancelling drops the build's future, which stops
//! its buildpack mid-instruction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

use super::ServerState;
use super::db::Build;

/// See the module docs.
pub struct Queue {
    slots: Arc<Semaphore>,
    /// Per app: a receiver that closes when the app's latest queued build is over.
    tails: Mutex<HashMap<String, watch::Receiver<()>>>,
    /// Queued or running builds: (app id, abort handle).
    tasks: Mutex<HashMap<String, (String, AbortHandle)>>,
    waiting: AtomicUsize,
    running: AtomicUsize,
}

impl Queue {
    /// A queue running at most `concurrency` builds at once.
    pub fn new(concurrency: usize) -> Queue {
        Queue {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            tails: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    }

    /// Builds waiting for their turn.
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Builds running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Queues a pending build.
    pub fn enqueue(&self, state: Arc<ServerState>, build: Build) {
        let (done_tx, done_rx) = watch::channel(());
        let previous = self
            .tails
            .lock()
            .unwrap()
            .insert(build.app_id.clone(), done_rx);
        let slots = self.slots.clone();
        let id = build.id.clone();
        let app_id = build.app_id.clone();
        let key = build.id.clone();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let task_state = state.clone();
        // Hold the task map while spawning, so the task cannot finish and remove itself before
        // it has been inserted.
        let mut tasks = self.tasks.lock().unwrap();
        let handle = tokio::spawn(async move {
            let state = task_state;
            let _done = done_tx;
            let counted = Counted {
                state: state.clone(),
                build_id: id,
                running: false,
            };
            if let Some(mut previous) = previous {
                // Closed (Err) once the previous build of this app is over, however it ended.
                while previous.changed().await.is_ok() {}
            }
            let _slot = slots.acquire_owned().await;
            let _counted = counted.start();
            let started = Instant::now();
            super::worker::run(&state, build).await;
            state
                .metrics
                .build_duration(started.elapsed().as_secs_f64());
        });
        tasks.insert(key, (app_id, handle.abort_handle()));
    }

    /// Stops a queued or running build and records it as failed with `reason`.
    pub async fn cancel(
        &self,
        state: &Arc<ServerState>,
        build_id: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let task = self.tasks.lock().unwrap().remove(build_id);
        if let Some((_, handle)) = task {
            handle.abort();
        }
        super::worker::finish_failed(state, build_id, reason).await
    }

    /// Stops every build of an app (it is being deleted).
    pub async fn cancel_app(&self, app_id: &str) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|_, (app, handle)| {
            if app == app_id {
                handle.abort();
                false
            } else {
                true
            }
        });
    }
}

/// Keeps the gauges and the task map right however the task ends (finished, aborted, panicked).
struct Counted {
    state: Arc<ServerState>,
    build_id: String,
    running: bool,
}

impl Counted {
    fn start(mut self) -> Counted {
        self.state.queue.waiting.fetch_sub(1, Ordering::Relaxed);
        self.state.queue.running.fetch_add(1, Ordering::Relaxed);
        self.running = true;
        self
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let q = &self.state.queue;
        if self.running {
            q.running.fetch_sub(1, Ordering::Relaxed);
        } else {
            q.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        q.tasks.lock().unwrap().remove(&self.build_id);
    }
}

impl Queue {
    /// At shutdown: builds still running are failed; queued ones are dropped from memory and
    /// stay pending in the database, to run after the next start.
    pub async fn shutdown(&self, state: &Arc<ServerState>) {
        let tasks: Vec<(String, (String, AbortHandle))> =
            self.tasks.lock().unwrap().drain().collect();
        for (build_id, (_, handle)) in tasks {
            handle.abort();
            let started = state
                .db
                .pending_builds()
                .await
                .map(|b| b.iter().any(|b| b.id == build_id && b.started_at.is_some()))
                .unwrap_or(false);
            if started {
                let _ =
                    super::worker::finish_failed(state, &build_id, "daemon shut down during build")
                        .await;
            } else if let Some(log) = state.logs.get(&build_id) {
                log.finish();
            }
        }
    }
}
