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

use natsd_engine::auth::{DnAttr, TlsPeer};
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

    /// The names in the client's certificate (the first of its chain, as
    /// nats-server), once the handshake is done; `None` without one or when
    /// it does not parse.
    pub fn peer(&self) -> Option<TlsPeer> {
        let cert = self.conn.peer_certificates()?.first()?;
        parse_peer(cert.as_ref())
    }
}

/// The subject and subject alternative names of a DER certificate. rustls
/// has verified it already; this only reads the fields `verify_and_map`
/// needs, and gives up on anything it does not expect.
fn parse_peer(der: &[u8]) -> Option<TlsPeer> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const VERSION: u8 = 0xa0;
    const EXTENSIONS: u8 = 0xa3;
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

    let mut cert = Der(der).expect(SEQUENCE)?;
    let mut tbs = cert.expect(SEQUENCE)?;
    let mut peer = TlsPeer::default();
    if tbs.peek() == Some(VERSION) {
        tbs.next()?;
    }
    // Serial number, signature algorithm, issuer, validity.
    for _ in 0..4 {
        tbs.next()?;
    }
    let mut subject = tbs.expect(SEQUENCE)?;
    while !subject.is_empty() {
        let mut set = subject.expect(SET)?;
        let mut rdn = Vec::new();
        while !set.is_empty() {
            let mut atv = set.expect(SEQUENCE)?;
            let oid = oid_string(atv.expect(OID)?.0)?;
            let (tag, value) = atv.next()?;
            rdn.push(DnAttr {
                oid,
                value: der_string(tag, value),
            });
        }
        peer.subject.push(rdn);
    }
    // The public key, then the optional unique IDs and extensions.
    tbs.next()?;
    while let Some((tag, body)) = tbs.next() {
        if tag != EXTENSIONS {
            continue;
        }
        let mut exts = Der(body).expect(SEQUENCE)?;
        while !exts.is_empty() {
            let mut ext = exts.expect(SEQUENCE)?;
            let oid = ext.expect(OID)?;
            if ext.peek() == Some(BOOLEAN) {
                ext.next()?;
            }
            let mut value = ext.expect(OCTET_STRING)?;
            if oid.0 != SAN_OID {
                continue;
            }
            let mut names = value.expect(SEQUENCE)?;
            while let Some((tag, name)) = names.next() {
                let name = String::from_utf8_lossy(name).into_owned();
                match tag {
                    0x81 => peer.emails.push(name),
                    0x82 => peer.dns.push(name),
                    0x86 => peer.uris.push(name),
                    _ => {}
                }
            }
        }
    }
    Some(peer)
}

/// A DER string value as text, for the string types a subject uses.
fn der_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, NumericString, PrintableString, IA5String.
        0x0c | 0x12 | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        // T61String: read as Latin-1.
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16, big endian.
        0x1e if value.len().is_multiple_of(2) => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A DER OBJECT IDENTIFIER's body, dotted.
fn oid_string(body: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in body {
        acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    if arcs.is_empty() || body.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// A cursor over DER elements (single-byte tags, definite lengths).
#[derive(Clone, Copy)]
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element's tag and body.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, after) = rest.split_at(n);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (body, after) = rest.split_at(len);
        self.0 = after;
        Some((tag, body))
    }

    /// The next element, which must have `tag`, as a cursor over its body.
    fn expect(&mut self, tag: u8) -> Option<Der<'a>> {
        match self.next()? {
            (t, body) if t == tag => Some(Der(body)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/certs")
            .join(name);
        read_certs(&path).expect("test cert").remove(0).to_vec()
    }

    #[test]
    fn reads_subject_and_sans_of_the_test_client_cert() {
        let peer = parse_peer(&der_of("client-cert.pem")).expect("parses");
        assert_eq!(peer.emails, ["alice@example.com"]);
        assert!(peer.dns.is_empty() && peer.uris.is_empty());
        let attrs: Vec<(&str, Option<&str>)> = peer
            .subject
            .iter()
            .flatten()
            .map(|a| (a.oid.as_str(), a.value.as_deref()))
            .collect();
        assert!(attrs.contains(&("2.5.4.3", Some("alice"))), "{attrs:?}");
        assert!(
            attrs.contains(&("2.5.4.10", Some("natsd tests"))),
            "{attrs:?}"
        );
    }

    #[test]
    fn oids_and_garbage() {
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(
            oid_string(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]).as_deref(),
            Some("0.9.2342.19200300.100.1.25")
        );
        assert_eq!(oid_string(&[0x80]), None);
        assert_eq!(parse_peer(&[]), None);
        assert_eq!(parse_peer(&[0x30, 0x05, 0x30]), None);
    }
}
