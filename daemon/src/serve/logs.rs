//! Live build output: each running build appends lines to an in-memory log that any number of
//! `output_stream_url` readers follow; when the build ends the log is stored in the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::db::LogLine;

/// The output of one running build.
pub struct LiveLog {
    state: Mutex<State>,
    /// Bumped on every change: (bytes so far, finished).
    notify: watch::Sender<(usize, bool)>,
}

#[derive(Default)]
struct State {
    text: Vec<u8>,
    lines: Vec<LogLine>,
    done: bool,
}

impl LiveLog {
    fn new() -> Arc<LiveLog> {
        Arc::new(LiveLog {
            state: Mutex::new(State::default()),
            notify: watch::channel((0, false)).0,
        })
    }

    /// Appends one line.
    pub fn push(&self, stream: &str, line: &str) {
        let len = {
            let mut s = self.state.lock().unwrap();
            s.text.extend_from_slice(line.as_bytes());
            s.text.push(b'\n');
            s.lines.push(LogLine {
                stream: stream.to_string(),
                line: line.to_string(),
            });
            s.text.len()
        };
        self.notify.send_replace((len, false));
    }

    /// Marks the log complete: readers reach EOF.
    pub fn finish(&self) {
        let len = {
            let mut s = self.state.lock().unwrap();
            s.done = true;
            s.text.len()
        };
        self.notify.send_replace((len, true));
    }

    /// Bytes from `offset` on, and whether the log is complete.
    pub fn read_from(&self, offset: usize) -> (Vec<u8>, bool) {
        let s = self.state.lock().unwrap();
        (
            s.text.get(offset..).map(<[u8]>::to_vec).unwrap_or_default(),
            s.done,
        )
    }

    /// Everything, for storing.
    pub fn snapshot(&self) -> (Vec<u8>, Vec<LogLine>) {
        let s = self.state.lock().unwrap();
        (s.text.clone(), s.lines.clone())
    }

    /// A receiver that changes whenever the log grows or finishes.
    pub fn subscribe(&self) -> watch::Receiver<(usize, bool)> {
        self.notify.subscribe()
    }
}

/// The live logs of builds that have not been stored yet, by build id.
#[derive(Default, Clone)]
pub struct LiveLogs(Arc<Mutex<HashMap<String, Arc<LiveLog>>>>);

impl LiveLogs {
    /// The live log of a build, created on first use.
    pub fn open(&self, build_id: &str) -> Arc<LiveLog> {
        self.0
            .lock()
            .unwrap()
            .entry(build_id.to_string())
            .or_insert_with(LiveLog::new)
            .clone()
    }

    /// The live log of a build, if it has one.
    pub fn get(&self, build_id: &str) -> Option<Arc<LiveLog>> {
        self.0.lock().unwrap().get(build_id).cloned()
    }

    /// Forgets a build's live log (after it was stored); readers holding it still finish.
    pub fn remove(&self, build_id: &str) {
        self.0.lock().unwrap().remove(build_id);
    }
}
