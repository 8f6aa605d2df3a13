//! The serving certificate, re-read from disk when it changes.
//!
//! Kubernetes updates a mounted Secret by writing a new timestamped directory and swapping the
//! `..data` symlink to it, so file watches (inotify) on `tls.crt` miss rotations (Kubewarden had
//! to fix exactly that twice). Instead the files are polled: a cheap `stat` (device, inode,
//! size, mtime, following symlinks) every interval, and a full read, hash and parse only when
//! that changed. A new pair that doesn't parse, or whose key doesn't fit the certificate (say,
//! the certificate was replaced and the key not yet), is refused and logged: the old one keeps
//! serving until a good pair appears.

use std::fmt;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::Metrics;

/// Why a certificate/key pair can't be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    // Causes are part of the message, not `source`s: these are logged as one line.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not valid PEM: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("{path} holds no usable private key: {message}")]
    PrivateKey { path: PathBuf, message: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {error}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error("{path}: the certificate cannot be parsed: {message}")]
    X509 { path: PathBuf, message: String },
}

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A pair that parsed and fits together.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// notAfter of the leaf certificate, Unix seconds.
    not_after: i64,
}

/// Identity of one file's current content as `stat` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct WatchState {
    stamps: Option<(FileStamp, FileStamp)>,
    content_hash: u64,
}

/// What one poll found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but can't be served; the previous certificate stays.
    Rejected(CertificateError),
}

/// A rustls [`ResolvesServerCert`] serving the last good pair from disk.
pub struct CertificateResolver {
    paths: CertificatePaths,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    current: RwLock<Arc<CertifiedKey>>,
    watch: Mutex<WatchState>,
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateResolver")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl CertificateResolver {
    /// Loads the pair; unlike a reload, a first load that fails is an error.
    pub fn load(
        paths: CertificatePaths,
        provider: Arc<CryptoProvider>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, CertificateError> {
        let stamps = stamps(&paths)?;
        let (cert_pem, key_pem) = read_pair(&paths)?;
        let loaded = parse_pair(&paths, &cert_pem, &key_pem, &provider)?;
        metrics.set_certificate_expiry(loaded.not_after);
        tracing::info!(
            cert = %paths.cert.display(),
            not_after = loaded.not_after,
            "serving certificate loaded"
        );
        Ok(Self {
            watch: Mutex::new(WatchState {
                stamps: Some(stamps),
                content_hash: content_hash(&cert_pem, &key_pem),
            }),
            current: RwLock::new(loaded.key),
            paths,
            provider,
            metrics,
        })
    }

    /// The pair being served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files if they changed since the last look. Blocking file I/O: call it
    /// from a blocking thread (the server does, about once a second).
    pub fn reload_if_changed(&self) -> Reload {
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let new_stamps = match stamps(&self.paths) {
            Ok(stamps) => stamps,
            // Mid-swap, a file can be briefly missing; the next poll sees the finished state.
            Err(error) => return self.reject(&mut watch, None, error),
        };
        if watch.stamps.as_ref() == Some(&new_stamps) {
            return Reload::Unchanged;
        }
        let (cert_pem, key_pem) = match read_pair(&self.paths) {
            Ok(pair) => pair,
            Err(error) => return self.reject(&mut watch, None, error),
        };
        watch.stamps = Some(new_stamps);
        let hash = content_hash(&cert_pem, &key_pem);
        if hash == watch.content_hash {
            // Touched, or rewritten with the same bytes.
            return Reload::Unchanged;
        }
        watch.content_hash = hash;
        match parse_pair(&self.paths, &cert_pem, &key_pem, &self.provider) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded.key;
                self.metrics.observe_tls_reload(true);
                self.metrics.set_certificate_expiry(loaded.not_after);
                tracing::info!(
                    cert = %self.paths.cert.display(),
                    not_after = loaded.not_after,
                    "serving certificate reloaded"
                );
                Reload::Reloaded
            }
            Err(error) => self.reject(&mut watch, Some(hash), error),
        }
    }

    fn reject(&self, watch: &mut WatchState, hash: Option<u64>, error: CertificateError) -> Reload {
        // Stamps of unreadable files are not recorded, so the next poll tries again; a pair
        // that was read but is bad is remembered by content, so it is reported once.
        if let Some(hash) = hash {
            watch.content_hash = hash;
        }
        self.metrics.observe_tls_reload(false);
        tracing::error!(%error, "new serving certificate refused; still serving the previous one");
        Reload::Rejected(error)
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(path: &Path) -> Result<FileStamp, CertificateError> {
    let meta = fs::metadata(path).map_err(|error| CertificateError::Read {
        path: path.to_owned(),
        error,
    })?;
    Ok(FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

fn stamps(paths: &CertificatePaths) -> Result<(FileStamp, FileStamp), CertificateError> {
    Ok((stamp(&paths.cert)?, stamp(&paths.key)?))
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    fs::read(path).map_err(|error| CertificateError::Read {
        path: path.to_owned(),
        error,
    })
}

fn read_pair(paths: &CertificatePaths) -> Result<(Vec<u8>, Vec<u8>), CertificateError> {
    Ok((read(&paths.cert)?, read(&paths.key)?))
}

fn content_hash(cert: &[u8], key: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    cert.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

fn parse_pair(
    paths: &CertificatePaths,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, CertificateError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::Pem {
            path: paths.cert.clone(),
            message: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertificateError::NoCertificate {
            path: paths.cert.clone(),
        });
    };
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| CertificateError::X509 {
            path: paths.cert.clone(),
            message: e.to_string(),
        })?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertificateError::PrivateKey {
        path: paths.key.clone(),
        message: e.to_string(),
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError::PrivateKey {
                path: paths.key.clone(),
                message: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A provider that can't tell the key's public half can't compare; rustls's own
        // `CertifiedKey::from_der` lets that through too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(error) => {
            return Err(CertificateError::KeyMismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
                error,
            });
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
    })
}
