//! Files the host itself reads from the (untrusted) app dir: `Procfile` and `.slugignore`.
//!
//! Read through the app's `cap_std::fs::Dir` (no lookup leaves it), from regular files only
//! (a FIFO would block the host), with a size cap.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use cap_std::fs::Dir;
use ignore::gitignore::GitignoreBuilder;

/// Largest Procfile or .slugignore read.
const MAX_SIZE: u64 = 256 * 1024;

/// Reads a small regular file at the app root; `Ok(None)` when there is none.
fn read_small(app: &Dir, name: &str) -> Result<Option<String>, String> {
    match app.symlink_metadata(name) {
        Err(_) => return Ok(None),
        Ok(m) if !(m.is_file() || m.file_type().is_symlink()) => {
            return Err(format!("{name} is not a regular file"));
        }
        Ok(_) => {}
    }
    let file = app.open(name).map_err(|e| format!("{name}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name} is not a regular file"));
    }
    if meta.len() > MAX_SIZE {
        return Err(format!("{name} is larger than {MAX_SIZE} bytes"));
    }
    let mut text = String::new();
    file.take(MAX_SIZE)
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Some(text))
}

/// The app's `Procfile`, parsed; `Ok(None)` when the app has none.
pub(crate) fn procfile(app: &Dir) -> Result<Option<BTreeMap<String, String>>, String> {
    let Some(text) = read_small(app, "Procfile")? else {
        return Ok(None);
    };
    let mut types = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = line.split_once(':').map(|(n, c)| (n.trim(), c.trim()));
        match entry {
            Some((name, command))
                if !name.is_empty()
                    && !command.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                types.insert(name.to_string(), command.to_string());
            }
            _ => {
                return Err(format!(
                    "Procfile line {} is not `name: command`: {line:?}",
                    number + 1
                ));
            }
        }
    }
    Ok(Some(types))
}

/// Removes what the app's `.slugignore` lists (gitignore syntax), before any buildpack runs,
/// as Heroku does. Returns how many paths were removed.
pub(crate) fn apply_slugignore(app: &Dir) -> Result<usize, String> {
    let Some(text) = read_small(app, ".slugignore")? else {
        return Ok(0);
    };
    let mut builder = GitignoreBuilder::new("/");
    for line in text.lines() {
        builder
            .add_line(None, line)
            .map_err(|e| format!(".slugignore: {e}"))?;
    }
    let rules = builder.build().map_err(|e| format!(".slugignore: {e}"))?;
    let mut doomed = Vec::new();
    collect(app, Path::new(""), &rules, &mut doomed).map_err(|e| format!(".slugignore: {e}"))?;
    for (path, is_dir) in &doomed {
        let removed = if *is_dir {
            app.remove_dir_all(path)
        } else {
            app.remove_file(path)
        };
        removed.map_err(|e| format!(".slugignore: removing {}: {e}", path.display()))?;
    }
    Ok(doomed.len())
}

fn collect(
    dir: &Dir,
    rel: &Path,
    rules: &ignore::gitignore::Gitignore,
    doomed: &mut Vec<(std::path::PathBuf, bool)>,
) -> std::io::Result<()> {
    for entry in dir.entries()? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        let is_dir = kind.is_dir();
        if rules
            .matched(Path::new("/").join(&path), is_dir)
            .is_ignore()
        {
            doomed.push((path, is_dir));
        } else if is_dir {
            collect(&entry.open_dir()?, &path, rules, doomed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn procfile_parses_and_names_bad_lines() {
        let (tmp, dir) = app();
        assert_eq!(procfile(&dir), Ok(None));
        std::fs::write(
            tmp.path().join("Procfile"),
            "web: bin/web\n# x\nworker: run\n",
        )
        .unwrap();
        let types = procfile(&dir).unwrap().unwrap();
        assert_eq!(types["web"], "bin/web");
        assert_eq!(types.len(), 2);
        std::fs::write(tmp.path().join("Procfile"), "web bin/web\n").unwrap();
        assert!(procfile(&dir).unwrap_err().contains("line 1"));
    }

    #[test]
    fn procfile_symlink_out_of_the_app_is_not_followed() {
        let (tmp, dir) = app();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("Procfile")).unwrap();
        assert!(procfile(&dir).is_err());
    }

    #[test]
    fn slugignore_removes_matches_anywhere_and_anchored() {
        let (tmp, dir) = app();
        for f in [
            "a.log",
            "src/b.log",
            "docs/x.md",
            "keep.txt",
            "src/docs/y.md",
        ] {
            let p = tmp.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        std::fs::write(tmp.path().join(".slugignore"), "*.log\n/docs\n").unwrap();
        assert_eq!(apply_slugignore(&dir).unwrap(), 3);
        assert!(!tmp.path().join("src/b.log").exists());
        assert!(!tmp.path().join("docs").exists());
        assert!(tmp.path().join("src/docs/y.md").exists());
        assert!(tmp.path().join("keep.txt").exists());
    }
}
