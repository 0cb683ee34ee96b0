//! Downloads, behind a trait so the install logic runs (and is tested) natively; in the
//! component they go through the host's `fetch` capability.

use std::path::Path;

/// What the buildpack needs from the network.
pub trait Fetcher {
    /// Downloads `url` into `dest` (verified against `digest` when given); true when the host
    /// served it from its download cache.
    fn to(&self, url: &str, digest: Option<&str>, dest: &Path) -> buildd_sdk::Result<bool>;

    /// Downloads `url` and returns its bytes (verified against `digest` when given).
    fn bytes(&self, url: &str, digest: Option<&str>) -> buildd_sdk::Result<Vec<u8>>;

    /// Makes a file executable (the host does it: WASI cannot set modes).
    fn set_executable(&self, path: &Path) -> buildd_sdk::Result<()>;
}

/// The host's `fetch` capability.
pub struct HostFetcher;

impl HostFetcher {
    fn request(url: &str, digest: Option<&str>) -> buildd_sdk::fetch::Fetch {
        let fetch = buildd_sdk::fetch::Fetch::new(url);
        match digest {
            Some(digest) => fetch.digest(digest),
            None => fetch,
        }
    }
}

impl Fetcher for HostFetcher {
    fn to(&self, url: &str, digest: Option<&str>, dest: &Path) -> buildd_sdk::Result<bool> {
        Ok(Self::request(url, digest).to(dest)?.from_cache)
    }

    fn bytes(&self, url: &str, digest: Option<&str>) -> buildd_sdk::Result<Vec<u8>> {
        Self::request(url, digest).bytes()
    }

    fn set_executable(&self, path: &Path) -> buildd_sdk::Result<()> {
        buildd_sdk::fs::set_executable(path, true)
    }
}

#[cfg(test)]
pub mod fake {
    //! An in-memory network for unit tests.
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Mutex;

    use buildd_sdk::digest::Integrity;

    /// Serves fixed bodies by URL and records what was asked.
    #[derive(Default)]
    pub struct FakeFetcher {
        pub bodies: BTreeMap<String, Vec<u8>>,
        pub requests: Mutex<Vec<String>>,
    }

    impl FakeFetcher {
        pub fn serve(mut self, url: &str, body: impl Into<Vec<u8>>) -> Self {
            self.bodies.insert(url.to_string(), body.into());
            self
        }
    }

    impl super::Fetcher for FakeFetcher {
        fn to(&self, url: &str, digest: Option<&str>, dest: &Path) -> buildd_sdk::Result<bool> {
            let body = self.bytes(url, digest)?;
            std::fs::create_dir_all(dest.parent().unwrap())?;
            std::fs::write(dest, body)?;
            Ok(false)
        }

        fn bytes(&self, url: &str, digest: Option<&str>) -> buildd_sdk::Result<Vec<u8>> {
            self.requests.lock().unwrap().push(url.to_string());
            let Some(body) = self.bodies.get(url) else {
                buildd_sdk::bail!("{url}: HTTP 404");
            };
            if let Some(digest) = digest {
                Integrity::parse(digest)?.verify(body)?;
            }
            Ok(body.clone())
        }

        fn set_executable(&self, path: &Path) -> buildd_sdk::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            Ok(())
        }
    }
}
