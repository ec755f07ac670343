//! TLS for the connection to the broker: the CA certificates the broker's
//! certificate must chain to (the system's roots without them), the
//! client's own certificate and key for mutual TLS, and the name the
//! broker's certificate must carry (the URL's host without one).

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Error, Result};

/// TLS settings; `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificates that sign the broker's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key of this client (mTLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to check the broker's certificate against.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field(
                "identity",
                &self.identity.as_ref().map(|_| "<cert and key>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("reading {what} {}: {e}", path.display())))
}

impl TlsOptions {
    /// Settings from PEM files: a CA bundle, and a certificate with its key.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((
                read("the client certificate", c)?,
                read("the client key", k)?,
            )),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidArgument(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        Ok(Self {
            ca_pem: ca.map(|p| read("the CA certificates", p)).transpose()?,
            identity,
            server_name: None,
        })
    }

    /// Settings from the CLI's (and strata-bench's) flags: `None` when none
    /// of the CA, the certificate and the server name is given.
    pub fn from_settings(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        server_name: Option<&str>,
    ) -> Result<Option<Self>> {
        if ca.is_none() && cert.is_none() && server_name.is_none() {
            return Ok(None);
        }
        let mut tls = Self::from_files(ca, cert, key)?;
        tls.server_name = server_name.map(String::from);
        Ok(Some(tls))
    }

    /// tonic's configuration (rustls with the ring provider).
    pub(crate) fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca_pem {
            Some(pem) => c.ca_certificate(Certificate::from_pem(pem)),
            None => c.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            c = c.domain_name(name.clone());
        }
        c
    }
}
