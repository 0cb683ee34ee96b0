//! Build output: buildpacks' stdout/stderr split into lines and handed to a [`LogSink`] as they
//! are printed, with a byte budget for the whole build.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::limits::LimitExceeded;
use crate::tripwire::Tripwire;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output, and the host's own progress lines.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives build output, one line at a time (without the trailing newline), as it happens.
///
/// Called from the thread running the build: keep it quick (hand lines to a channel if the
/// consumer is slow).
pub trait LogSink: Send + Sync {
    /// One line of output.
    fn line(&self, stream: Stream, line: &str);
}

impl<F: Fn(Stream, &str) + Send + Sync> LogSink for F {
    fn line(&self, stream: Stream, line: &str) {
        self(stream, line)
    }
}

/// Longest line passed on whole; longer ones are split, so one newline-free write cannot make
/// the host buffer without bound.
const MAX_LINE: usize = 16 * 1024;

struct Inner {
    sink: Arc<dyn LogSink>,
    /// Bytes the buildpacks may still print.
    budget: u64,
    limit: u64,
    partial: [Vec<u8>; 2],
}

/// The output of one build: shared by every phase's stdout and stderr pipes.
#[derive(Clone)]
pub(crate) struct BuildLog {
    inner: Arc<Mutex<Inner>>,
    tripwire: Tripwire,
}

impl BuildLog {
    pub(crate) fn new(sink: Arc<dyn LogSink>, limit: u64, tripwire: Tripwire) -> Self {
        BuildLog {
            inner: Arc::new(Mutex::new(Inner {
                sink,
                budget: limit,
                limit,
                partial: [Vec::new(), Vec::new()],
            })),
            tripwire,
        }
    }

    /// A line from the host itself; not counted against the budget.
    pub(crate) fn host(&self, line: &str) {
        let sink = self.inner.lock().unwrap().sink.clone();
        sink.line(Stream::Stdout, line);
    }

    /// Bytes a buildpack wrote to one of its streams.
    fn guest(&self, stream: Stream, bytes: &[u8]) -> Result<(), LimitExceeded> {
        let mut inner = self.inner.lock().unwrap();
        if (bytes.len() as u64) > inner.budget {
            let exceeded = LimitExceeded::Log(inner.limit);
            inner.budget = 0;
            drop(inner);
            self.tripwire.trip(exceeded.clone());
            return Err(exceeded);
        }
        inner.budget -= bytes.len() as u64;
        let sink = inner.sink.clone();
        let partial = &mut inner.partial[stream as usize];
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            partial.extend_from_slice(chunk);
            if partial.last() == Some(&b'\n') || partial.len() >= MAX_LINE {
                emit(&*sink, stream, partial);
            }
        }
        Ok(())
    }

    /// Passes on what is left of unterminated lines: called when a phase ends.
    pub(crate) fn flush(&self) {
        let mut inner = self.inner.lock().unwrap();
        let sink = inner.sink.clone();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !inner.partial[i].is_empty() {
                emit(&*sink, stream, &mut inner.partial[i]);
            }
        }
    }

    /// A stdout or stderr for a buildpack's WASI context.
    pub(crate) fn pipe(&self, stream: Stream) -> GuestPipe {
        GuestPipe {
            log: self.clone(),
            stream,
        }
    }
}

fn emit(sink: &dyn LogSink, stream: Stream, partial: &mut Vec<u8>) {
    let mut end = partial.len();
    if partial.last() == Some(&b'\n') {
        end -= 1;
        if end > 0 && partial[end - 1] == b'\r' {
            end -= 1;
        }
    }
    sink.line(stream, &String::from_utf8_lossy(&partial[..end]));
    partial.clear();
}

/// One of a buildpack's output streams.
#[derive(Clone)]
pub(crate) struct GuestPipe {
    log: BuildLog,
    stream: Stream,
}

impl IsTerminal for GuestPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.log
            .guest(self.stream, &bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::msg(e.to_string())))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(
            self.log
                .guest(self.stream, buf)
                .map(|()| buf.len())
                .map_err(io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Arc<Mutex<Vec<(Stream, String)>>>;

    fn collect() -> (Lines, Arc<dyn LogSink>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sink: Arc<dyn LogSink> =
            Arc::new(move |s: Stream, l: &str| sink_lines.lock().unwrap().push((s, l.to_string())));
        (lines, sink)
    }

    #[test]
    fn splits_writes_into_lines_per_stream() {
        let (lines, sink) = collect();
        let log = BuildLog::new(sink, 1 << 20, Tripwire::default());
        log.guest(Stream::Stdout, b"one\ntw").unwrap();
        log.guest(Stream::Stderr, b"err\r\n").unwrap();
        log.guest(Stream::Stdout, b"o\nthree").unwrap();
        log.flush();
        let got = lines.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "one".to_string()),
                (Stream::Stderr, "err".to_string()),
                (Stream::Stdout, "two".to_string()),
                (Stream::Stdout, "three".to_string()),
            ]
        );
    }

    #[test]
    fn budget_trips_the_log_limit() {
        let (_lines, sink) = collect();
        let tripwire = Tripwire::default();
        let log = BuildLog::new(sink, 10, tripwire.clone());
        log.guest(Stream::Stdout, b"12345\n").unwrap();
        assert_eq!(
            log.guest(Stream::Stdout, b"123456\n"),
            Err(LimitExceeded::Log(10))
        );
        assert_eq!(tripwire.tripped(), Some(LimitExceeded::Log(10)));
    }
}
