//! The first-party buildpacks, compiled for wasm32-wasip2 by `build.rs` and carried inside the
//! binary, in detection order.

/// A buildpack component carried by the binary.
pub struct Embedded {
    /// Short name accepted by `--buildpack`.
    pub name: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

macro_rules! embed {
    ($name:literal, $file:literal) => {
        Embedded {
            name: $name,
            wasm: include_bytes!(concat!(env!("OUT_DIR"), "/buildpacks/", $file)),
        }
    };
}

/// Detection tries these in order: language-specific first (an app with a `package.json` is a
/// Node app even when it also has an `index.html`), the bare Procfile last.
pub const FIRST_PARTY: &[Embedded] = &[
    embed!("nodejs", "buildd_buildpack_nodejs.wasm"),
    embed!("static", "buildd_buildpack_static.wasm"),
    embed!("procfile", "buildd_buildpack_procfile.wasm"),
];
