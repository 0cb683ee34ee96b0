//! The HTTP API: Heroku Platform API v3 paths, fields, status codes, headers and errors.

mod apps;
mod blobs;
mod buildpacks;
mod builds;
mod config;
pub mod error;
mod meta;
mod releases;
mod slugs;
mod streams;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::ServerState;
use super::db::User;
pub use error::{ApiError, ApiResult};

/// The routes, with request ids, Accept checks and auth.
pub fn router(state: Arc<ServerState>) -> Router {
    let authed = Router::new()
        .route("/apps", get(apps::list).post(apps::create))
        .route(
            "/apps/{app}",
            get(apps::info).patch(apps::update).delete(apps::destroy),
        )
        .route("/apps/{app}/builds", get(builds::list).post(builds::create))
        .route(
            "/apps/{app}/builds/{build}",
            get(builds::info).delete(builds::cancel),
        )
        .route("/apps/{app}/builds/{build}/result", get(builds::result))
        .route("/apps/{app}/build-cache", delete(builds::purge_cache))
        .route(
            "/apps/{app}/config-vars",
            get(config::get).patch(config::patch),
        )
        .route(
            "/apps/{app}/releases",
            get(releases::list).post(releases::create),
        )
        .route("/apps/{app}/releases/{release}", get(releases::info))
        .route(
            "/apps/{app}/releases/{release}/config-vars",
            get(config::of_release),
        )
        .route("/apps/{app}/slugs", post(slugs::create))
        .route("/apps/{app}/slugs/{slug}", get(slugs::info))
        .route(
            "/apps/{app}/buildpack-installations",
            get(config::installations).put(config::set_installations),
        )
        .route("/sources", post(blobs::create_source))
        .route(
            "/buildpacks",
            get(buildpacks::list).post(buildpacks::create),
        )
        .route(
            "/buildpacks/{*name}",
            get(buildpacks::info).delete(buildpacks::delete),
        )
        .route("/account", get(meta::account))
        .route("/users/{user}/apps", get(apps::list))
        // buildd has no add-ons, collaborators or dynos: these lists are truly empty, and the
        // Heroku CLI asks for them in `apps:info`.
        .route("/apps/{app}/addons", get(apps::none))
        .route("/apps/{app}/collaborators", get(apps::none))
        .route("/apps/{app}/dynos", get(apps::none))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let open = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/schema", get(meta::schema))
        .route("/streams/{secret}", get(streams::stream))
        .route(
            "/blobs/sources/{secret}",
            put(blobs::put_source).get(blobs::get_source),
        )
        .route(
            "/blobs/slugs/{secret}",
            put(blobs::put_slug).get(blobs::get_slug),
        );
    authed
        .merge(open)
        .fallback(|| async { ApiError::not_found("resource") })
        .layer(middleware::from_fn(heroku_headers))
        .with_state(state)
}

/// Request-Id, RateLimit-Remaining, JSON content type, and the `version=3` Accept check.
async fn heroku_headers(request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("request", id = %request_id, method = %request.method(), path = %request.uri().path());
    let accept = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut response = match accept_error(accept) {
        Some(err) => err.into_response(),
        None => next.run(request).instrument(span.clone()).await,
    };
    let headers = response.headers_mut();
    headers.insert("request-id", HeaderValue::from_str(&request_id).unwrap());
    headers.insert("ratelimit-remaining", HeaderValue::from_static("4500"));
    if !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    tracing::info!(parent: &span, status = response.status().as_u16(), "answered");
    response
}

/// Clients send `application/vnd.heroku+json; version=3` (or `3.sdk`, `3.cancel-build`, ...);
/// other versions get 406.
fn accept_error(accept: &str) -> Option<ApiError> {
    for part in accept.split(',') {
        let part = part.trim();
        if !part.starts_with("application/vnd.heroku+json") {
            continue;
        }
        let version = part
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("version="))
            .next()
            .unwrap_or("3");
        if version == "3" || version.starts_with("3.") {
            return None;
        }
        return Some(ApiError::not_acceptable(format!(
            "Unsupported API version {version:?}: this server speaks version=3."
        )));
    }
    None
}

/// The token in `Authorization`: `Bearer TOKEN`, or Basic with the token as the password.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_string()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (_, password) = text.split_once(':')?;
            Some(password.to_string())
        }
        _ => None,
    }
}

/// How tokens are stored: sha256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn authenticate(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(request.headers()) else {
        return ApiError::unauthorized().into_response();
    };
    match state.db.user_for_token(token_hash(&token)).await {
        Ok(Some(user)) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The authenticated user, put there by [`authenticate`].
pub struct Caller(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<User>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The URL clients reached us at (`--public-url`, else the Host header), for the URLs we hand out.
pub struct BaseUrl(pub String);

impl FromRequestParts<Arc<ServerState>> for BaseUrl {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, ApiError> {
        if let Some(url) = &state.config.public_url {
            return Ok(BaseUrl(url.trim_end_matches('/').to_string()));
        }
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        Ok(BaseUrl(format!("http://{host}")))
    }
}

/// A JSON body, with Heroku's errors for a body that is not JSON (400) or the wrong shape (422).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large("Request body is too large.")
                } else {
                    ApiError::bad_request(format!("Could not read the request body: {e}"))
                }
            })?;
        crate::serve::bodies::decode(&bytes)
            .map(JsonBody)
            .map_err(|e| match e {
                crate::serve::bodies::BodyError::NotJson(_) => ApiError::bad_request(e.to_string()),
                crate::serve::bodies::BodyError::Invalid(_) => ApiError::invalid(e.to_string()),
            })
    }
}

/// Looks up the app in the path (by id or name) or answers 404.
pub async fn find_app(state: &ServerState, key: &str) -> ApiResult<super::db::App> {
    state
        .db
        .app(key.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("app"))
}

/// A list answer: 200 with the whole list, or 206 with a `Next-Range` when more remain.
pub fn paginate<T>(
    headers: &HeaderMap,
    fields: &[&str],
    items: Vec<T>,
    key: impl Fn(&T, &str) -> String,
    view: impl Fn(&T) -> serde_json::Value,
) -> ApiResult {
    let header = headers.get("range").and_then(|v| v.to_str().ok());
    let range = super::range::Range::parse(header, fields).map_err(|e| ApiError::range(e.0))?;
    let field = range.field.clone();
    let (page, next) = range.apply(items, |item| key(item, &field));
    let body: Vec<serde_json::Value> = page.iter().map(&view).collect();
    let first = page.first().map(|i| key(i, &field)).unwrap_or_default();
    let last = page.last().map(|i| key(i, &field)).unwrap_or_default();
    let status = if next.is_some() {
        axum::http::StatusCode::PARTIAL_CONTENT
    } else {
        axum::http::StatusCode::OK
    };
    let mut response = (status, axum::Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        "accept-ranges",
        HeaderValue::from_str(&fields.join(", ")).unwrap(),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{field} {first}..{last}; max={}", range.max)) {
        h.insert("content-range", v);
    }
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert("next-range", next);
    }
    Ok(response)
}

/// Answers `value` as JSON with `status`.
pub fn reply(status: axum::http::StatusCode, value: serde_json::Value) -> ApiResult {
    Ok((status, axum::Json(value)).into_response())
}
