//! HTTPS: rustls (with ring) in front of the same router, connection by
//! connection through hyper-util.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

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

/// Serves `router` over TLS until `shutdown` resolves; connections under
/// way when it does are dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%error, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    warn!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                warn!(%peer, %error, "connection ended with an error");
            }
        });
    }
}
