//! The JSON shapes of Heroku's schema for each resource.

use serde_json::{Value, json};

use crate::serve::db::{App, Build, Release, Slug, Status, User};

/// buildd runs one stack; ids are fixed so clients can compare them.
pub const STACK_ID: &str = "6b6f6e74-6f6c-4a1f-9a2c-6275696c6464";
pub const REGION_ID: &str = "0b6a6a2e-7b7a-4c36-8f5e-6c6f63616c31";

fn user(u: &User) -> Value {
    json!({ "id": u.id, "email": u.email })
}

fn stack(name: &str) -> Value {
    json!({ "id": STACK_ID, "name": name })
}

pub fn app(a: &App) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "released_at": a.released_at,
        "stack": stack(&a.stack),
        "build_stack": stack(&a.stack),
        "region": { "id": REGION_ID, "name": "local" },
        "owner": user(&a.owner),
        "git_url": format!("https://git.buildd.local/{}.git", a.name),
        "web_url": null,
        "buildpack_provided_description": a.buildpack_description,
        "maintenance": a.maintenance,
        "repo_size": null,
        "slug_size": a.slug_size,
        "organization": null,
        "team": null,
        "space": null,
        "acm": false,
        "archived_at": null,
        "internal_routing": null,
        "generation": { "id": "e3b0c442-98fc-4c14-9afb-f4c8996fb924", "name": "cedar" },
    })
}

/// `buildpacks` of a build: what it asked for (names or URLs).
fn buildpacks(list: &Option<Vec<String>>) -> Value {
    match list {
        None => Value::Null,
        Some(list) => list
            .iter()
            .map(|b| json!({ "url": b, "name": b }))
            .collect(),
    }
}

/// What ran, with each component's digest, once the build succeeded; before that, what the
/// request asked for.
fn build_buildpacks(b: &Build) -> Value {
    match &b.used_buildpacks {
        Some(used) => used
            .iter()
            .map(|u| json!({ "url": u.id, "name": u.id, "digest": u.digest }))
            .collect(),
        None => buildpacks(&b.buildpacks),
    }
}

pub fn build(b: &Build, base: &str) -> Value {
    json!({
        "id": b.id,
        "app": { "id": b.app_id },
        "buildpacks": build_buildpacks(b),
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "output_stream_url": format!("{base}/streams/{}", b.output_secret),
        "release": b.release_id.as_ref().map(|id| json!({ "id": id })),
        "slug": b.slug_id.as_ref().map(|id| json!({ "id": id })),
        "source_blob": {
            "checksum": b.source_checksum,
            "url": b.source_url,
            "version": b.source_version,
            "version_description": b.source_version_description,
        },
        "stack": buildd_runtime::STACK,
        "status": b.status.as_str(),
        "user": user(&b.user),
    })
}

pub fn slug(s: &Slug, base: &str) -> Value {
    json!({
        "id": s.id,
        "blob": { "method": "get", "url": format!("{base}/blobs/slugs/{}", s.blob_secret) },
        "buildpack_provided_description": s.buildpack_description,
        "checksum": s.checksum,
        "commit": s.commit,
        "commit_description": s.commit_description,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "process_types": s.process_types,
        "size": s.size,
        "stack": stack(&s.stack),
    })
}

/// A slug as `POST /apps/{app}/slugs` answers: the blob is where to PUT the tarball.
pub fn new_slug(s: &Slug, base: &str) -> Value {
    let mut v = slug(s, base);
    v["blob"] = json!({ "method": "put", "url": format!("{base}/blobs/slugs/{}", s.blob_secret) });
    v
}

pub fn release(r: &Release, app: &App, current_version: Option<i64>) -> Value {
    json!({
        "id": r.id,
        "version": r.version,
        "status": r.status,
        "current": current_version == Some(r.version),
        "description": r.description,
        "slug": r.slug_id.as_ref().map(|id| json!({ "id": id })),
        "app": { "id": app.id, "name": app.name },
        "user": user(&r.user),
        "addon_plan_names": [],
        "artifacts": r.slug_id.as_ref().map(|id| vec![json!({ "type": "slug", "id": id })]).unwrap_or_default(),
        "output_stream_url": null,
        "eligible_for_rollback": r.slug_id.is_some() && r.status == "succeeded",
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

/// A buildpack as `/buildpacks` shows it.
pub fn buildpack(e: &crate::serve::registry::Entry) -> Value {
    let info = e.buildpack.info();
    json!({
        "id": e.uuid(),
        "name": e.name,
        "component_id": info.id,
        "version": info.version,
        "digest": info.digest,
        "api": info.api,
        "fetch_hosts": info.fetch_hosts,
        "builtin": e.builtin,
        "created_at": e.created_at,
    })
}

/// Exit code a finished build reports in the legacy result.
pub fn exit_code(status: Status) -> Option<i32> {
    match status {
        Status::Pending => None,
        Status::Succeeded => Some(0),
        Status::Failed => Some(1),
    }
}
