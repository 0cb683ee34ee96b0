//! TLS settings for every download the host makes (sources and `fetch`).

/// Trust what the machine trusts (its CA store, so operators behind an inspecting proxy or with a
/// private CA need no extra setting), rather than a copy of Mozilla's roots built into the binary.
pub(crate) fn config() -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build()
}
