//! TLS to PostgreSQL, with libpq's `sslmode` meanings: `disable`; `allow`/`prefer` (encrypt when
//! the server can) and `require` (always encrypt), both without checking the server's
//! certificate, as libpq does; `verify-ca`/`verify-full` (encrypt, and check the certificate
//! against the machine's trust store plus `sslrootcert`, and the host name: both are treated as
//! `verify-full`, the stricter).

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to connect, from the URL.
#[derive(Clone)]
pub enum Tls {
    /// `sslmode=disable`.
    Off,
    /// Every other mode.
    On(MakeRustlsConnect),
}

/// Splits libpq's `sslmode`/`sslrootcert` out of a database URL (the client library knows only
/// some of their values) and builds the matching connector.
pub fn from_url(url: &str) -> Result<(String, Tls)> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok((url.to_string(), tls(false, None)?));
    };
    let mut mode = "prefer".to_string();
    let mut root_cert = None;
    let mut rest = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "sslmode" => mode = v.into_owned(),
            "sslrootcert" => root_cert = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    let (client_mode, tls) = match mode.as_str() {
        "disable" => ("disable", Tls::Off),
        "allow" | "prefer" => ("prefer", tls(false, None)?),
        "require" => ("require", tls(false, None)?),
        "verify-ca" | "verify-full" => ("require", tls(true, root_cert.as_deref())?),
        other => anyhow::bail!(
            "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
        ),
    };
    rest.push(("sslmode".into(), client_mode.into()));
    parsed.query_pairs_mut().clear().extend_pairs(rest);
    Ok((parsed.to_string(), tls))
}

fn tls(verify: bool, root_cert: Option<&str>) -> Result<Tls> {
    // Both rustls providers are in the dependency tree, so name one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous();
    let config = if verify {
        let extra: Vec<CertificateDer<'static>> = match root_cert {
            Some(path) => CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading sslrootcert {path}"))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading sslrootcert {path}"))?,
            None => Vec::new(),
        };
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)?;
        builder.with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        builder.with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
    };
    Ok(Tls::On(MakeRustlsConnect::new(
        config.with_no_client_auth(),
    )))
}

/// libpq's `prefer`/`require`: the session is encrypted, the server is not authenticated
/// (signatures are still checked, so the handshake itself is sound).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_map_to_the_client_and_a_connector() {
        let (url, tls) =
            from_url("postgres://u@h/db?sslmode=verify-full&application_name=x").unwrap();
        assert!(
            url.contains("sslmode=require") && url.contains("application_name=x"),
            "{url}"
        );
        assert!(matches!(tls, Tls::On(_)));
        let (url, tls) = from_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert!(url.ends_with("sslmode=disable"), "{url}");
        assert!(matches!(tls, Tls::Off));
        let (url, _) = from_url("postgres://u@h/db").unwrap();
        assert!(url.ends_with("?sslmode=prefer"), "{url}");
        assert!(from_url("postgres://u@h/db?sslmode=sometimes").is_err());
        assert!(from_url("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent").is_err());
    }
}
