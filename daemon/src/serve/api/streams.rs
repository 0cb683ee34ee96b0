//! `output_stream_url`: a build's output, live while it runs and whole afterwards.
//!
//! The URL is the capability (no auth). `text/plain` by default, resumable with
//! `Range: bytes=N-` (or `N-`); `Accept: text/event-stream` gives SSE frames whose ids are byte
//! offsets, resumable with `Last-Event-Id`. A NUL byte (an SSE comment) goes out every 10 s of
//! silence so clients keep the connection; EOF comes only once the build's status is final.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::watch;

use super::{ApiError, ApiResult};
use crate::serve::ServerState;
use crate::serve::db::Status;

fn offset(headers: &HeaderMap, sse: bool) -> usize {
    if sse {
        return headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
    }
    headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim())
        .map(|v| v.strip_prefix("bytes=").unwrap_or(v))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Formats complete lines of `chunk` (which starts at byte `start`) as SSE events.
fn sse_frames(chunk: &[u8], start: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = start;
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        at += line.len();
        let text = String::from_utf8_lossy(line);
        out.extend_from_slice(
            format!("id: {at}\ndata: {}\n\n", text.trim_end_matches('\n')).as_bytes(),
        );
    }
    out
}

pub async fn stream(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> ApiResult {
    let build = state
        .db
        .build_by_output_secret(secret)
        .await?
        .ok_or_else(|| ApiError::not_found("output stream"))?;
    let sse = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let start = offset(&headers, sse);
    let content_type = if sse {
        "text/event-stream"
    } else {
        "text/plain; charset=utf-8"
    };

    let body = if build.status == Status::Pending {
        follow(state.clone(), build.id, start, sse)
    } else {
        let text = state
            .db
            .log_since(build.id.clone(), 0)
            .await?
            .stored
            .unwrap_or_default();
        if start > 0 && start >= text.len() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if text.is_empty() {
            // Finished, but its node has not stored the output yet: follow until it has.
            follow(state.clone(), build.id, start, sse)
        } else {
            let rest = &text[start.min(text.len())..];
            Body::from(if sse {
                sse_frames(rest, start)
            } else {
                rest.to_vec()
            })
        }
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap())
}

/// Where a reader following a build's output is.
struct Follow {
    state: Arc<ServerState>,
    build_id: String,
    wake: watch::Receiver<()>,
    /// The last chunk read.
    seq: i64,
    /// Bytes of output before the next chunk.
    pos: usize,
    /// Where the reader asked to start.
    start: usize,
    sse: bool,
    last_sent: Instant,
    ended: bool,
}

impl Follow {
    /// The next piece of the response: output, a keep-alive, or `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let keepalive = self.state.config.keepalive;
        // Notifications can be lost (a database reconnect); a reader also looks now and then.
        let poll = keepalive.min(Duration::from_secs(1));
        loop {
            self.wake.borrow_and_update();
            let since = match self
                .state
                .db
                .log_since(self.build_id.clone(), self.seq)
                .await
            {
                Ok(since) => since,
                Err(err) => {
                    tracing::warn!(build = %self.build_id, "following output: {err:#}");
                    return None;
                }
            };
            if let Some(stored) = since.stored {
                self.ended = true;
                let from = self.pos.max(self.start).min(stored.len());
                return (from < stored.len()).then(|| self.frame(&stored[from..], from));
            }
            let mut out = Vec::new();
            let mut out_start = None;
            for (seq, text) in since.chunks {
                self.seq = seq;
                let chunk_start = self.pos;
                self.pos += text.len();
                if self.pos > self.start {
                    let skip = self.start.saturating_sub(chunk_start);
                    out_start.get_or_insert(chunk_start + skip);
                    out.extend_from_slice(&text[skip..]);
                }
            }
            if let Some(at) = out_start {
                self.last_sent = Instant::now();
                return Some(self.frame(&out, at));
            }
            match tokio::time::timeout(poll, self.wake.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tokio::time::sleep(poll).await,
                Err(_) if self.last_sent.elapsed() >= keepalive => {
                    self.last_sent = Instant::now();
                    return Some(if self.sse {
                        Bytes::from_static(b": keep-alive\n\n")
                    } else {
                        Bytes::from_static(b"\0")
                    });
                }
                Err(_) => {}
            }
        }
    }

    fn frame(&self, bytes: &[u8], at: usize) -> Bytes {
        Bytes::from(if self.sse {
            sse_frames(bytes, at)
        } else {
            bytes.to_vec()
        })
    }
}

/// Follows a build's output from byte `start` until it is stored (the build is over), on
/// whichever node the build runs.
fn follow(state: Arc<ServerState>, build_id: String, start: usize, sse: bool) -> Body {
    let follow = Follow {
        wake: state.log_events.subscribe(&build_id),
        state,
        build_id,
        seq: 0,
        pos: 0,
        start,
        sse,
        last_sent: Instant::now(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        f.next()
            .await
            .map(|bytes| (Ok::<_, std::io::Error>(bytes), f))
    });
    Body::from_stream(stream)
}
