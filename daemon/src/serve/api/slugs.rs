//! `/apps/{app}/slugs`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, ApiResult, BaseUrl, JsonBody, find_app, reply, views};
use crate::serve::ServerState;
use crate::serve::bodies::CreateSlug;
use crate::serve::db::{Slug, new_id, new_secret, now};

pub async fn create(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<CreateSlug>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let process_types = body
        .process_types
        .ok_or_else(|| ApiError::invalid("process_types is required."))?;
    for name in process_types.keys() {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(ApiError::invalid(format!(
                "Invalid process type name {name:?}."
            )));
        }
    }
    if let Some(sum) = &body.checksum {
        sum.parse::<buildd_runtime::Checksum>()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    if let Some(stack) = &body.stack
        && stack != buildd_runtime::STACK
        && stack != views::STACK_ID
    {
        return Err(ApiError::invalid(format!(
            "Stack {stack:?} is not available."
        )));
    }
    let ts = now();
    let slug = state
        .db
        .create_slug(Slug {
            id: new_id(),
            app_id: app.id,
            blob_secret: new_secret(),
            blob_sha: None,
            checksum: body.checksum,
            size: None,
            process_types,
            buildpack_description: body.buildpack_provided_description,
            commit: body.commit,
            commit_description: body.commit_description,
            stack: buildd_runtime::STACK.to_string(),
            created_at: ts.clone(),
            updated_at: ts,
        })
        .await?;
    reply(StatusCode::CREATED, views::new_slug(&slug, &base))
}

pub async fn info(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult {
    find_app(&state, &app).await?;
    // Slugs are shared between apps (one slug, many releases), so any slug id answers.
    let slug = state
        .db
        .slug(id)
        .await?
        .ok_or_else(|| ApiError::not_found("slug"))?;
    reply(StatusCode::OK, views::slug(&slug, &base))
}
