//! `output_stream_url`: a build's output, live while it runs and whole afterwards.
//!
//! The URL is the capability (no auth). `text/plain` by default, resumable with
//! `Range: bytes=N-` (or `N-`); `Accept: text/event-stream` gives SSE frames whose ids are byte
//! offsets, resumable with `Last-Event-Id`. A NUL byte (an SSE comment) goes out every 10 s of
//! silence so clients keep the connection; EOF comes only once the build's status is final.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{ApiError, ApiResult};
use crate::serve::ServerState;
use crate::serve::logs::LiveLog;

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

    let body = match state.logs.get(&build.id) {
        Some(live) => follow(live, start, sse, state.config.keepalive),
        None => {
            let text = state
                .db
                .log(build.id)
                .await?
                .map(|(text, _)| text)
                .unwrap_or_default();
            if start > 0 && start >= text.len() {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
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

/// Follows a live log from `start` until the build is over.
fn follow(live: Arc<LiveLog>, start: usize, sse: bool, keepalive: Duration) -> Body {
    let rx = live.subscribe();
    let stream = futures_util::stream::unfold(
        (live, rx, start, false),
        move |(live, mut rx, at, ended)| async move {
            if ended {
                return None;
            }
            loop {
                rx.borrow_and_update();
                let (chunk, done) = live.read_from(at);
                if !chunk.is_empty() {
                    let bytes = if sse {
                        sse_frames(&chunk, at)
                    } else {
                        chunk.clone()
                    };
                    let next = at + chunk.len();
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(bytes)),
                        (live, rx, next, false),
                    ));
                }
                if done {
                    return None;
                }
                match tokio::time::timeout(keepalive, rx.changed()).await {
                    Err(_) => {
                        let ping = if sse {
                            Bytes::from_static(b": keep-alive\n\n")
                        } else {
                            Bytes::from_static(b"\0")
                        };
                        return Some((Ok(ping), (live, rx, at, false)));
                    }
                    // The log went away: whatever it held has been read.
                    Ok(Err(_)) => return None,
                    Ok(Ok(())) => continue,
                }
            }
        },
    );
    Body::from_stream(stream)
}
