//! A corpus of hostile sources, generated here, each fed to the real unpacker: every one must be
//! refused with the entry and the rule named, and nothing may appear outside the build's own
//! directory. A few odd-but-valid archives must unpack safely.

use std::io::Write;
use std::path::Path;

use buildd_runtime::{Source, SourceLimits, fetch_source};
use tar::{EntryType, Header};

/// Named by every escaping entry: finding it outside the app dir is a failure.
const CANARY: &str = "canary-escaped";

/// A header with any short name and link name, bypassing the tar crate's own path checks.
fn raw(name: &[u8], kind: EntryType, size: u64, link: &[u8]) -> Header {
    let mut h = Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h
}

type Entry = (Header, Vec<u8>);

fn file(name: &str, body: &[u8]) -> Entry {
    (
        raw(name.as_bytes(), EntryType::Regular, body.len() as u64, b""),
        body.to_vec(),
    )
}

fn link(name: &str, kind: EntryType, target: &str) -> Entry {
    (raw(name.as_bytes(), kind, 0, target.as_bytes()), Vec::new())
}

fn dir(name: &str) -> Entry {
    (
        raw(name.as_bytes(), EntryType::Directory, 0, b""),
        Vec::new(),
    )
}

fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (h, body) in entries {
        builder.append(h, &body[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tarball with one file under a name of any length (GNU long names written by hand).
fn long_named(name: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut long = raw(
        b"././@LongLink",
        EntryType::GNULongName,
        name.len() as u64 + 1,
        b"",
    );
    long.set_cksum();
    let mut body = name.as_bytes().to_vec();
    body.push(0);
    builder.append(&long, &body[..]).unwrap();
    let (h, data) = file("placeholder", b"x");
    builder.append(&h, &data[..]).unwrap();
    gz(&builder.into_inner().unwrap())
}

/// A PAX extended header entry carrying `records`.
fn pax(records: &[(&str, &[u8])]) -> Entry {
    let mut body = Vec::new();
    for (key, value) in records {
        let rest = format!(" {key}=").len() + value.len() + 1;
        let mut len = rest + 1;
        while format!("{len}").len() + rest != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len} {key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    (
        raw(
            b"././@PaxHeader",
            EntryType::XHeader,
            body.len() as u64,
            b"",
        ),
        body,
    )
}

struct Outcome {
    result: Result<(), String>,
    root: tempfile::TempDir,
}

fn unpack(bytes: Vec<u8>, limits: &SourceLimits) -> Outcome {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("in.tgz");
    std::fs::write(&archive, bytes).unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let result = fetch_source(&Source::Archive(archive), None, &work, limits)
        .map(|_| ())
        .map_err(|e| e.to_string());
    Outcome { result, root }
}

/// Every path below `dir`, not following symlinks.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                out.extend(tree(&e.path()));
            }
        }
    }
    out
}

fn refused(name: &str, bytes: Vec<u8>, limits: &SourceLimits, needles: &[&str]) {
    let outcome = unpack(bytes, limits);
    let err = outcome
        .result
        .err()
        .unwrap_or_else(|| panic!("{name}: was accepted"));
    for needle in needles {
        assert!(err.contains(needle), "{name}: {needle:?} not in {err:?}");
    }
    let app = outcome
        .root
        .path()
        .join("work/source")
        .display()
        .to_string();
    let outside: Vec<String> = tree(outcome.root.path())
        .into_iter()
        .filter(|p| p.contains(CANARY) && !p.starts_with(&app))
        .collect();
    assert!(outside.is_empty(), "{name}: escaped to {outside:?}");
    assert!(
        !Path::new("/tmp").join(CANARY).exists(),
        "{name}: escaped to /tmp"
    );
}

#[test]
fn hostile_tarballs_are_refused_with_entry_and_rule() {
    let c = CANARY;
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "dotdot",
            gz(&tar_bytes(&[file(&format!("../{c}"), b"x")])),
            vec!["parent directory"],
        ),
        (
            "dot-dotdot",
            gz(&tar_bytes(&[file(&format!("./../{c}"), b"x")])),
            vec!["parent directory"],
        ),
        (
            "inner dotdot",
            gz(&tar_bytes(&[file(&format!("a/../../{c}"), b"x")])),
            vec!["parent directory"],
        ),
        (
            "absolute",
            gz(&tar_bytes(&[file(&format!("/tmp/{c}"), b"x")])),
            vec!["absolute path"],
        ),
        (
            "many slashes",
            gz(&tar_bytes(&[file(&format!("////tmp/{c}"), b"x")])),
            vec!["absolute path"],
        ),
        (
            "windows dotdot",
            gz(&tar_bytes(&[file(&format!("C:..\\{c}"), b"x")])),
            vec!["backslash"],
        ),
        (
            "backslashes",
            gz(&tar_bytes(&[file(&format!("..\\..\\{c}"), b"x")])),
            vec!["backslash"],
        ),
        (
            "symlink out, then a file through it",
            gz(&tar_bytes(&[
                link("out", EntryType::Symlink, "../../.."),
                file(&format!("out/{c}"), b"x"),
            ])),
            vec!["\"out\""],
        ),
        (
            "symlink outside",
            gz(&tar_bytes(&[link(
                "l",
                EntryType::Symlink,
                "../../../../etc/passwd",
            )])),
            vec!["\"l\"", "outside"],
        ),
        (
            "absolute symlink",
            gz(&tar_bytes(&[link("l", EntryType::Symlink, "/etc/passwd")])),
            vec!["\"l\"", "absolute"],
        ),
        (
            "symlink chain out",
            gz(&tar_bytes(&[
                link("a", EntryType::Symlink, "b/x"),
                link("b", EntryType::Symlink, "c/.."),
                link("c", EntryType::Symlink, "../.."),
            ])),
            vec!["outside"],
        ),
        (
            "symlink through a shallower link",
            gz(&tar_bytes(&[
                file("sub/f", b"x"),
                link("up", EntryType::Symlink, "sub/.."),
                link("out", EntryType::Symlink, "up/.."),
            ])),
            vec!["\"out\"", "outside"],
        ),
        (
            "symlink loop",
            gz(&tar_bytes(&[
                link("l1", EntryType::Symlink, "l2"),
                link("l2", EntryType::Symlink, "l1"),
            ])),
            vec!["too many symlinks"],
        ),
        (
            "symlink then a same-named dir",
            gz(&tar_bytes(&[
                link("d", EntryType::Symlink, "../.."),
                dir("d/"),
                file(&format!("d/{c}"), b"x"),
            ])),
            vec!["\"d\""],
        ),
        (
            "dir then a same-named symlink",
            gz(&tar_bytes(&[
                dir("d/"),
                link("d", EntryType::Symlink, "../.."),
                file(&format!("d/{c}"), b"x"),
            ])),
            vec!["\"d\""],
        ),
        (
            "hardlink outside",
            gz(&tar_bytes(&[link(
                "h",
                EntryType::Link,
                "../../etc/passwd",
            )])),
            vec!["parent directory"],
        ),
        (
            "hardlink absolute",
            gz(&tar_bytes(&[link("h", EntryType::Link, "/etc/passwd")])),
            vec!["absolute path"],
        ),
        (
            "hardlink to a symlink",
            gz(&tar_bytes(&[
                link("s", EntryType::Symlink, "x"),
                link("h", EntryType::Link, "s"),
            ])),
            vec!["\"h\"", "not an earlier regular file"],
        ),
        (
            "hardlink to nothing",
            gz(&tar_bytes(&[link("h", EntryType::Link, "missing")])),
            vec!["\"h\""],
        ),
        (
            "char device",
            gz(&tar_bytes(&[link("tty", EntryType::Char, "")])),
            vec!["\"tty\"", "device"],
        ),
        (
            "block device",
            gz(&tar_bytes(&[link("sda", EntryType::Block, "")])),
            vec!["\"sda\"", "device"],
        ),
        (
            "fifo",
            gz(&tar_bytes(&[link("p", EntryType::Fifo, "")])),
            vec!["\"p\"", "FIFO"],
        ),
        // The tar crate parses GNU sparse maps itself; a malformed one is refused as corrupt.
        (
            "malformed sparse file",
            gz(&tar_bytes(&[link("s", EntryType::GNUSparse, "")])),
            vec!["not a valid tarball"],
        ),
        (
            "a file replacing a dir",
            gz(&tar_bytes(&[dir("x/"), file("x", b"y")])),
            vec!["\"x\"", "replaces"],
        ),
        (
            "PAX path with dotdot",
            gz(&tar_bytes(&[
                pax(&[("path", format!("../../{c}").as_bytes())]),
                file("innocent", b"x"),
            ])),
            vec!["parent directory"],
        ),
        (
            "PAX absolute linkpath",
            gz(&tar_bytes(&[
                pax(&[("linkpath", b"/etc/shadow")]),
                link("l", EntryType::Symlink, "ok"),
            ])),
            vec!["\"l\"", "absolute"],
        ),
        (
            "GNU long name with dotdot",
            long_named(&format!("{}/../../../{c}", "d".repeat(120))),
            vec!["parent directory"],
        ),
        (
            "very long name",
            long_named(&"n".repeat(5000)),
            vec!["path longer than"],
        ),
        (
            "deep nesting",
            long_named(&format!("{}f", "d/".repeat(100))),
            vec!["deeper than"],
        ),
        (
            "truncated gzip",
            {
                let g = gz(&tar_bytes(&[file("a", &vec![7u8; 100_000])]));
                g[..g.len() / 2].to_vec()
            },
            vec!["not a valid tarball"],
        ),
        (
            "garbage after the gzip stream",
            {
                let mut g = gz(&tar_bytes(&[file("a", b"x")]));
                g.extend_from_slice(b"trailing garbage");
                g
            },
            vec!["not a valid tarball"],
        ),
        (
            "data after the tar end",
            gz(&{
                let mut t = tar_bytes(&[file("a", b"x")]);
                t.extend_from_slice(b"smuggled");
                t
            }),
            vec!["after the end of the tar archive"],
        ),
        (
            "bad header checksum",
            gz(&{
                let mut t = tar_bytes(&[file("a", b"x")]);
                t[0] ^= 0x55;
                t
            }),
            vec!["not a valid tarball"],
        ),
        (
            "an HTML error page",
            b"<html>404 not found</html>".repeat(30),
            vec!["not a valid tarball"],
        ),
        ("empty", Vec::new(), vec!["empty"]),
        (
            "a zip",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00".repeat(60),
            vec!["not a valid tarball"],
        ),
    ];
    assert!(cases.len() >= 36, "{}", cases.len());
    let limits = SourceLimits::default();
    for (name, bytes, needles) in cases {
        refused(name, bytes, &limits, &needles);
    }
}

#[test]
fn bombs_and_floods_stop_at_their_limits() {
    let limits = SourceLimits {
        unpacked_bytes: 8 << 20,
        ..SourceLimits::default()
    };
    refused(
        "gzip ratio bomb",
        gz(&tar_bytes(&[file("bomb", &vec![0u8; 64 << 20])])),
        &limits,
        &["more than 8 MiB unpacked"],
    );
    let entries: Vec<Entry> = (0..5000).map(|i| file(&format!("f{i}"), b"")).collect();
    let limits = SourceLimits {
        entries: 1000,
        ..SourceLimits::default()
    };
    refused(
        "zero-byte file flood",
        gz(&tar_bytes(&entries)),
        &limits,
        &["more than 1000 entries"],
    );
    let limits = SourceLimits {
        download_bytes: 1 << 20,
        ..SourceLimits::default()
    };
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    refused(
        "oversized archive",
        gz(&tar_bytes(&[file("big", &noise)])),
        &limits,
        &["more than 1 MiB of archive"],
    );
}

#[test]
fn odd_but_harmless_archives_unpack_safely() {
    // Concatenated gzip members are valid gzip (what `gzip -d` reads).
    let t = tar_bytes(&[file("a", b"1")]);
    let mut two = gz(&t[..1024]);
    two.extend(gz(&t[1024..]));
    assert_eq!(unpack(two, &SourceLimits::default()).result, Ok(()));

    // Links that stay inside, a later file replacing an earlier one, setuid bits.
    let mut suid = raw(b"bin/tool", EntryType::Regular, 2, b"");
    suid.set_mode(0o4755);
    suid.set_cksum();
    let outcome = unpack(
        gz(&tar_bytes(&[
            file("a/b", b"1"),
            link("a/c", EntryType::Symlink, "b"),
            link("top", EntryType::Symlink, "a/../a/b"),
            link("h", EntryType::Link, "a/b"),
            file("a/b", b"2"),
            (suid, b"#!".to_vec()),
        ])),
        &SourceLimits::default(),
    );
    assert_eq!(outcome.result, Ok(()));
    let app = outcome.root.path().join("work/source");
    assert_eq!(std::fs::read(app.join("a/b")).unwrap(), b"2");
    assert_eq!(
        std::fs::read(app.join("h")).unwrap(),
        b"1",
        "the hardlink kept the first content"
    );
    assert_eq!(std::fs::read(app.join("top")).unwrap(), b"2");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(app.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
}
