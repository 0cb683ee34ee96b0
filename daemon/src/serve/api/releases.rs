//! `/apps/{app}/releases`: list, info, release a slug, roll back.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, ApiResult, Caller, JsonBody, find_app, paginate, reply, views};
use crate::serve::ServerState;
use crate::serve::bodies::CreateRelease;

pub async fn list(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let releases = state.db.releases(app.id.clone()).await?;
    let current = state
        .db
        .current_release(app.id.clone())
        .await?
        .map(|r| r.version);
    paginate(
        &headers,
        &["version", "id", "created_at"],
        releases,
        |r, field| match field {
            "id" => r.id.clone(),
            "created_at" => r.created_at.clone(),
            _ => r.version.to_string(),
        },
        |r| views::release(r, &app, current),
    )
}

pub async fn info(
    State(state): State<Arc<ServerState>>,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let release = state
        .db
        .release(app.id.clone(), key)
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    let current = state
        .db
        .current_release(app.id.clone())
        .await?
        .map(|r| r.version);
    reply(StatusCode::OK, views::release(&release, &app, current))
}

pub async fn create(
    State(state): State<Arc<ServerState>>,
    Caller(user): Caller,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<CreateRelease>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let release = match (body.slug, body.release) {
        (Some(slug_id), None) => {
            let slug = state
                .db
                .slug(slug_id)
                .await?
                .ok_or_else(|| ApiError::invalid("Couldn't find that slug."))?;
            if slug.blob_sha.is_none() {
                return Err(ApiError::invalid(
                    "That slug has no blob yet: upload it to the slug's blob URL first.",
                ));
            }
            let description = body.description.unwrap_or_else(|| match &slug.commit {
                Some(commit) => format!("Deploy {}", &commit[..commit.len().min(8)]),
                None => "Deploy".to_string(),
            });
            state
                .db
                .create_release(app.id.clone(), Some(slug.id), description, user.id, None)
                .await?
        }
        (None, Some(key)) => {
            let target = state
                .db
                .release(app.id.clone(), key)
                .await?
                .ok_or_else(|| ApiError::invalid("Couldn't find that release."))?;
            if target.slug_id.is_none() {
                return Err(ApiError::invalid(format!(
                    "Release v{} has no slug to roll back to.",
                    target.version
                )));
            }
            let description = body
                .description
                .unwrap_or_else(|| format!("Rollback to v{}", target.version));
            state
                .db
                .create_release(
                    app.id.clone(),
                    target.slug_id,
                    description,
                    user.id,
                    Some(target.config),
                )
                .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "Give either slug (to release it) or release (to roll back to it).",
            ));
        }
    };
    reply(
        StatusCode::CREATED,
        views::release(&release, &app, Some(release.version)),
    )
}
