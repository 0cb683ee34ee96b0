//! Writes the seed corpora: `cargo run --manifest-path fuzz/Cargo.toml --bin seeds -- fuzz/corpus`.

fn main() {
    let root = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("corpus".into()));
    for (target, seeds) in [
        ("unpack", buildd_fuzz::unpack::seeds()),
        ("api_request", buildd_fuzz::api::seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
}
