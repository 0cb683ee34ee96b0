//! Tarballs that attack the host: each is refused with the entry and the rule named, and nothing
//! is written outside the build's own directory.

mod common;

use common::*;
use tar::EntryType;

/// A name no legitimate test writes: if it appears anywhere, an entry escaped.
const CANARY: &str = "buildd-canary-escaped";

fn attempt(tarball: Vec<u8>, flags: &[&str]) -> (Run, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("evil.tgz"), tarball).unwrap();
    let mut args = vec!["evil.tgz", "--buildpack", "procfile", "-o", "slug.tgz"];
    args.extend_from_slice(flags);
    let run = buildd_run(tmp.path(), &args);
    (run, tmp)
}

fn assert_refused(run: &Run, tmp: &tempfile::TempDir, entry: &str, rule: &str) {
    assert!(!run.ok(), "must fail: {}", run.all());
    assert!(
        run.stdout.contains(entry),
        "expected the entry {entry:?} named: {}",
        run.all()
    );
    assert!(
        run.stdout.contains(rule),
        "expected the rule {rule:?} named: {}",
        run.all()
    );
    assert!(!tmp.path().join("slug.tgz").exists());
    let tree = list_tree(tmp.path());
    assert!(
        !tree.iter().any(|p| p.contains(CANARY)),
        "escaped: {tree:?}"
    );
    assert!(
        list_tree(&tmp.path().join("tmp")).is_empty(),
        "scratch left: {tree:?}"
    );
    assert!(!std::path::Path::new("/tmp").join(CANARY).exists());
}

fn procfile() -> (tar::Header, Vec<u8>) {
    let body = b"web: run\n".to_vec();
    (
        raw_header(b"Procfile", EntryType::Regular, body.len() as u64, b""),
        body,
    )
}

#[test]
fn parent_dir_entries_are_refused() {
    let name = format!("../../../../{CANARY}");
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(name.as_bytes(), EntryType::Regular, 3, b""),
                b"pwn".to_vec(),
            ),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, &name, "parent directory (..) in path");
}

#[test]
fn absolute_entries_are_refused() {
    let name = format!("/tmp/{CANARY}");
    let (run, tmp) = attempt(
        hostile_tarball(&[(
            raw_header(name.as_bytes(), EntryType::Regular, 3, b""),
            b"pwn".to_vec(),
        )]),
        &[],
    );
    assert_refused(&run, &tmp, &name, "absolute path");
}

#[test]
fn symlink_escape_then_write_through_it_is_refused() {
    // `out` points at the scratch dir's parent; `out/<canary>` would land there if followed.
    let file = format!("out/{CANARY}");
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(b"out", EntryType::Symlink, 0, b"../../.."),
                vec![],
            ),
            (
                raw_header(file.as_bytes(), EntryType::Regular, 3, b""),
                b"pwn".to_vec(),
            ),
        ]),
        &[],
    );
    // The file is written first as out/<canary> inside the app (a real directory), so the
    // symlink then collides with it: either rule is a refusal.
    assert!(!run.ok(), "{}", run.all());
    assert!(run.stdout.contains("\"out\""), "{}", run.all());
    assert_refused(&run, &tmp, "out", "entry");
}

#[test]
fn symlink_pointing_outside_is_refused() {
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(
                    b"passwd",
                    EntryType::Symlink,
                    0,
                    b"../../../../../etc/passwd",
                ),
                vec![],
            ),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, "passwd", "points outside the app dir");
}

#[test]
fn absolute_symlink_is_refused() {
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(b"abs", EntryType::Symlink, 0, b"/etc/passwd"),
                vec![],
            ),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, "abs", "symlink to an absolute path");
}

#[test]
fn hardlink_outside_is_refused() {
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(b"shadow", EntryType::Link, 0, b"../../../../etc/shadow"),
                vec![],
            ),
        ]),
        &[],
    );
    assert_refused(
        &run,
        &tmp,
        "../../../../etc/shadow",
        "parent directory (..) in path",
    );

    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(b"shadow", EntryType::Link, 0, b"/etc/shadow"),
                vec![],
            ),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, "/etc/shadow", "absolute path");
}

#[test]
fn device_files_and_fifos_are_refused() {
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (raw_header(b"sda", EntryType::Block, 0, b""), vec![]),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, "sda", "device files are not allowed");

    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (raw_header(b"pipe", EntryType::Fifo, 0, b""), vec![]),
        ]),
        &[],
    );
    assert_refused(&run, &tmp, "pipe", "FIFOs are not allowed");
}

#[test]
fn gzip_bomb_is_stopped_at_the_unpacked_limit() {
    // 64 MiB of zeros gzips to ~64 KiB; the unpacked limit is 16 MiB.
    let zeros = vec![0u8; 64 << 20];
    let (run, tmp) = attempt(
        hostile_tarball(&[
            procfile(),
            (
                raw_header(b"bomb", EntryType::Regular, zeros.len() as u64, b""),
                zeros,
            ),
        ]),
        &["--max-unpacked", "16"],
    );
    assert!(!run.ok());
    assert!(
        run.stdout
            .contains("source too large: more than 16 MiB unpacked"),
        "{}",
        run.all()
    );
    assert!(list_tree(&tmp.path().join("tmp")).is_empty());
}

#[test]
fn setuid_bits_are_dropped() {
    let mut h = raw_header(b"bin/tool", EntryType::Regular, 3, b"");
    h.set_mode(0o6755);
    h.set_cksum();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("ok.tgz"),
        hostile_tarball(&[procfile(), (h, b"#!x".to_vec())]),
    )
    .unwrap();
    let run = buildd_run(tmp.path(), &["ok.tgz", "-o", "slug.tgz"]);
    assert!(run.ok(), "{}", run.all());
    let entries = slug_entries(&tmp.path().join("slug.tgz"));
    assert_eq!(entries["./app/bin/tool"].0, 0o755);
}

#[test]
fn garbage_is_not_a_tarball() {
    let (run, tmp) = attempt(b"this is not a tarball at all, just text".repeat(20), &[]);
    assert!(!run.ok());
    assert!(run.stdout.contains("not a valid tarball"), "{}", run.all());
    assert!(list_tree(&tmp.path().join("tmp")).is_empty());
}
