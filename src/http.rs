//! The HTTP client every remote call uses (forward, fleet registration, Kubernetes pod labels,
//! model providers, repository clients): rustls with the `ring` provider (no C toolchain for
//! TLS), a `User-Agent`, and the caller's timeouts.
//!
//! rustls needs one process-wide crypto provider. `install_crypto_provider` installs it; the
//! binary calls it first thing at start. The builders here call it too (it runs once), so a
//! library user or a test that never went through `main` cannot end up with a client that panics
//! on its first TLS handshake.

use std::sync::Once;
use std::time::Duration;

/// `tailfix/<version>`: GitHub and others require a User-Agent.
pub const USER_AGENT: &str = concat!("tailfix/", env!("CARGO_PKG_VERSION"));

/// Installs rustls's `ring` crypto provider for the process; later calls do nothing.
pub fn install_crypto_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only when another provider is installed already, which is as good.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with the User-Agent, `timeout` for whole requests and a connect timeout
/// of at most 10 s, for callers that add their own roots or headers.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
}

/// A client with `timeout` for whole requests.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeout).build()
}
