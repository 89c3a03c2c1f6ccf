//! TLS to Redis (`rediss://`): rustls with the ring provider, verified
//! against the system roots or a `--redis-ca` PEM file, with an optional
//! client certificate (`--redis-cert`, `--redis-key`).
//!
//! The guarantees:
//! - once the URL says TLS, every connection the bridge makes to Redis
//!   (its own multiplexed ones, the subscriptions', the transactions', a
//!   sentinel's) is TLS; none falls back to plain text;
//! - the server's certificate is verified, chain and name: the name is the
//!   host the bridge connects to (the URL's, a cluster node's as the
//!   cluster gives it, or the master's address as Sentinel reports it);
//! - a CA, certificate or key file that cannot be read or used is an error
//!   at start naming its flag, never a connection that fails later;
//! - `--redis-ca`, `--redis-cert` or `--redis-key` with a plain-text URL is
//!   an error too: they would otherwise be silently ignored.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The TLS files given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Files {
    /// `--redis-ca`: trust these certificates (PEM) instead of the system roots.
    pub ca: Option<PathBuf>,
    /// `--redis-cert`: the client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// `--redis-key`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

/// Whether a Redis URL asks for TLS: `rediss://`, `rediss-cluster://`,
/// `rediss-sentinel://` (and fred's `valkeys` spellings), in any case.
pub fn url_wants_tls(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    url.contains("://") && (scheme.starts_with("rediss") || scheme.starts_with("valkeys"))
}

/// The rustls client settings for `url`: `None` for a plain-text URL (and
/// an error if TLS files were given for it), else the roots and the
/// client certificate, loaded now.
pub fn settings(url: &str, files: &Files) -> Result<Option<Arc<ClientConfig>>, String> {
    if !url_wants_tls(url) {
        for (flag, f) in [
            ("--redis-ca", &files.ca),
            ("--redis-cert", &files.cert),
            ("--redis-key", &files.key),
        ] {
            if f.is_some() {
                return Err(format!(
                    "{flag} is for TLS to Redis: the --redis-url must be rediss:// \
                     (or rediss-cluster://, rediss-sentinel://)"
                ));
            }
        }
        return Ok(None);
    }
    client_config(files).map(|c| Some(Arc::new(c)))
}

/// Builds the rustls settings from the files (the system roots without `ca`).
pub fn client_config(files: &Files) -> Result<ClientConfig, String> {
    let roots = match &files.ca {
        Some(ca) => ca_roots(ca)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS to Redis: {e}"))?
        .with_root_certificates(roots);
    match (&files.cert, &files.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err("--redis-cert needs --redis-key (its private key)".into()),
        (None, Some(_)) => Err("--redis-key needs --redis-cert (its certificate)".into()),
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "--redis-cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "--redis-key {}: {}",
                    key.display(),
                    pem_error(e, "PEM private key")
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("--redis-cert/--redis-key: the key does not fit the certificate or cannot be used: {e}")
            })
        }
    }
}

fn pem_error(e: rustls_pki_types::pem::Error, what: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => format!("no {what} in the file"),
        other => format!("not a valid {what}: {other:?}"),
    }
}

/// Every certificate of a PEM file, at least one.
fn certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |e| {
        format!(
            "{flag} {}: {}",
            path.display(),
            pem_error(e, "PEM certificate")
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(bad(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(path, "--redis-ca")? {
        roots.add(c).map_err(|e| {
            format!(
                "--redis-ca {}: a certificate that cannot be a CA: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // Some unparsable system certificates are common; the rest still count.
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "TLS to Redis: no system root certificates found{why}; install the \
             ca-certificates package or give the CA with --redis-ca"
        ));
    }
    Ok(roots)
}

/// A connection to Redis, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to `host:port`, with TLS when `tls` is given (verifying the
/// server as `host`), else in plain text.
pub async fn open(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Stream, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(config) => handshake(config, host, tcp).await,
    }
}

/// The URL as fred should parse it: without the TLS in its scheme
/// (`rediss` -> `redis`), since the TLS settings are the bridge's (fred's
/// own would load the system roots again, and fail on other errors).
pub fn plain_scheme(url: &str) -> std::borrow::Cow<'_, str> {
    if !url_wants_tls(url) {
        return url.into();
    }
    let i = url.find("://").expect("a scheme");
    let scheme = url[..i].to_ascii_lowercase();
    let plain = scheme
        .replacen("rediss", "redis", 1)
        .replacen("valkeys", "valkey", 1);
    format!("{plain}{}", &url[i..]).into()
}

/// Opens the TLS session on `tcp`, verifying the server as `host`.
pub async fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<Stream, String> {
    // An IPv6 address may come bracketed from a URL.
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("TLS: {host} cannot be a server name: {e}"))?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map(|s| Stream::Tls(Box::new(s)))
        .map_err(|e| format!("TLS handshake with {host}: {e}"))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_are_told_apart() {
        for url in [
            "rediss://h:1",
            "REDISS://:pw@h:1/0",
            "rediss-cluster://h:1?node=h:2",
            "rediss-sentinel://h:1?sentinelServiceName=m",
            "valkeys://h",
        ] {
            assert!(url_wants_tls(url), "{url}");
        }
        for url in [
            "redis://h:1",
            "redis-cluster://h:1",
            "redis-sentinel://h",
            "h:6379",
            "rediss",
        ] {
            assert!(!url_wants_tls(url), "{url}");
        }
    }

    #[test]
    fn fred_parses_the_url_without_its_tls() {
        assert_eq!(plain_scheme("rediss://:pw@h:1/2"), "redis://:pw@h:1/2");
        assert_eq!(
            plain_scheme("REDISS-cluster://h:1?node=h:2"),
            "redis-cluster://h:1?node=h:2"
        );
        assert_eq!(
            plain_scheme("rediss-sentinel://h?sentinelServiceName=m"),
            "redis-sentinel://h?sentinelServiceName=m"
        );
        assert_eq!(plain_scheme("redis://h:1"), "redis://h:1");
    }

    /// A file of the test's own, removed when dropped.
    struct Temp(PathBuf);
    impl Temp {
        fn new(name: &str, body: &[u8]) -> Temp {
            let p =
                std::env::temp_dir().join(format!("edgecache-tls-{}-{name}", std::process::id()));
            std::fs::write(&p, body).unwrap();
            Temp(p)
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A self-signed certificate and its key, made by openssl.
    fn openssl_pair(name: &str) -> (Temp, Temp) {
        let key = Temp::new(&format!("{name}.key"), b"");
        let crt = Temp::new(&format!("{name}.crt"), b"");
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=edgecache test"])
            .arg("-keyout")
            .arg(&key.0)
            .arg("-out")
            .arg(&crt.0)
            .output()
            .expect("openssl");
        assert!(ok.status.success(), "{ok:?}");
        (crt, key)
    }

    fn files(ca: Option<&Temp>, cert: Option<&Temp>, key: Option<&Temp>) -> Files {
        Files {
            ca: ca.map(|t| t.0.clone()),
            cert: cert.map(|t| t.0.clone()),
            key: key.map(|t| t.0.clone()),
        }
    }

    #[test]
    fn tls_files_are_loaded_or_refused_naming_their_flag() {
        let (crt, key) = openssl_pair("a");
        let (_crt2, key2) = openssl_pair("b");
        let junk = Temp::new("junk.pem", b"not a pem file\n");
        let missing = PathBuf::from("/nonexistent/edgecache/ca.pem");

        // Good: a CA file, with and without a client certificate.
        assert!(client_config(&files(Some(&crt), None, None)).is_ok());
        let c = client_config(&files(Some(&crt), Some(&crt), Some(&key))).unwrap();
        assert!(c.client_auth_cert_resolver.has_certs());

        let err = |f: Files| client_config(&f).expect_err("refused");
        let e = err(Files {
            ca: Some(missing.clone()),
            ..Files::default()
        });
        assert!(
            e.starts_with("--redis-ca /nonexistent/edgecache/ca.pem: "),
            "{e}"
        );
        let e = err(files(Some(&junk), None, None));
        assert!(
            e.starts_with("--redis-ca ") && e.ends_with("no PEM certificate in the file"),
            "{e}"
        );
        // A key is not a certificate.
        let e = err(files(Some(&key), None, None));
        assert!(e.starts_with("--redis-ca "), "{e}");
        let e = err(files(Some(&crt), Some(&junk), Some(&key)));
        assert!(e.starts_with("--redis-cert "), "{e}");
        let e = err(files(Some(&crt), Some(&crt), Some(&junk)));
        assert!(e.starts_with("--redis-key "), "{e}");
        let e = err(files(Some(&crt), Some(&crt), Some(&crt)));
        assert!(e.starts_with("--redis-key "), "{e}");
        // Another key than the certificate's.
        let e = err(files(Some(&crt), Some(&crt), Some(&key2)));
        assert!(e.starts_with("--redis-cert/--redis-key: "), "{e}");
        let e = err(files(Some(&crt), Some(&crt), None));
        assert!(e.contains("--redis-cert needs --redis-key"), "{e}");
        let e = err(files(Some(&crt), None, Some(&key)));
        assert!(e.contains("--redis-key needs --redis-cert"), "{e}");

        // Files with a plain-text URL: refused, not ignored.
        for f in [
            files(Some(&crt), None, None),
            files(None, Some(&crt), Some(&key)),
        ] {
            let e = settings("redis://127.0.0.1:6379", &f).expect_err("refused");
            assert!(e.contains("rediss://"), "{e}");
        }
        assert!(settings("redis://127.0.0.1:6379", &Files::default())
            .unwrap()
            .is_none());
        assert!(
            settings("rediss://127.0.0.1:6379", &files(Some(&crt), None, None))
                .unwrap()
                .is_some()
        );
    }
}
