//! TLS settings shared by every listener (`tls = { cert_file, key_file, ca_file, verify_client }`)
//! and by the clients that talk to another tailfix (`ca_file`, and a client certificate for
//! mutual TLS between agents and aggregators).
//!
//! Certificates are read when a component is built, so a reload re-reads them: a renewed
//! certificate takes effect without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// A listener's TLS: its certificate and key; with `ca_file`, client certificates are checked
/// against it, and with `verify_client` a client without one is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM file with the server certificate (and its chain).
    pub cert_file: PathBuf,
    /// PEM file with the private key.
    pub key_file: PathBuf,
    /// PEM file with the certificate authorities client certificates must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Refuse clients that present no certificate (needs `ca_file`).
    #[serde(default)]
    pub verify_client: bool,
}

impl ServerTls {
    /// The files it reads (what a reload and `--watch-config` watch).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.ca_file.clone());
        files
    }

    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let chain = certificates(&self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|error| {
            TlsError(format!(
                "cannot read the private key from {}: {error}",
                self.key_file.display()
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError(format!("TLS setup: {error}")))?;
        let builder = match (&self.ca_file, self.verify_client) {
            (None, true) => {
                return Err(TlsError(
                    "`verify_client = true` needs `ca_file`: the authorities client certificates must chain to".to_string(),
                ));
            }
            (None, false) => builder.with_no_client_auth(),
            (Some(ca_file), verify_client) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(ca_file)? {
                    roots.add(certificate).map_err(|error| {
                        TlsError(format!(
                            "{}: not a usable CA certificate: {error}",
                            ca_file.display()
                        ))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if verify_client {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|error| TlsError(format!("{}: {error}", ca_file.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|error| TlsError(format!("TLS certificate and key do not fit: {error}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A client's TLS towards another tailfix: the authority to trust beyond the system's, and a
/// certificate to present (mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file with a certificate authority to trust (e.g. a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate (and chain) to present.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl ClientTls {
    pub fn is_empty(&self) -> bool {
        *self == ClientTls::default()
    }

    pub fn files(&self) -> Vec<PathBuf> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The one HTTP client (`crate::http`) with this authority and certificate.
    pub fn client(&self, timeout: std::time::Duration) -> Result<reqwest::Client, TlsError> {
        self.apply(crate::http::builder(timeout))?
            .build()
            .map_err(|error| TlsError(format!("HTTP client: {error}")))
    }

    /// Adds the authority and the client certificate to a client being built.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        if let Some(ca_file) = &self.ca_file {
            let pem = read(ca_file)?;
            let authorities = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| TlsError(format!("{}: {error}", ca_file.display())))?;
            if authorities.is_empty() {
                return Err(TlsError(format!("no certificate in {}", ca_file.display())));
            }
            for authority in authorities {
                builder = builder.add_root_certificate(authority);
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let mut pem = read(cert_file)?;
                pem.push(b'\n');
                pem.extend(read(key_file)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
                    TlsError(format!(
                        "{} and {}: not a certificate and its key: {error}",
                        cert_file.display(),
                        key_file.display()
                    ))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(TlsError(
                    "`cert_file` and `key_file` go together: a client certificate needs its key"
                        .to_string(),
                ));
            }
        }
        Ok(builder)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|error| TlsError(format!("cannot read {}: {error}", path.display())))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect())
        .map_err(|error| {
            TlsError(format!(
                "cannot read certificates from {}: {error}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(TlsError(format!("no certificate in {}", path.display())));
    }
    Ok(certificates)
}
