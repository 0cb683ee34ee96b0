//! A daemon that cannot write (its file size limit, RLIMIT_FSIZE, stands in for a full disk,
//! reliably and without root or a mount): builds and uploads fail with a clear message, and the
//! daemon keeps serving.

mod common;

use std::io::Write;

use common::daemon::{Daemon, output_of, request};
use common::*;
use serde_json::json;

const LIMIT: u64 = 2 << 20;

fn limit_file_size(pid: u32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `limit` and writes nothing when the old-limit pointer is null.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn upload(daemon: &Daemon, tarball: &[u8]) -> (u16, String, String) {
    let slot = daemon.call("POST", "/sources", None).json();
    let put = request(
        "PUT",
        slot["source_blob"]["put_url"].as_str().unwrap(),
        &[],
        Some(tarball),
    );
    let get = slot["source_blob"]["get_url"].as_str().unwrap().to_string();
    (put.status, put.text(), get)
}

#[test]
fn a_daemon_that_cannot_write_fails_builds_clearly_and_keeps_serving() {
    let daemon = Daemon::start(&[]);
    limit_file_size(daemon.pid(), LIMIT);
    daemon.create_app("full-disk");
    daemon.create_app("honest");

    // A small (compressible) upload whose unpacked file is larger than the host can write.
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("Procfile", "web: ./run\n")]);
    let mut big = std::fs::File::create(tmp.path().join("big.dat")).unwrap();
    big.write_all(&vec![0u8; 3 * LIMIT as usize]).unwrap();
    drop(big);
    let (status, text, get_url) = upload(&daemon, &tarball_of(tmp.path(), "app"));
    assert_eq!(status, 200, "{text}");
    let build = daemon.create_build(
        "full-disk",
        json!({ "source_blob": { "url": get_url }, "buildpacks": [{ "url": "procfile" }] }),
    );
    let done = daemon.wait_build("full-disk", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    let output = output_of(&build);
    assert!(
        output.contains("The build host ran out of disk space (or reached its file size limit)"),
        "{output}"
    );

    // An upload the store cannot hold: 507, said plainly, not a 500.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..LIMIT + (1 << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let (status, text, _) = upload(&daemon, &noise);
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("disk is full"), "{text}");

    // The daemon is alive and builds what fits.
    let small = tempfile::tempdir().unwrap();
    write_tree(small.path(), &[("Procfile", "web: ./run\n")]);
    let (status, text, get_url) = upload(&daemon, &tarball_of(small.path(), "app"));
    assert_eq!(status, 200, "{text}");
    let build = daemon.create_build(
        "honest",
        json!({ "source_blob": { "url": get_url }, "buildpacks": [{ "url": "procfile" }] }),
    );
    let done = daemon.wait_build("honest", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{}", output_of(&build));
    assert_eq!(
        request("GET", &daemon.url("/healthz"), &[], None).status,
        200
    );
}
