//! Source servers that attack or stall the fetch: redirect loops, slow drips, servers that never
//! answer, and URLs into networks the operator forbids. Each build fails with the rule named,
//! soon, and (for forbidden networks) without a connection ever being made.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, output_of, request};
use common::*;
use serde_json::json;

/// A loopback HTTP server driven by hand, counting the connections it accepts.
struct Raw {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Raw {
    /// Serves on `bind` (a loopback address); `handle` gets each connection after its request
    /// head was read, with the head.
    fn start(bind: &str, handle: impl Fn(TcpStream, String) + Send + Sync + 'static) -> Raw {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s, handle) = (hits.clone(), stop.clone(), Arc::new(handle));
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        let handle = handle.clone();
                        std::thread::spawn(move || {
                            stream.set_nonblocking(false).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_secs(30)))
                                .unwrap();
                            let mut head = Vec::new();
                            let mut byte = [0u8; 1];
                            while !head.ends_with(b"\r\n\r\n") {
                                match stream.read(&mut byte) {
                                    Ok(1) => head.push(byte[0]),
                                    _ => return,
                                }
                            }
                            handle(stream, String::from_utf8_lossy(&head).into_owned());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Raw { addr, hits, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An app the procfile buildpack accepts, as a gzipped tarball.
fn app_tarball() -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("Procfile", "web: ./run\n")]);
    tarball_of(tmp.path(), "app")
}

/// Answers with `body`.
fn serve_body(body: Vec<u8>) -> impl Fn(TcpStream, String) + Send + Sync + 'static {
    move |mut stream, _| {
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    }
}

fn run_url(url: &str, flags: &[&str]) -> (Run, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![url, "--buildpack", "procfile", "-o", "slug.tgz"];
    args.extend_from_slice(flags);
    let started = Instant::now();
    let run = buildd_run(tmp.path(), &args);
    (run, started.elapsed())
}

fn assert_failed_with(run: &Run, message: &str) {
    assert!(!run.ok(), "must fail: {}", run.all());
    assert!(
        run.stdout.contains(message),
        "expected {message:?}: {}",
        run.all()
    );
}

#[test]
fn a_redirect_loop_ends_with_a_clear_error_after_a_bounded_number_of_hops() {
    let server = Raw::start("127.0.0.1:0", |mut stream, head| {
        // /a -> /b -> /a -> ...
        let next = if head.starts_with("GET /a") {
            "/b"
        } else {
            "/a"
        };
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    let (run, took) = run_url(&server.url("/a"), &[]);
    assert_failed_with(&run, "too many redirects (more than 5; a redirect loop?)");
    assert!(server.hits() <= 6, "followed {} hops", server.hits());
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_slow_drip_server_is_abandoned_below_the_minimum_rate() {
    let server = Raw::start("127.0.0.1:0", |mut stream, _| {
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"
        );
        // A byte every 100 ms: never silent long enough for the stall timeout alone.
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && stream.write_all(&[0x1f]).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (run, took) = run_url(
        &server.url("/app.tgz"),
        &["--source-stall-timeout", "2", "--source-min-rate", "1024"],
    );
    assert_failed_with(&run, "too slow: ");
    assert_failed_with(&run, "below the minimum of 1 KiB/s");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn a_server_that_never_answers_is_abandoned_by_the_stall_timeout() {
    let silent = |stream: TcpStream, _| {
        // Hold the connection open, say nothing, until the client gives up.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = (&stream).read(&mut [0u8; 1]);
    };
    let server = Raw::start("127.0.0.1:0", silent);
    let (run, took) = run_url(&server.url("/app.tgz"), &["--source-stall-timeout", "2"]);
    assert_failed_with(&run, "the server sent nothing for 2s (stall timeout)");
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // Headers, then silence in the body.
    let server = Raw::start("127.0.0.1:0", |mut stream, _| {
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let _ = stream.write_all(&[0x1f, 0x8b]);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = stream.read(&mut [0u8; 1]);
    });
    let (run, took) = run_url(&server.url("/app.tgz"), &["--source-stall-timeout", "2"]);
    assert_failed_with(&run, "the server sent nothing for 2s (stall timeout)");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn loopback_sources_are_refused_when_the_operator_forbids_private_networks() {
    let server = Raw::start("127.0.0.1:0", serve_body(app_tarball()));
    let url = server.url("/app.tgz");
    // The default stays permissive: tests and local setups serve sources on loopback.
    let (run, _) = run_url(&url, &[]);
    assert!(run.ok(), "{}", run.all());
    let before = server.hits();

    let (run, _) = run_url(&url, &["--deny-private-sources"]);
    assert_failed_with(
        &run,
        "refusing to fetch from 127.0.0.1: a loopback address, and this server forbids private \
         networks (--deny-private-sources)",
    );
    // By name: the resolved address is what is checked.
    let by_name = format!("http://localhost:{}/app.tgz", server.addr.port());
    let (run, _) = run_url(&by_name, &["--deny-private-sources"]);
    assert_failed_with(&run, "refusing to fetch from localhost (resolves to ");
    assert_failed_with(&run, "a loopback address");
    assert_eq!(
        server.hits(),
        before,
        "a forbidden address was connected to"
    );
}

#[test]
fn every_redirect_hop_is_checked_against_the_network_policy() {
    // 127.0.0.2 is loopback too, and not on the allow list.
    let target = Raw::start("127.0.0.2:0", serve_body(app_tarball()));
    let location = target.url("/app.tgz");
    let first = Raw::start("127.0.0.1:0", move |mut stream, _| {
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    let allowed = Raw::start("127.0.0.1:0", serve_body(app_tarball()));
    let policy = ["--deny-private-sources", "--allow-source-ip", "127.0.0.1"];

    // The allowed address itself works...
    let (run, _) = run_url(&allowed.url("/app.tgz"), &policy);
    assert!(run.ok(), "{}", run.all());
    // ...but a redirect from it into a forbidden address does not.
    let (run, _) = run_url(&first.url("/app.tgz"), &policy);
    assert_failed_with(&run, "refusing to fetch from 127.0.0.2: a loopback address");
    assert_eq!(first.hits(), 1);
    assert_eq!(target.hits(), 0, "the redirect target was connected to");
}

#[test]
fn the_daemon_fails_builds_from_forbidden_networks_and_keeps_serving() {
    let server = Raw::start("127.0.0.1:0", serve_body(app_tarball()));
    let daemon = Daemon::start(&["--deny-private-sources"]);
    daemon.create_app("walled");
    let build = daemon.create_build(
        "walled",
        json!({ "source_blob": { "url": server.url("/app.tgz") }, "buildpacks": [{ "url": "procfile" }] }),
    );
    let done = daemon.wait_build("walled", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    let output = output_of(&build);
    assert!(
        output.contains("refusing to fetch from 127.0.0.1: a loopback address"),
        "{output}"
    );
    assert_eq!(server.hits(), 0);
    // Sources uploaded to the daemon itself are not fetched over the network: still allowed.
    let upload = daemon.call("POST", "/sources", None).json();
    let put = request(
        "PUT",
        upload["source_blob"]["put_url"].as_str().unwrap(),
        &[],
        Some(&app_tarball()),
    );
    assert!(put.status < 300, "{}", put.text());
    let build = daemon.create_build(
        "walled",
        json!({ "source_blob": { "url": upload["source_blob"]["get_url"] }, "buildpacks": [{ "url": "procfile" }] }),
    );
    let done = daemon.wait_build("walled", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{}", output_of(&build));
}
