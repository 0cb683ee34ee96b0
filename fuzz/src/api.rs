//! The API request target: bytes as a `Range` header (parsed, then applied to a list whose keys
//! also come from the bytes) and as each JSON body the API takes. Nothing may panic, a parsed
//! range must be within bounds, and a `Next-Range` it produces must parse again.

use super::bodies::{self, BodyError};
use super::range::{LIMIT_MAX, Range};

const FIELDS: [&str; 3] = ["id", "name", "version"];

/// Checks one input.
pub fn check(data: &[u8]) {
    check_range(data);
    check_bodies(data);
}

fn check_range(data: &[u8]) {
    // The first line is the header; the rest are the list's keys.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or("");
    let keys: Vec<String> = lines.take(64).map(str::to_string).collect();
    let Ok(range) = Range::parse(Some(header), &FIELDS) else {
        return;
    };
    assert!(FIELDS.contains(&range.field.as_str()));
    assert!((1..=LIMIT_MAX).contains(&range.max));
    let (page, next) = range.apply(keys.clone(), |k| k.clone());
    assert!(page.len() <= range.max);
    assert!(page.iter().all(|k| keys.contains(k)));
    let plain = |k: &String| {
        k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
    };
    if let Some(next) = next
        && keys.iter().all(plain)
    {
        let again = Range::parse(Some(&next), &FIELDS)
            .unwrap_or_else(|e| panic!("Next-Range {next:?} does not parse: {e}"));
        assert_eq!((again.max, again.descending), (range.max, range.descending));
    }
}

fn check_bodies(data: &[u8]) {
    let not_json = serde_json::from_slice::<serde_json::Value>(data).is_err()
        && !data.iter().all(u8::is_ascii_whitespace);
    let kind = |r: Result<(), BodyError>| match r {
        Err(BodyError::NotJson(_)) => assert!(not_json, "valid JSON called invalid"),
        Err(BodyError::Invalid(_)) | Ok(()) => assert!(!not_json, "invalid JSON accepted"),
    };
    kind(bodies::decode::<bodies::CreateApp>(data).map(drop));
    kind(bodies::decode::<bodies::UpdateApp>(data).map(drop));
    kind(bodies::decode::<bodies::CreateBuild>(data).map(drop));
    kind(bodies::decode::<bodies::SetInstallations>(data).map(drop));
    kind(bodies::decode::<bodies::CreateRelease>(data).map(drop));
    kind(bodies::decode::<bodies::CreateSlug>(data).map(drop));
    kind(bodies::decode::<bodies::ConfigPatch>(data).map(|patch| {
        if let Ok(valid) = bodies::config_patch(patch) {
            assert!(valid.keys().all(|k| !k.is_empty()));
        }
    }));
}

/// Starting inputs: the header forms clients send and a body of each kind.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("range-next", "version ]2..; max=2, order=asc\n1\n2\n3\n10\n"),
        ("range-desc", "id ..; max=15, order=desc\nb\na\nc"),
        ("range-bounds", "name a..c\na\nb\nc\nd"),
        ("app", r#"{"name":"my-app","stack":"buildd-1","region":"us"}"#),
        ("build", r#"{"source_blob":{"url":"https://example.invalid/a.tgz","checksum":"SHA256:00","version":"v1"},"buildpacks":[{"url":"static"},{"name":"procfile"}],"release":false}"#),
        ("config", r#"{"A":"1","B":null,"C":2,"D":true}"#),
        ("installations", r#"{"updates":[{"buildpack":"static"}]}"#),
        ("release", r#"{"slug":"0","description":"d"}"#),
        ("slug", r#"{"process_types":{"web":"./run"},"commit":"abc","stack":"buildd-1"}"#),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s.as_bytes().to_vec()))
    .collect()
}

/// Replays the seeds and every minimized crash kept in `fuzz/regressions/{target}` (and the local
/// corpus, when a fuzz run left one), so `cargo test` holds what fuzzing found.
#[cfg(test)]
mod replay {
    const TARGET: &str = "api_request";

    fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
        let mut all = super::seeds();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        for dir in ["regressions", "corpus"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.path().display().to_string();
                all.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
        all
    }

    #[test]
    fn seeds_and_regressions_replay_cleanly() {
        let inputs = inputs(TARGET);
        assert!(inputs.len() >= 9);
        for (name, data) in inputs {
            let outcome = std::panic::catch_unwind(|| super::check(&data));
            assert!(outcome.is_ok(), "{TARGET}: {name} fails");
        }
    }
}
