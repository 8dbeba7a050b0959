//! The HTTP client every remote service uses: rustls with the `ring` provider (no C toolchain
//! for TLS), a `User-Agent`, and the caller's timeout.

use std::sync::Once;
use std::time::Duration;

/// `tailfix/<version>`: GitHub and others require a User-Agent.
pub const USER_AGENT: &str = concat!("tailfix/", env!("CARGO_PKG_VERSION"));

/// A client with `timeout` for whole requests.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only when another provider is installed already, which is as good.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
}
