//! A real `buildd serve` on a loopback port, and an HTTP client for its API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{buildd_bin, component_cache, hostile_wasm};

/// `Accept` as Heroku clients send it.
pub const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub base: String,
    pub token: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends a request and collects the whole answer.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map(<[u8]>::to_vec).unwrap_or_default())
        .unwrap();
    let mut response = agent()
        .run(req)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// The whole output of a finished build.
pub fn output_of(build: &Value) -> String {
    request(
        "GET",
        build["output_stream_url"].as_str().unwrap(),
        &[],
        None,
    )
    .text()
}

impl Daemon {
    /// Starts a daemon on a fresh data dir, with a token, the hostile test buildpack installed,
    /// and `extra` flags.
    pub fn start(extra: &[&str]) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut daemon = Daemon::on(&data_dir, extra);
        daemon._tmp = Some(tmp);
        daemon
    }

    /// Starts a daemon on `data_dir` (keeping what is there).
    pub fn on(data_dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::with_env(data_dir, extra, &[])
    }

    /// Starts a daemon on `data_dir` with `env` set for it and for `buildd tokens create`
    /// (`BUILDD_DATABASE`, `BUILDD_BLOB_STORE`, `AWS_*` for shared storage).
    pub fn with_env(data_dir: &Path, extra: &[&str], env: &[(String, String)]) -> Daemon {
        let output = Command::new(buildd_bin())
            .args(["tokens", "create", "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--component-cache".into(),
            component_cache().display().to_string(),
            "--buildpack".into(),
            hostile_wasm().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut daemon = Daemon {
            base: String::new(),
            token,
            data_dir: data_dir.to_path_buf(),
            child: None,
            args,
            env: env.to_vec(),
            _tmp: None,
        };
        daemon.spawn("127.0.0.1:0");
        daemon
    }

    fn spawn(&mut self, listen: &str) {
        let mut child = Command::new(buildd_bin())
            .arg("serve")
            .args(["--listen", listen])
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("buildd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        self.base = addr;
        self.child = Some(child);
    }

    /// Kills the daemon with SIGKILL, mid-whatever.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap().success()
    }

    /// Starts the daemon again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill9();
        let listen = self.base.trim_start_matches("http://").to_string();
        self.spawn(&listen);
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated API call.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, &[])
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Accept", ACCEPT),
            ("Content-Type", "application/json"),
        ];
        // Extra headers replace the defaults of the same name.
        headers.retain(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k)));
        headers.extend_from_slice(extra);
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        request(method, &self.url(path), &headers, body.as_deref())
    }

    /// Creates an app and returns its JSON.
    pub fn create_app(&self, name: &str) -> Value {
        let answer = self.call("POST", "/apps", Some(serde_json::json!({ "name": name })));
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()
    }

    /// Starts a build from a source URL and returns its JSON.
    pub fn create_build(&self, app: &str, body: Value) -> Value {
        let answer = self.call("POST", &format!("/apps/{app}/builds"), Some(body));
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()
    }

    /// The slug a finished build made.
    pub fn slug_of(&self, app: &str, build: &Value) -> Value {
        let id = build["slug"]["id"].as_str().expect("the build made a slug");
        self.call("GET", &format!("/apps/{app}/slugs/{id}"), None)
            .json()
    }

    /// Polls a build until its status is final.
    pub fn wait_build(&self, app: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let build = self
                .call("GET", &format!("/apps/{app}/builds/{id}"), None)
                .json();
            if build["status"] != "pending" {
                return build;
            }
            assert!(Instant::now() < deadline, "build {id} still pending");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
