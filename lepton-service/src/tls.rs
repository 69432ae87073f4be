//! HTTPS: rustls (with ring) in front of the same router; the accept loop
//! is [`crate::http`]'s.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSection;
use crate::ServiceError;

/// The acceptor for `section`'s certificate chain and key.
pub(crate) fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, ServiceError> {
    let fail = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        ServiceError::Start(format!("tls: {}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&section.cert)
        .map_err(|e| fail(&section.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(&section.cert, &e))?;
    if certs.is_empty() {
        return Err(fail(&section.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&section.key).map_err(|e| fail(&section.key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&section.cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(&section.key, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
