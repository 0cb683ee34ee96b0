//! Upload and download URLs: `POST /sources` hands out a `put_url` and a `get_url`; slugs have a
//! blob URL. The URLs are capabilities (unguessable), used without auth, like signed S3 URLs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::{ApiError, ApiResult, BaseUrl, reply};
use crate::serve::ServerState;
use crate::serve::blobs::{BlobError, UploadError};

pub async fn create_source(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
) -> ApiResult {
    let ttl =
        chrono::Duration::from_std(state.config.source_ttl).unwrap_or(chrono::Duration::hours(1));
    let expires = (chrono::Utc::now() + ttl)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let slot = state.db.create_source(expires).await?;
    reply(
        StatusCode::CREATED,
        json!({ "source_blob": {
            "get_url": format!("{base}/blobs/sources/{}", slot.get_secret),
            "put_url": format!("{base}/blobs/sources/{}", slot.put_secret),
        }}),
    )
}

/// Stores an upload body in the blob store, counted in the metrics; returns sha256 and size.
async fn receive(state: &ServerState, body: Body) -> ApiResult<(String, u64)> {
    let (sha, size) = state
        .blobs
        .put_stream(body, state.config.max_upload)
        .await
        .map_err(upload_error)?;
    state.metrics.bytes_in(size);
    Ok((sha, size))
}

/// What a PUT to an upload URL answers, as S3 does: 200 and no body.
fn uploaded() -> ApiResult {
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "",
    )
        .into_response())
}

fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::TooLarge(limit) => {
            ApiError::too_large(format!("Upload is larger than the limit of {limit} bytes."))
        }
        UploadError::Other(e) => e.into(),
    }
}

pub async fn put_source(
    State(state): State<Arc<ServerState>>,
    Path(secret): Path<String>,
    body: Body,
) -> ApiResult {
    let slot = state
        .db
        .source_by_secret(secret.clone())
        .await?
        .filter(|s| s.put_secret == secret && s.expires_at > crate::serve::db::now())
        .ok_or_else(|| ApiError::not_found("upload URL"))?;
    let (sha, _) = receive(&state, body).await?;
    state.db.set_source_blob(slot.id, sha).await?;
    uploaded()
}

pub async fn get_source(
    State(state): State<Arc<ServerState>>,
    Path(secret): Path<String>,
) -> ApiResult {
    let slot = state
        .db
        .source_by_secret(secret.clone())
        .await?
        .filter(|s| s.get_secret == secret && s.expires_at > crate::serve::db::now())
        .ok_or_else(|| ApiError::not_found("source"))?;
    let sha = slot
        .blob_sha
        .ok_or_else(|| ApiError::not_found("source (nothing was uploaded)"))?;
    file_response(&state, &sha).await
}

pub async fn put_slug(
    State(state): State<Arc<ServerState>>,
    Path(secret): Path<String>,
    body: Body,
) -> ApiResult {
    let slug = state
        .db
        .slug_by_secret(secret)
        .await?
        .ok_or_else(|| ApiError::not_found("slug"))?;
    if slug.blob_sha.is_some() {
        return Err(ApiError::conflict("This slug's blob was already uploaded."));
    }
    let (sha, size) = receive(&state, body).await?;
    if let Some(expected) = &slug.checksum
        && !expected.eq_ignore_ascii_case(&format!("SHA256:{sha}"))
    {
        return Err(ApiError::invalid(format!(
            "Uploaded blob has checksum SHA256:{sha}, the slug says {expected}."
        )));
    }
    state.db.set_slug_blob(slug.id, sha, size as i64).await?;
    uploaded()
}

pub async fn get_slug(
    State(state): State<Arc<ServerState>>,
    Path(secret): Path<String>,
) -> ApiResult {
    let slug = state
        .db
        .slug_by_secret(secret)
        .await?
        .ok_or_else(|| ApiError::not_found("slug"))?;
    let sha = slug
        .blob_sha
        .ok_or_else(|| ApiError::not_found("slug blob (nothing was uploaded)"))?;
    file_response(&state, &sha).await
}

/// Streams a blob as `application/octet-stream` (from this node's copy, fetched first if need be).
async fn file_response(state: &ServerState, sha: &str) -> ApiResult {
    let path = state.blobs.local(sha).await.map_err(|e| match e {
        BlobError::NotFound(_) => ApiError::not_found("blob"),
        BlobError::Other(e) => e.into(),
    })?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("blob"))?;
    let len = file.metadata().await.map_err(anyhow::Error::from)?.len();
    state.metrics.bytes_out(len);
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(stream))
        .unwrap())
}
