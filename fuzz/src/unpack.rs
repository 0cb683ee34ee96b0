//! The unpack target: bytes become an archive file, `buildd_runtime::fetch_source` unpacks it into
//! `work/`, and nothing may appear outside `work/` nor any link there lead out of it.

use std::path::{Component, Path, PathBuf};

use buildd_runtime::{Source, SourceLimits};

/// Small limits so one input costs milliseconds, not seconds.
fn limits() -> SourceLimits {
    SourceLimits {
        download_bytes: 1 << 20,
        unpacked_bytes: 8 << 20,
        entries: 2_000,
        path_len: 1_024,
        depth: 32,
        ..SourceLimits::default()
    }
}

/// Runs `data` through the unpacker as given (a plain tar, or gzip when it starts like one) and
/// gzipped, and panics if anything escaped.
pub fn check(data: &[u8]) {
    unpack_and_verify(data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, data).unwrap();
    unpack_and_verify(&gz.finish().unwrap());
}

/// Unpacks one archive in a fresh directory and checks the invariants.
pub fn unpack_and_verify(archive: &[u8]) {
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let outer = base.path().canonicalize().unwrap();
    let (input, work, sentinel) = (
        outer.join("input.tgz"),
        outer.join("work"),
        outer.join("sentinel"),
    );
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(&input, archive).unwrap();

    let result =
        buildd_runtime::fetch_source(&Source::Archive(input.clone()), None, &work, &limits());

    let mut names: Vec<_> = std::fs::read_dir(&outer)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["input.tgz", "sentinel", "work"],
        "written outside work/"
    );
    assert_eq!(
        std::fs::read_dir(&sentinel).unwrap().count(),
        0,
        "wrote into a sibling"
    );
    assert_eq!(
        std::fs::read(&input).unwrap(),
        archive,
        "the archive itself changed"
    );
    if let Ok((app_dir, _)) = &result {
        assert!(
            app_dir.starts_with(work.join("source")),
            "app dir {app_dir:?} outside"
        );
    }
    // Links are refused only after everything else is written, so check them on failure too.
    verify_tree(&work, &work);
}

/// Walks `dir` without following links: every link resolves inside `root`, and no file is a
/// device, FIFO or socket, or has setuid/setgid/sticky bits.
fn verify_tree(root: &Path, dir: &Path) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        assert!(
            !(kind.is_block_device()
                || kind.is_char_device()
                || kind.is_fifo()
                || kind.is_socket()),
            "special file {path:?}"
        );
        assert_eq!(
            meta.permissions().mode() & 0o7000,
            0,
            "mode bits on {path:?}"
        );
        if kind.is_symlink() {
            match std::fs::canonicalize(&path) {
                Ok(real) => assert!(real.starts_with(root), "{path:?} resolves to {real:?}"),
                Err(_) => {
                    let target = std::fs::read_link(&path).unwrap();
                    assert!(
                        lexically_inside(root, path.parent().unwrap(), &target),
                        "dangling {path:?} -> {target:?} leads out"
                    );
                }
            }
        } else if kind.is_dir() {
            verify_tree(root, &path);
        }
    }
}

/// Whether `target`, read from `from`, stays under `root` without following links.
fn lexically_inside(root: &Path, from: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut at: PathBuf = from.to_path_buf();
    for part in target.components() {
        match part {
            // The guard pops: a `..` that stays inside has moved up by the time it is false.
            Component::ParentDir if !at.pop() || !at.starts_with(root) => return false,
            Component::Normal(name) => at.push(name),
            _ => {}
        }
    }
    at.starts_with(root)
}

/// Starting inputs: honest archives of each entry kind, and a few known-hostile shapes.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let tar_of = |build: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, body).unwrap();
    };
    let raw = |b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &[u8], link: &[u8]| {
        let mut h = tar::Header::new_old();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o755);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    };
    out.push((
        "files".into(),
        tar_of(&|b| {
            file(b, "app/index.html", b"<h1>hi</h1>");
            file(b, "app/Procfile", b"web: ./run\n");
        }),
    ));
    out.push((
        "links".into(),
        tar_of(&|b| {
            raw(b, tar::EntryType::Directory, b"app/", b"");
            file(b, "app/a", b"a");
            raw(b, tar::EntryType::Symlink, b"app/l", b"a");
            raw(b, tar::EntryType::Link, b"app/h", b"app/a");
        }),
    ));
    out.push((
        "long-name".into(),
        tar_of(&|b| file(b, &format!("d/{}", "n".repeat(300)), b"long")),
    ));
    out.push((
        "pax".into(),
        tar_of(&|b| {
            b.append_pax_extensions([("path", &b"pax/name"[..])])
                .unwrap();
            file(b, "ustar/name", b"x");
        }),
    ));
    out.push((
        "dotdot".into(),
        tar_of(&|b| raw(b, tar::EntryType::Regular, b"../x", b"")),
    ));
    out.push((
        "absolute".into(),
        tar_of(&|b| raw(b, tar::EntryType::Regular, b"/x", b"")),
    ));
    out.push((
        "symlink-escape".into(),
        tar_of(&|b| {
            raw(b, tar::EntryType::Symlink, b"out", b"..");
            raw(b, tar::EntryType::Regular, b"out/x", b"");
        }),
    ));
    out.push((
        "fifo".into(),
        tar_of(&|b| raw(b, tar::EntryType::Fifo, b"f", b"")),
    ));
    out.push(("empty".into(), Vec::new()));
    out.push(("not-an-archive".into(), b"<html>404</html>".to_vec()));
    let gz = |name: &str, data: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, data).unwrap();
        (format!("{name}.gz"), gz.finish().unwrap())
    };
    let gzipped: Vec<_> = out.iter().take(4).map(|(n, d)| gz(n, d)).collect();
    out.extend(gzipped);
    out
}

/// Replays the seeds and every minimized crash kept in `fuzz/regressions/{target}` (and the local
/// corpus, when a fuzz run left one), so `cargo test` holds what fuzzing found.
#[cfg(test)]
mod replay {
    const TARGET: &str = "unpack";

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
