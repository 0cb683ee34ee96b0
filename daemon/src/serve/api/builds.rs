//! `/apps/{app}/builds` and `/apps/{app}/build-cache`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{ApiError, ApiResult, BaseUrl, Caller, JsonBody, find_app, paginate, reply, views};
use crate::serve::ServerState;
use crate::serve::bodies::CreateBuild;
use crate::serve::db::{NewBuild, Status};

/// The app in the path and one of its builds (or `current`), or 404.
async fn find_build(
    state: &ServerState,
    app: &str,
    id: String,
) -> ApiResult<(crate::serve::db::App, crate::serve::db::Build)> {
    let app = find_app(state, app).await?;
    let build = state
        .db
        .build(app.id.clone(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("build"))?;
    Ok((app, build))
}

pub async fn create(
    State(state): State<Arc<ServerState>>,
    Caller(user): Caller,
    BaseUrl(base): BaseUrl,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<CreateBuild>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let blob = body
        .source_blob
        .ok_or_else(|| ApiError::invalid("source_blob is required."))?;
    let url = blob
        .url
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("source_blob.url is required."))?;
    state.check_source_url(&url).map_err(ApiError::invalid)?;
    if let Some(sum) = &blob.checksum {
        sum.parse::<buildd_runtime::Checksum>()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let buildpacks = match body.buildpacks {
        None => None,
        Some(list) => {
            let mut names = Vec::new();
            for bp in list {
                let name = bp
                    .url
                    .or(bp.name)
                    .ok_or_else(|| ApiError::invalid("each buildpack needs a url or a name."))?;
                if state.buildpack(&name).is_none() {
                    return Err(ApiError::invalid(format!("Unknown buildpack {name:?}.")));
                }
                names.push(name);
            }
            (!names.is_empty()).then_some(names)
        }
    };
    let build = state
        .db
        .create_build(NewBuild {
            app_id: app.id,
            source_url: url,
            source_checksum: blob.checksum,
            source_version: blob.version,
            source_version_description: blob.version_description,
            buildpacks,
            release: body.release.unwrap_or(true),
            user_id: user.id,
        })
        .await?;
    state.queue.wake();
    reply(StatusCode::CREATED, views::build(&build, &base))
}

pub async fn info(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult {
    let (_, build) = find_build(&state, &app, id).await?;
    reply(StatusCode::OK, views::build(&build, &base))
}

pub async fn list(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    let builds = state.db.builds(app.id).await?;
    paginate(
        &headers,
        &["id", "created_at", "updated_at"],
        builds,
        |b, field| match field {
            "id" => b.id.clone(),
            "updated_at" => b.updated_at.clone(),
            _ => b.created_at.clone(),
        },
        |b| views::build(b, &base),
    )
}

pub async fn cancel(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult {
    let (app, build) = find_build(&state, &app, id).await?;
    if build.status != Status::Pending {
        return Err(ApiError::conflict(format!(
            "Build {} already {}.",
            build.id,
            build.status.as_str()
        )));
    }
    state
        .queue
        .cancel(&state, &build.id, "Build cancelled.")
        .await?;
    let build = state
        .db
        .build(app.id, build.id)
        .await?
        .ok_or_else(|| ApiError::not_found("build"))?;
    reply(StatusCode::OK, views::build(&build, &base))
}

pub async fn result(
    State(state): State<Arc<ServerState>>,
    BaseUrl(base): BaseUrl,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult {
    let (_, build) = find_build(&state, &app, id).await?;
    let lines = state.db.log_lines(build.id.clone()).await?;
    reply(
        StatusCode::OK,
        json!({
            "build": {
                "id": build.id,
                "status": build.status.as_str(),
                "output_stream_url": format!("{base}/streams/{}", build.output_secret),
            },
            "exit_code": views::exit_code(build.status),
            "lines": lines,
        }),
    )
}

pub async fn purge_cache(
    State(state): State<Arc<ServerState>>,
    Path(app): Path<String>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    state.build_caches.purge(&app.id).await?;
    reply(StatusCode::ACCEPTED, json!({}))
}
