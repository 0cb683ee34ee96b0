//! The build queue, shared by every node on the database: pending builds are rows; a node with
//! a free slot claims the oldest claimable one (see `db/claims.rs`), runs it, and renews its
//! lease while it runs. A node also takes back the builds of nodes whose leases ran out.
//! Cancelling drops the build's future, which stops its buildpack mid-instruction; a build
//! cancelled through another node stops here at the next lease renewal.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::ServerState;
use super::db::Build;

/// How a node takes part in the queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// This node's name, written into the builds it claims.
    pub node: String,
    /// Builds running at once on this node.
    pub concurrency: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// Starts of a build in all, before a build whose node died is failed.
    pub attempts: i64,
    /// How often an idle node looks for work without being woken.
    pub poll: Duration,
}

/// See the module docs.
pub struct Queue {
    config: QueueConfig,
    slots: Arc<Semaphore>,
    /// Something may have become claimable.
    wake: Notify,
    /// Builds running on this node: id → (app id, abort handle, when it was claimed).
    tasks: Mutex<HashMap<String, (String, AbortHandle, Instant)>>,
    running: AtomicUsize,
    /// Set when the node shuts down: it claims nothing more.
    stopped: AtomicBool,
}

impl Queue {
    /// A queue for one node.
    pub fn new(config: QueueConfig) -> Queue {
        Queue {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            wake: Notify::new(),
            tasks: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Claims nothing more (the node is shutting down); running builds go on.
    pub fn stop_claiming(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Builds running on this node.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// The apps with a build running on this node.
    pub fn running_apps(&self) -> HashSet<String> {
        self.tasks
            .lock()
            .unwrap()
            .values()
            .map(|(app, _, _)| app.clone())
            .collect()
    }

    /// Looks for claimable builds now (one was created, finished, or handed back).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn lease_ms(&self) -> i64 {
        self.config.lease.as_millis() as i64
    }

    /// Takes back what this node held before it (re)started, then claims and renews until the
    /// process ends.
    pub async fn start(state: Arc<ServerState>) -> anyhow::Result<()> {
        let q = &state.queue;
        // On SQLite this is the only node, so every held build is one that died with us.
        let alone = state.db.dialect() == super::db::sql::Dialect::Sqlite;
        let reclaimed = state
            .db
            .reclaim(Some(q.config.node.clone()), alone, q.config.attempts)
            .await?;
        if !reclaimed.is_empty() {
            tracing::warn!(
                count = reclaimed.len(),
                "took back builds interrupted by a restart"
            );
        }
        tokio::spawn(claim_loop(state.clone()));
        tokio::spawn(lease_loop(state.clone()));
        Ok(())
    }

    fn spawn(&self, state: Arc<ServerState>, build: Build, permit: OwnedSemaphorePermit) {
        let id = build.id.clone();
        let app_id = build.app_id.clone();
        self.running.fetch_add(1, Ordering::Relaxed);
        // Hold the task map while spawning, so the task cannot finish and remove itself before
        // it has been inserted.
        let mut tasks = self.tasks.lock().unwrap();
        let task_state = state.clone();
        let guard_id = id.clone();
        let handle = tokio::spawn(async move {
            let state = task_state;
            let _permit = permit;
            let _running = Running {
                state: state.clone(),
                build_id: guard_id,
            };
            let started = Instant::now();
            super::worker::run(&state, build).await;
            state
                .metrics
                .build_duration(started.elapsed().as_secs_f64());
        });
        tasks.insert(id, (app_id, handle.abort_handle(), Instant::now()));
    }

    /// Stops a queued or running build (on whichever node) and records it as failed.
    pub async fn cancel(
        &self,
        state: &Arc<ServerState>,
        build_id: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let task = self.tasks.lock().unwrap().remove(build_id);
        if let Some((_, handle, _)) = task {
            handle.abort();
        }
        super::worker::finish_failed(state, build_id, reason).await
    }

    /// Stops every build of an app running here (it is being deleted; other nodes stop theirs
    /// when their leases no longer find them).
    pub async fn cancel_app(&self, app_id: &str) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|_, (app, handle, _)| {
            if app == app_id {
                handle.abort();
                false
            } else {
                true
            }
        });
    }

    /// At shutdown: builds still running are stopped and handed back to the queue (or failed
    /// after their last attempt); pending ones stay pending for any node.
    pub async fn shutdown(&self, state: &Arc<ServerState>) {
        let tasks: Vec<(String, (String, AbortHandle, Instant))> =
            self.tasks.lock().unwrap().drain().collect();
        for (_, (_, handle, _)) in &tasks {
            handle.abort();
        }
        if !tasks.is_empty()
            && let Err(err) = state
                .db
                .reclaim(Some(self.config.node.clone()), false, self.config.attempts)
                .await
        {
            tracing::error!("handing back running builds: {err:#}");
        }
    }
}

/// Keeps the gauge and the task map right however the task ends (finished, aborted, panicked).
struct Running {
    state: Arc<ServerState>,
    build_id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let q = &self.state.queue;
        q.running.fetch_sub(1, Ordering::Relaxed);
        q.tasks.lock().unwrap().remove(&self.build_id);
        q.wake();
    }
}

async fn claim_loop(state: Arc<ServerState>) {
    let q = &state.queue;
    loop {
        let permit = q.slots.clone().acquire_owned().await.expect("never closed");
        if q.stopped.load(Ordering::SeqCst) {
            return;
        }
        let started = Instant::now();
        match state
            .db
            .claim_build(q.config.node.clone(), q.lease_ms())
            .await
        {
            Ok(Some(build)) => {
                state.metrics.claim(started.elapsed().as_secs_f64());
                q.spawn(state.clone(), build, permit);
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!("claiming a build: {err:#}"),
        }
        drop(permit);
        tokio::select! {
            () = q.wake.notified() => {}
            () = tokio::time::sleep(q.config.poll) => {}
        }
    }
}

async fn lease_loop(state: Arc<ServerState>) {
    let q = &state.queue;
    let every = (q.config.lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let asked = Instant::now();
        match state
            .db
            .renew_leases(q.config.node.clone(), q.lease_ms())
            .await
        {
            Ok(held) => {
                let held: HashSet<String> = held.into_iter().collect();
                let mut tasks = q.tasks.lock().unwrap();
                tasks.retain(|id, (_, handle, claimed)| {
                    // Cancelled, deleted or taken over elsewhere: this attempt is void. A build
                    // claimed after the question was asked cannot be in the answer yet.
                    let keep = held.contains(id) || *claimed >= asked;
                    if !keep {
                        tracing::info!(build = %id, "build no longer held by this node; stopping it");
                        handle.abort();
                    }
                    keep
                });
            }
            Err(err) => tracing::warn!("renewing build leases: {err:#}"),
        }
        match state.db.reclaim(None, false, q.config.attempts).await {
            Ok(taken) => {
                for r in &taken {
                    tracing::warn!(build = %r.id, node = %r.node, requeued = r.requeued, "took back a build from a silent node");
                }
                if !taken.is_empty() {
                    q.wake();
                }
            }
            Err(err) => tracing::warn!("taking back expired builds: {err:#}"),
        }
    }
}
