//! Default process types.

use std::path::Path;

use crate::package::PackageJson;

/// The default `web` command: the package's `scripts.start` as written (the `.profile.d` script
/// puts `node` and `node_modules/.bin` on PATH), else `node server.js` when there is a
/// `server.js` (what `npm start` does then). None when the app has a Procfile, which decides.
pub fn web_command(app: &Path, package: &PackageJson) -> Option<String> {
    if app.join("Procfile").is_file() {
        return None;
    }
    match package.script("start") {
        Some(start) => Some(start.trim().to_string()),
        None if app.join("server.js").is_file() => Some("node server.js".to_string()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(json: &str) -> PackageJson {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn start_script_then_server_js_and_procfile_wins() {
        let app = tempfile::tempdir().unwrap();
        let start = package(r#"{"scripts": {"start": "node index.js --port $PORT"}}"#);
        assert_eq!(
            web_command(app.path(), &start).as_deref(),
            Some("node index.js --port $PORT")
        );
        assert_eq!(web_command(app.path(), &package("{}")), None);
        std::fs::write(app.path().join("server.js"), "").unwrap();
        assert_eq!(
            web_command(app.path(), &package("{}")).as_deref(),
            Some("node server.js")
        );
        std::fs::write(app.path().join("Procfile"), "web: node x.js\n").unwrap();
        assert_eq!(web_command(app.path(), &start), None);
    }
}
