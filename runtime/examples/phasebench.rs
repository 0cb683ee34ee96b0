//! Warm per-phase cost: a precompiled component, a fresh store and instance per call, then
//! `detect` (a stat of one file in the granted app dir), as every build phase does.
//!
//! ```text
//! cargo run --release -p buildd-runtime --example phasebench -- COMPONENT.wasm [N]
//! ```

use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wasm = std::fs::read(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: phasebench COMPONENT.wasm [N]"))?,
    )?;
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let cache = tempfile::tempdir()?;
    let runtime = buildd_runtime::Runtime::new(buildd_runtime::RuntimeConfig {
        component_cache: Some(cache.path().to_path_buf()),
        ..Default::default()
    })?;
    let started = Instant::now();
    let bp = runtime.load(&wasm).await?;
    eprintln!("load (compile + info): {:?}", started.elapsed());
    let reload = Instant::now();
    let again = runtime.load(&wasm).await?;
    eprintln!(
        "load from the precompiled cache (+ info): {:?}",
        reload.elapsed()
    );
    drop(again);
    let app = tempfile::tempdir()?;
    std::fs::write(app.path().join("index.html"), "<html></html>")?;
    for _ in 0..20 {
        runtime.detect(&bp, app.path()).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let detected = runtime.detect(&bp, app.path()).await?;
        times.push(t.elapsed());
        assert!(detected.is_some());
    }
    times.sort();
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    println!(
        "warm phase (fresh store + instantiate + detect) over {n}: p50 {:.0} us, p99 {:.0} us, mean {:.0} us",
        us(times[n / 2]),
        us(times[n * 99 / 100]),
        times.iter().map(|d| us(*d)).sum::<f64>() / n as f64
    );
    Ok(())
}
