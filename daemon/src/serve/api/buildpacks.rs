//! `/buildpacks` (ext): upload, list, show and delete buildpack components.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{ApiError, ApiResult, reply, views};
use crate::serve::ServerState;
use crate::serve::db::{BuildpackRow, now};
use crate::serve::registry::Entry;

pub async fn list(State(state): State<Arc<ServerState>>) -> ApiResult {
    state.sync_buildpacks(false).await?;
    let all: Vec<_> = state.registry.list().iter().map(views::buildpack).collect();
    reply(StatusCode::OK, serde_json::json!(all))
}

pub async fn info(State(state): State<Arc<ServerState>>, Path(name): Path<String>) -> ApiResult {
    state.sync_buildpacks(false).await?;
    let entry = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found("buildpack"))?;
    reply(StatusCode::OK, views::buildpack(&entry))
}

#[derive(Deserialize)]
pub struct Named {
    name: Option<String>,
}

/// Names use the same alphabet as component ids: they name cache directories.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
        && !name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
}

/// The body is the `.wasm` component; `?name=` or a `Buildpack-Name` header names it (default:
/// the component's own id). It is compiled and asked for its info before it is accepted.
pub async fn create(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<Named>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (sha, _) = state
        .blobs
        .put_stream(
            body,
            state.config.max_upload.min(state.config.max_buildpack_size),
        )
        .await
        .map_err(|e| match e {
            crate::serve::blobs::UploadError::TooLarge(limit) => ApiError::too_large(format!(
                "Buildpack is larger than the limit of {} (--max-buildpack-size).",
                buildd_runtime::human(limit)
            )),
            crate::serve::blobs::UploadError::Other(e) => e.into(),
        })?;
    let wasm = tokio::fs::read(state.blobs.local(&sha).await.map_err(anyhow::Error::from)?)
        .await
        .map_err(anyhow::Error::from)?;
    // Cranelift cannot be interrupted: past the limit the compile goes on in its thread, but
    // the upload is refused and nothing is installed.
    let limit = state.config.compile_timeout;
    let buildpack = tokio::time::timeout(limit, state.runtime.load(&wasm))
        .await
        .map_err(|_| {
            ApiError::invalid(format!(
                "Not a usable buildpack component: compiling it took longer than the limit of \
                 {}s (--buildpack-compile-timeout).",
                limit.as_secs_f64()
            ))
        })?
        .map_err(|e| ApiError::invalid(format!("Not a usable buildpack component: {e:#}")))?;
    let name = query
        .name
        .or_else(|| {
            headers
                .get("buildpack-name")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| buildpack.info().id.clone());
    if !valid_name(&name) {
        return Err(ApiError::invalid(format!(
            "Buildpack name {name:?} must be lowercase letters, digits, '.', '_', '-' and '/'."
        )));
    }
    state.sync_buildpacks(false).await?;
    if state.registry.get(&name).is_some() {
        return Err(ApiError::conflict(format!(
            "A buildpack named {name} is already installed."
        )));
    }
    let created_at = now();
    if !state
        .db
        .add_buildpack(BuildpackRow {
            name: name.clone(),
            blob_sha: sha,
            created_at: created_at.clone(),
        })
        .await?
    {
        return Err(ApiError::conflict(format!(
            "A buildpack named {name} is already installed."
        )));
    }
    let entry = Entry {
        name,
        alias: None,
        buildpack,
        builtin: false,
        created_at,
    };
    state.registry.add(entry.clone());
    reply(StatusCode::CREATED, views::buildpack(&entry))
}

pub async fn delete(State(state): State<Arc<ServerState>>, Path(name): Path<String>) -> ApiResult {
    state.sync_buildpacks(false).await?;
    let entry = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found("buildpack"))?;
    if entry.builtin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} is built into this server and cannot be deleted.",
                entry.name
            ),
        ));
    }
    state.registry.remove(&entry.name);
    state.db.remove_buildpack(entry.name.clone()).await?;
    reply(StatusCode::OK, views::buildpack(&entry))
}
