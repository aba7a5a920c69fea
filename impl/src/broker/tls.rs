//! TLS for SSL and SASL_SSL listeners (rustls; TLS 1.2 and 1.3 only): the server
//! certificate and key from one PEM file, client certificates checked against a PEM
//! trust store, and both re-read when the files change, so a renewed certificate
//! takes effect without a restart (R-SEC-6). A client certificate names the
//! connection's principal as Kafka does: its subject, RFC 2253 style.

use super::config::{BrokerConfig, ClientAuth};
use chronik_core::security::Principal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How often the files' modification times are looked at, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// The current acceptor, rebuilt when the key store or trust store changes.
pub struct Tls {
    files: TlsFiles,
    state: Mutex<Loaded>,
}

struct TlsFiles {
    keystore: PathBuf,
    truststore: Option<PathBuf>,
    client_auth: ClientAuth,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl Tls {
    /// `None` when no listener needs TLS; an error when the files do not make a
    /// working configuration (the broker refuses to start rather than serve
    /// without it).
    pub fn from_config(config: &BrokerConfig) -> Result<Option<Arc<Tls>>, String> {
        let Some(keystore) = config.ssl_keystore_location.clone() else {
            return Ok(None);
        };
        let files = TlsFiles {
            keystore,
            truststore: config.ssl_truststore_location.clone(),
            client_auth: config.client_auth(),
        };
        let state = Mutex::new(Loaded {
            acceptor: files.build()?,
            stamps: files.stamps(),
            checked: Instant::now(),
        });
        Ok(Some(Arc::new(Tls { files, state })))
    }

    /// The acceptor for a new connection, re-reading the files if they changed. A
    /// change that does not load is logged and the previous configuration kept.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        let mut state = self.state.lock().ok()?;
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = Instant::now();
            let stamps = self.files.stamps();
            if stamps != state.stamps {
                state.stamps = stamps;
                match self.files.build() {
                    Ok(acceptor) => {
                        tracing::info!(keystore = %self.files.keystore.display(), "TLS certificates reloaded");
                        state.acceptor = acceptor;
                    }
                    Err(e) => tracing::error!(error = %e,
                        "TLS files changed but do not load; keeping the previous certificates"),
                }
            }
        }
        Some(state.acceptor.clone())
    }
}

impl TlsFiles {
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        [Some(&self.keystore), self.truststore.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    fn build(&self) -> Result<TlsAcceptor, String> {
        let chain = read_certificates(&self.keystore)?;
        let key = PrivateKeyDer::from_pem_file(&self.keystore)
            .map_err(|e| format!("no private key in {}: {e}", self.keystore.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match (self.client_auth, &self.truststore) {
            (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
            (auth, Some(truststore)) => {
                let mut roots = RootCertStore::empty();
                for ca in read_certificates(truststore)? {
                    roots
                        .add(ca)
                        .map_err(|e| format!("{}: {e}", truststore.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("{}: {e}", self.keystore.display()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certificates)
}

/// Kafka's principal for a client certificate: `User:` and the subject's
/// distinguished name as `X500Principal.getName()` prints it (RFC 2253: the last
/// RDN first, `CN=client,O=Example`).
pub fn certificate_principal(certificate: &CertificateDer<'_>) -> Option<Principal> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in parsed
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let attributes: Option<Vec<String>> = rdn
            .iter()
            .map(|attribute| {
                let oid = attribute.attr_type();
                let name = x509_parser::objects::oid2abbrev(oid, registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| oid.to_id_string());
                let value = attribute.as_str().ok()?;
                Some(format!("{name}={}", escape_rfc2253(value)))
            })
            .collect();
        parts.push(attributes?.join("+"));
    }
    Some(Principal::user(parts.join(",")))
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == '#' || c == ' ');
        let trailing = i == last && c == ' ';
        if leading || trailing || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The replica fetcher's TLS, when the inter-broker listener uses it: the peers'
/// certificates checked against the trust store, and this broker's own certificate
/// presented, so that a leader requiring client certificates knows its follower.
pub fn inter_broker_client(config: &BrokerConfig) -> Result<Option<Arc<ClientConfig>>, String> {
    let specs = config.listener_specs()?;
    if !specs[0].protocol.uses_tls() || config.voters.len() <= 1 {
        return Ok(None);
    }
    let (Some(truststore), Some(keystore)) = (
        &config.ssl_truststore_location,
        &config.ssl_keystore_location,
    ) else {
        return Err(format!(
            "the inter-broker listener {} uses TLS: set ssl_truststore_location to the CA of the peers' certificates",
            specs[0].name
        ));
    };
    let mut roots = RootCertStore::empty();
    for ca in read_certificates(truststore)? {
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", truststore.display()))?;
    }
    let key = PrivateKeyDer::from_pem_file(keystore)
        .map_err(|e| format!("no private key in {}: {e}", keystore.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certificates(keystore)?, key)
        .map_err(|e| format!("{}: {e}", keystore.display()))?;
    Ok(Some(Arc::new(client)))
}

#[cfg(test)]
mod tests {
    use super::escape_rfc2253;

    /// R-SEC-5: a subject value prints as X500Principal.getName() prints it.
    #[test]
    fn r_sec_5_subject_values_are_escaped_as_rfc_2253() {
        assert_eq!(escape_rfc2253("writer"), "writer");
        assert_eq!(escape_rfc2253("Doe, Jane+1"), "Doe\\, Jane\\+1");
        assert_eq!(escape_rfc2253("#lead and trail "), "\\#lead and trail\\ ");
        assert_eq!(escape_rfc2253(""), "");
    }
}
