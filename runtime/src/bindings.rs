//! Host bindings generated from the WIT contract in `wit/`.

wasmtime::component::bindgen!({
    world: "buildpack-world",
    path: "../wit",
    exports: { default: async },
});
