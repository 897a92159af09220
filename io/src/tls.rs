//! Client TLS: the rustls `ServerConfig` built once at start from the
//! options, and the per-connection state the reactor keeps between the
//! socket and the connection machine.
//!
//! ```text
//!            plaintext (INFO, or nothing with handshake_first)
//! socket ──► read_tls ──► process_new_packets ──► reader().read ──► machine read buffer
//! socket ◄── write_tls ◄────────── writer().write ◄──────────────── outbound (wbuf)
//! ```
//!
//! As nats-server: INFO goes out in plaintext with `tls_required`, then the
//! client starts the handshake; with `handshake_first` the handshake comes
//! first and INFO is the first record after it. A client that does not
//! finish within `tls.timeout` is dropped.
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use natsd_engine::options::{Options, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

/// Build the client TLS config, or `None` when TLS is off. Errors read as
/// nats-server's start-up errors for the same mistake.
pub fn server_config(opts: &Options) -> io::Result<Option<Arc<ServerConfig>>> {
    if !opts.tls {
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file)) = (&opts.tls_cert, &opts.tls_key) else {
        return Err(invalid(
            "missing 'cert_file' or 'key_file' in TLS configuration",
        ));
    };
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        invalid(&format!(
            "error parsing X509 certificate/key pair: {}: {e}",
            key_file.display()
        ))
    })?;
    // The ring provider explicitly: async-nats (a test dependency) enables
    // rustls's ring feature too, and two providers make rustls's default
    // lookup panic (CRATES.md).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.tls_min_version {
        TlsVersion::V1_2 => rustls::ALL_VERSIONS,
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| invalid(&format!("TLS configuration: {e}")))?;
    let builder = if opts.tls_verify {
        let Some(ca_file) = &opts.tls_ca_cert else {
            return Err(invalid(
                "TLS verify needs a CA file (tls.ca_file / --tlscacert)",
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca_file)? {
            roots
                .add(cert)
                .map_err(|_| invalid("failed to parse root ca certificate"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| invalid(&format!("TLS client verification: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&format!("error parsing X509 certificate/key pair: {e}")))?;
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let parse_err = |e: &dyn std::fmt::Display| {
        invalid(&format!(
            "error parsing certificate: {}: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| parse_err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_err(&e))?;
    if certs.is_empty() {
        return Err(parse_err(&"no certificate found"));
    }
    Ok(certs)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// A connection's TLS session and its handshake deadline.
pub struct Tls {
    pub conn: ServerConnection,
    /// When the handshake must be done; `None` once it is.
    pub deadline: Option<Instant>,
    /// Close without sending rustls's alert: the peer did not speak TLS.
    pub silent: bool,
}

impl Tls {
    pub fn new(config: &Arc<ServerConfig>, deadline: Instant) -> Result<Box<Tls>, rustls::Error> {
        let conn = ServerConnection::new(config.clone())?;
        Ok(Box::new(Tls {
            conn,
            deadline: Some(deadline),
            silent: false,
        }))
    }

    /// A debug line for a finished handshake, as nats-server logs it.
    pub fn describe(&self) -> String {
        let version = self
            .conn
            .protocol_version()
            .map_or_else(|| "unknown".to_string(), |v| format!("{v:?}"));
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_string(), |s| format!("{:?}", s.suite()));
        format!("TLS handshake complete ({version}, {suite})")
    }
}
