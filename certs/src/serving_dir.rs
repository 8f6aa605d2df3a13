//! The local directory the webhook serves its certificate from.
//!
//! The webhook's resolver reads `tls.crt` and then `tls.key`; if the two were replaced one
//! after the other it could read a new certificate with an old key and refuse the pair. So
//! the files are written the way the kubelet writes a Secret volume: into a fresh directory,
//! published by renaming one `..data` symlink over the old one, with `tls.crt` and `tls.key`
//! themselves being fixed symlinks through `..data`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::bundle::{CA_CRT, CertBundle, TLS_CRT, TLS_KEY};

const DATA_LINK: &str = "..data";

/// Where the served files live.
#[derive(Debug)]
pub struct ServingDir {
    dir: PathBuf,
    generation: AtomicU64,
}

impl ServingDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            generation: AtomicU64::new(0),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(TLS_CRT)
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join(TLS_KEY)
    }

    /// Whether the files on disk already hold `bundle`'s serving pair and trust bundle.
    pub fn holds(&self, bundle: &CertBundle) -> bool {
        self.holds_files(
            &bundle.serving.cert_pem,
            &bundle.serving.key_pem,
            &bundle.trust_bundle(),
        )
    }

    /// Whether the files on disk are exactly these.
    pub fn holds_files(&self, cert_pem: &str, key_pem: &str, ca_pem: &str) -> bool {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).ok();
        read(TLS_CRT).as_deref() == Some(cert_pem)
            && read(TLS_KEY).as_deref() == Some(key_pem)
            && read(CA_CRT).as_deref() == Some(ca_pem)
    }

    /// Publishes `bundle`'s serving pair (and the trust bundle, for debugging) in one step.
    pub fn write(&self, bundle: &CertBundle) -> Result<(), Error> {
        self.write_files(
            &bundle.serving.cert_pem,
            &bundle.serving.key_pem,
            &bundle.trust_bundle(),
        )
    }

    /// Publishes a serving pair and its CA in one step.
    pub fn write_files(&self, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Write { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let name = format!("..{}-{generation}", std::process::id());
        let staging = self.dir.join(&name);
        // Left over from a crash of an earlier process with the same pid.
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(io(&staging))?;
        for (file, contents, mode) in [
            (TLS_CRT, cert_pem, 0o644),
            (TLS_KEY, key_pem, 0o600),
            (CA_CRT, ca_pem, 0o644),
        ] {
            let path = staging.join(file);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| f.write_all(contents.as_bytes()))
                .map_err(io(&path))?;
        }
        let link = self.dir.join(DATA_LINK);
        let previous = fs::read_link(&link).ok();
        let new_link = self.dir.join(format!("{DATA_LINK}_tmp"));
        let _ = fs::remove_file(&new_link);
        symlink(&name, &new_link).map_err(io(&new_link))?;
        // rename(2) replaces the old link atomically: a reader sees the old pair or the new.
        fs::rename(&new_link, &link).map_err(io(&link))?;
        for file in [TLS_CRT, TLS_KEY, CA_CRT] {
            let path = self.dir.join(file);
            if fs::read_link(&path).ok().as_deref() != Some(&Path::new(DATA_LINK).join(file)) {
                let _ = fs::remove_file(&path);
                symlink(Path::new(DATA_LINK).join(file), &path).map_err(io(&path))?;
            }
        }
        if let Some(previous) = previous
            && previous != Path::new(&name)
        {
            let _ = fs::remove_dir_all(self.dir.join(previous));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::*;
    use crate::issue::ServingNames;
    use crate::rotation::{Lifetimes, Step, apply};

    fn bundle(at: i64) -> CertBundle {
        let lifetimes =
            Lifetimes::new(Duration::from_secs(30), Duration::from_secs(90)).expect("lifetimes");
        let now = OffsetDateTime::from_unix_timestamp(at).expect("time");
        apply(None, Step::Issue, &ServingNames::default(), &lifetimes, now).expect("issued")
    }

    #[test]
    fn a_rewrite_replaces_both_files_and_leaves_no_old_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let serving = ServingDir::new(dir.path());
        let first = bundle(1_800_000_000);
        serving.write(&first).expect("written");
        assert!(serving.holds(&first));
        let second = bundle(1_800_000_100);
        serving.write(&second).expect("rewritten");
        assert!(serving.holds(&second));
        assert_eq!(
            fs::read_to_string(serving.cert_path()).expect("cert"),
            second.serving.cert_pem
        );
        let entries = fs::read_dir(dir.path()).expect("list").count();
        // ..data, one generation directory, and the three links.
        assert_eq!(entries, 5);
    }
}
