//! TLS for the gRPC listener: rustls with the ring provider, the
//! certificate chain and key, and for mutual TLS the CA bundle client
//! certificates must chain to, all read from PEM files.
//!
//! [`Tls::reload`] (on SIGHUP) builds a new configuration from the same
//! files and swaps it in: handshakes after it use the new files, open
//! connections keep the session they have. Files that do not load leave
//! the old configuration serving, and the error says which file.
//!
//! A client certificate's subject (RFC 4514 text, `CN=alice,O=Acme`) is
//! mapped to the connection's principal name by Kafka's
//! `ssl.principal.mapping.rules` ([`MappingRules`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::core::security::mapping::MappingRules;
use crate::core::security::principal::check_name;

/// Whether clients must present a certificate (with `--tls-client-ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// A client without a certificate is refused at the handshake.
    Required,
    /// A client may connect without one (and authenticate with a token).
    Requested,
}

/// Where the listener's TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, the listener's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a certificate is required.
    pub client_auth: ClientAuth,
}

/// The listener's TLS configuration, swappable while serving.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
    mapping: MappingRules,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{flag} {}: reading PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{flag} {}: holds no certificate", path.display());
    }
    Ok(certs)
}

/// A server configuration from `files`.
fn load(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let chain = certs(&files.cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "--tls-key {}: reading a PEM private key",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "--tls-client-ca")? {
                roots
                    .add(c)
                    .with_context(|| format!("--tls-client-ca {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Requested => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .with_context(|| format!("--tls-client-ca {}", ca.display()))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {} are not a certificate and its key",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // gRPC is HTTP/2 only; clients (tonic's among them) insist on h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl Tls {
    /// Loads `files`; the broker does not start if they do not load.
    pub fn load(files: TlsFiles, mapping: MappingRules) -> anyhow::Result<Self> {
        let config = load(&files)?;
        Ok(Self {
            files,
            config: RwLock::new(Arc::new(config)),
            mapping,
        })
    }

    /// Reads the files again and serves them to new handshakes; on an
    /// error the old configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = Arc::new(load(&self.files)?);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.config
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    /// The principal name of a client whose chain starts with `leaf`, or
    /// why it has none (an unreadable subject, no rule matching).
    pub fn principal_name(&self, leaf: &CertificateDer<'_>) -> Result<String, String> {
        let dn = subject(leaf)?;
        let name = self
            .mapping
            .apply(&dn)
            .ok_or_else(|| format!("no --tls-principal-mapping-rules rule matches {dn:?}"))?;
        // ACLs must be able to name it: the rules map what cannot be.
        check_name("certificate principal", &name).map_err(|e| {
            format!("{e}; the subject {dn:?} needs a --tls-principal-mapping-rules rule")
        })?;
        Ok(name)
    }
}

/// A certificate's subject as RFC 4514 text (most specific part first, as
/// Java's RFC 2253 form, which Kafka's mapping rules are written against).
pub fn subject(cert: &CertificateDer<'_>) -> Result<String, String> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    Ok(parsed.tbs_certificate.subject.to_string())
}
