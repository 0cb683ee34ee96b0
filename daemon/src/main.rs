//! `buildd`: build apps with WebAssembly buildpacks.
//!
//! `buildd run` builds locally with no daemon; `buildd serve` runs the Heroku-compatible builds
//! API. The build engine lives in `buildd-runtime`; this binary knows nothing of wasm.

mod cli;
mod client;
mod embedded;
mod new;
mod run;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUILDD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // Past a file size limit (RLIMIT_FSIZE) the kernel sends SIGXFSZ, which kills the process:
    // ignored, the write fails with EFBIG instead, the build fails naming it, and the daemon
    // keeps serving.
    // SAFETY: setting a signal to SIG_IGN before any thread starts has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = cli::Cli::parse();
    // Client commands are plain blocking HTTP: no async runtime.
    let command = match client::run(cli.command) {
        Ok(done) => match done {
            Ok(code) => return code,
            Err(err) => {
                eprintln!("error: {err:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Err(command) => command,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            cli::Command::Run(args) => run::run(*args).await,
            cli::Command::Buildpacks => run::list_buildpacks().await,
            cli::Command::Serve(args) => serve::serve(*args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            cli::Command::Tokens(args) => {
                serve::tokens(args).map(|()| std::process::ExitCode::SUCCESS)
            }
            _ => unreachable!("client commands ran above"),
        }
    });
    // A build stopped mid-download leaves its blocking thread reading until the source's stall
    // timeout; its result is wanted by no one, so exiting need not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
