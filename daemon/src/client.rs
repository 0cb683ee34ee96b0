//! The client side of `buildd`: commands that talk to a buildd server over its API, as the Go
//! program in Heroku's builds announcement did for `POST /apps/:app/builds`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cli::{Command, Remote};

const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// Runs a client command; hands any other command back.
pub fn run(command: Command) -> Result<Result<ExitCode>, Command> {
    Ok(match command {
        Command::Build(args) => build(*args),
        Command::Apps(args) => match args.command {
            crate::cli::AppsCommand::Create { name } => {
                let body = name
                    .map(|n| json!({ "name": n }))
                    .unwrap_or_else(|| json!({}));
                Api::new(&args.remote)
                    .and_then(|api| api.call("POST", "/apps", Some(body)))
                    .map(|app| {
                        println!("{}", app["name"].as_str().unwrap_or_default());
                        ExitCode::SUCCESS
                    })
            }
            crate::cli::AppsCommand::List => Api::new(&args.remote)
                .and_then(|api| api.call("GET", "/apps", None))
                .map(|apps| {
                    for app in apps.as_array().into_iter().flatten() {
                        println!("{}", app["name"].as_str().unwrap_or_default());
                    }
                    ExitCode::SUCCESS
                }),
        },
        Command::Builds(args) => Api::new(&args.remote)
            .and_then(|api| {
                api.list(
                    &format!("/apps/{}/builds", args.app),
                    "created_at ..; max=15, order=desc",
                )
            })
            .map(|builds| {
                for b in builds {
                    println!(
                        "{}  {:<9}  {}  {}",
                        b["created_at"].as_str().unwrap_or_default(),
                        b["status"].as_str().unwrap_or_default(),
                        b["id"].as_str().unwrap_or_default(),
                        b["source_blob"]["version"].as_str().unwrap_or("")
                    );
                }
                ExitCode::SUCCESS
            }),
        Command::Releases(args) => Api::new(&args.remote)
            .and_then(|api| {
                api.list(
                    &format!("/apps/{}/releases", args.app),
                    "version ..; max=10, order=desc",
                )
            })
            .map(|releases| {
                for r in releases {
                    let current = if r["current"] == true { "*" } else { " " };
                    println!(
                        "{current} v{:<4} {}  {}",
                        r["version"],
                        r["created_at"].as_str().unwrap_or_default(),
                        r["description"].as_str().unwrap_or_default()
                    );
                }
                ExitCode::SUCCESS
            }),
        Command::Config(args) => Api::new(&args.remote)
            .and_then(|api| api.call("GET", &format!("/apps/{}/config-vars", args.app), None))
            .map(|vars| {
                print_vars(&vars);
                ExitCode::SUCCESS
            }),
        Command::ConfigSet(args) => {
            let patch = args
                .vars
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            patch_config(&args.remote, &args.app, patch)
        }
        Command::ConfigUnset(args) => {
            let patch = args.keys.into_iter().map(|k| (k, Value::Null)).collect();
            patch_config(&args.remote, &args.app, patch)
        }
        Command::New(args) => match args.what {
            crate::cli::NewCommand::Buildpack { name, id, dir, sdk } => {
                crate::new::buildpack(&name, id.as_deref(), dir.as_deref(), sdk.as_deref())
            }
        },
        other => return Err(other),
    })
}

/// `PATCH /apps/{app}/config-vars` and print the result.
fn patch_config(
    remote: &Remote,
    app: &str,
    patch: serde_json::Map<String, Value>,
) -> Result<ExitCode> {
    let vars = Api::new(remote)?.call(
        "PATCH",
        &format!("/apps/{app}/config-vars"),
        Some(Value::Object(patch)),
    )?;
    print_vars(&vars);
    Ok(ExitCode::SUCCESS)
}

fn print_vars(vars: &Value) {
    for (k, v) in vars.as_object().into_iter().flatten() {
        println!("{k}={}", v.as_str().unwrap_or_default());
    }
}

/// A connection to a buildd server.
struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(remote: &Remote) -> Result<Api> {
        let token = remote.token.clone().context(
            "no API token: pass --token or set BUILDD_TOKEN (see `buildd tokens create`)",
        )?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Api {
            base: remote.url.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        range: Option<&str>,
    ) -> Result<(u16, Option<String>, Value)> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", ACCEPT)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json");
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        let req = req.body(body.map(|b| b.to_string()).unwrap_or_default())?;
        let mut response = self
            .agent
            .run(req)
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get("next-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let message = value["message"].as_str().unwrap_or(&text);
            bail!(
                "{message} ({status} {})",
                value["id"].as_str().unwrap_or("error")
            );
        }
        Ok((status, next, value))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        Ok(self.send(method, path, body, None)?.2)
    }

    /// The first page of a list (clients show the newest few, as the Heroku CLI does).
    fn list(&self, path: &str, range: &str) -> Result<Vec<Value>> {
        let (_, _, page) = self.send("GET", path, None, Some(range))?;
        Ok(page.as_array().cloned().unwrap_or_default())
    }
}

fn build(args: crate::cli::BuildArgs) -> Result<ExitCode> {
    let api = Api::new(&args.remote)?;
    let url = match (&args.archive, &args.dir, &args.git) {
        (Some(url), None, None) => url.clone(),
        (None, Some(dir), None) => upload_dir(&api, dir)?,
        (None, None, Some(git)) => git.clone(),
        _ => bail!("give exactly one of --archive URL, --dir DIR or --git URL"),
    };
    let mut body = json!({ "source_blob": { "url": url, "checksum": args.checksum, "version": args.version } });
    if !args.buildpacks.is_empty() {
        body["buildpacks"] = args
            .buildpacks
            .iter()
            .map(|b| json!({ "url": b }))
            .collect();
    }
    if args.no_release {
        body["release"] = json!(false);
    }
    let build = api.call("POST", &format!("/apps/{}/builds", args.app), Some(body))?;
    let id = build["id"]
        .as_str()
        .context("no build id in the answer")?
        .to_string();
    eprintln!("Build {id} created; streaming its output:");
    stream_output(
        &api,
        build["output_stream_url"]
            .as_str()
            .context("no output_stream_url")?,
    )?;

    // The stream ends once the status is final; ask for it.
    let mut status = String::new();
    for _ in 0..100 {
        let b = api.call("GET", &format!("/apps/{}/builds/{id}", args.app), None)?;
        status = b["status"].as_str().unwrap_or_default().to_string();
        if status != "pending" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("Build {id} {status}.");
    Ok(if status == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies the build's output to stdout as it arrives, dropping keep-alive NULs, resuming with
/// `Range` if the connection drops.
fn stream_output(api: &Api, url: &str) -> Result<()> {
    let mut offset = 0usize;
    let mut attempts = 0;
    loop {
        let response = api
            .agent
            .get(url)
            .header("Range", format!("bytes={offset}-"))
            .call();
        let mut response = match response {
            Ok(r) if r.status().as_u16() == 204 => return Ok(()),
            Ok(r) if r.status().is_success() => r,
            Ok(r) => bail!("output stream answered {}", r.status()),
            Err(e) if attempts < 5 => {
                attempts += 1;
                tracing::warn!("output stream: {e}; resuming");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut reader = response.body_mut().as_reader();
        let mut buf = [0u8; 8192];
        let mut out = std::io::stdout().lock();
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    offset += n;
                    let text: Vec<u8> = buf[..n].iter().copied().filter(|b| *b != 0).collect();
                    out.write_all(&text)?;
                    out.flush()?;
                }
                Err(e) if attempts < 5 => {
                    attempts += 1;
                    tracing::warn!("output stream: {e}; resuming at byte {offset}");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Packs a directory (without `.git`) into a gzipped tarball, uploads it through `/sources`
/// with a progress line, and returns the `get_url`.
fn upload_dir(api: &Api, dir: &Path) -> Result<String> {
    let tarball = tempfile::tempfile()?;
    {
        let gz = flate2::write::GzEncoder::new(&tarball, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                tar.append_dir_all(entry.file_name(), &path)?;
            } else {
                tar.append_path_with_name(&path, entry.file_name())?;
            }
        }
        tar.into_inner()?.finish()?;
    }
    let size = tarball.metadata()?.len();
    let source = api.call("POST", "/sources", None)?;
    let put_url = source["source_blob"]["put_url"]
        .as_str()
        .context("no put_url")?;
    let get_url = source["source_blob"]["get_url"]
        .as_str()
        .context("no get_url")?
        .to_string();

    let mut file = tarball;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
    let progress = Progress {
        inner: file,
        sent: 0,
        total: size,
        shown: 0,
        tty: std::io::stderr().is_terminal(),
    };
    let response = api
        .agent
        .put(put_url)
        .header("Content-Length", size.to_string())
        .send(ureq::SendBody::from_owned_reader(progress))?;
    if !response.status().is_success() {
        bail!("uploading the source failed: HTTP {}", response.status());
    }
    eprintln!("Uploaded source: {} bytes", size);
    Ok(get_url)
}

/// Reports upload progress on stderr (a live percentage on a terminal).
struct Progress<R> {
    inner: R,
    sent: u64,
    total: u64,
    shown: u64,
    tty: bool,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        let percent = (self.sent * 100).checked_div(self.total).unwrap_or(100);
        if self.tty && percent != self.shown {
            self.shown = percent;
            eprint!(
                "\rUploading source... {percent:>3}% ({} of {} bytes)",
                self.sent, self.total
            );
            if self.sent >= self.total {
                eprintln!();
            }
        }
        Ok(n)
    }
}
