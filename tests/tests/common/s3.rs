//! A real S3-compatible server for the tests: `moto_server` (PyPI's `moto[server]`, which
//! `.ci/run` installs) on a free loopback port, with a fresh bucket, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running `moto_server` and a bucket made for one test.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The test's bucket, empty at the start.
    pub bucket: String,
    child: Child,
}

impl S3Server {
    /// Starts `moto_server` and creates a bucket. Without `moto_server`, says so loudly on
    /// stderr and returns `None` (the caller skips its test), except under CI (`CI` set),
    /// which must run the S3 tests: there it panics (see [`super::unavailable`]).
    pub fn start() -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return super::unavailable(
                    "moto_server not found (python3 -m pip install 'moto[server]'): an S3 server",
                );
            }
            Err(e) => panic!("starting moto_server: {e}"),
        };
        static BUCKETS: AtomicU32 = AtomicU32::new(0);
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: format!(
                "buildd-test-{}-{}",
                std::process::id(),
                BUCKETS.fetch_add(1, Ordering::Relaxed)
            ),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&server.endpoint).call().is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        // moto does not check signatures: a plain PUT creates the bucket.
        ureq::put(format!("{}/{}", server.endpoint, server.bucket))
            .send_empty()
            .expect("creating the bucket");
        Some(server)
    }

    /// `s3://BUCKET/PREFIX`, the blob store spec of a daemon using this server.
    pub fn spec(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_matches('/'))
    }

    /// The environment a `buildd` process needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
