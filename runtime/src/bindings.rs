//! Host bindings generated from the WIT contract: the current version from `wit/`, the older ones
//! this host still runs from `wit/vX.Y/`.

/// `buildd:buildpack@0.2.0`: the lifecycle plus the `host` import (`fetch`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "buildpack-world",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `buildd:buildpack@0.1.0`: the lifecycle only.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "buildpack-world",
        path: "../wit/v0.1",
        exports: { default: async },
    });
}
