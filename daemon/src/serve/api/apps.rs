//! `/apps`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, ApiResult, Caller, JsonBody, find_app, paginate, reply, views};
use crate::serve::ServerState;
use crate::serve::bodies::{CreateApp, UpdateApp};

/// `^[a-z][a-z0-9-]{1,28}[a-z0-9]$`, as Heroku.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub async fn create(
    State(state): State<Arc<ServerState>>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<CreateApp>,
) -> ApiResult {
    let name = match body.name {
        Some(name) if valid_name(&name) => name,
        Some(name) => {
            return Err(ApiError::invalid(format!(
                "Name {name:?} must start with a letter, end with a letter or digit, and contain only \
                 lowercase letters, digits and dashes (3 to 30 characters)."
            )));
        }
        None => format!("app-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    if let Some(stack) = &body.stack
        && stack != buildd_runtime::STACK
        && stack != views::STACK_ID
    {
        return Err(ApiError::invalid(format!(
            "Stack {stack:?} is not available; use {}.",
            buildd_runtime::STACK
        )));
    }
    match state
        .db
        .create_app(name, buildd_runtime::STACK.to_string(), user)
        .await?
    {
        Ok(app) => reply(StatusCode::CREATED, views::app(&app)),
        Err(conflict) => Err(ApiError::invalid(conflict.to_string())),
    }
}

pub async fn list(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> ApiResult {
    let apps = state.db.apps().await?;
    paginate(
        &headers,
        &["id", "name", "created_at", "updated_at"],
        apps,
        |a, field| match field {
            "name" => a.name.clone(),
            "created_at" => a.created_at.clone(),
            "updated_at" => a.updated_at.clone(),
            _ => a.id.clone(),
        },
        views::app,
    )
}

/// An empty list, for resources of a known app that buildd does not have.
pub async fn none(State(state): State<Arc<ServerState>>, Path(app): Path<String>) -> ApiResult {
    find_app(&state, &app).await?;
    reply(StatusCode::OK, serde_json::json!([]))
}

pub async fn info(State(state): State<Arc<ServerState>>, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, views::app(&find_app(&state, &app).await?))
}

pub async fn update(
    State(state): State<Arc<ServerState>>,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<UpdateApp>,
) -> ApiResult {
    let app = find_app(&state, &app).await?;
    if let Some(name) = &body.name
        && !valid_name(name)
    {
        return Err(ApiError::invalid(format!(
            "Name {name:?} is not a valid app name."
        )));
    }
    match state
        .db
        .update_app(app.id, body.name, body.maintenance)
        .await?
    {
        Ok(app) => reply(StatusCode::OK, views::app(&app)),
        Err(conflict) => Err(ApiError::invalid(conflict.to_string())),
    }
}

pub async fn destroy(State(state): State<Arc<ServerState>>, Path(app): Path<String>) -> ApiResult {
    let app = find_app(&state, &app).await?;
    state.queue.cancel_app(&app.id).await;
    state.db.delete_app(app.id.clone()).await?;
    if let Err(err) = state.build_caches.purge(&app.id).await {
        tracing::warn!(app = %app.id, "deleting the build cache: {err:#}");
    }
    reply(StatusCode::OK, views::app(&app))
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_follow_heroku() {
        for ok in ["abc", "my-app-1", "a1b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["ab", "1abc", "abc-", "ABC", "a_b", &"a".repeat(31)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
