//! Where a test's install image comes from: the image store, or a plain directory.

use std::path::PathBuf;
use std::time::Duration;

/// The files of an install image, and whatever keeps them from being removed meanwhile.
pub struct ImageFiles {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    pub version: String,
    pub _guard: Option<Box<dyn std::any::Any + Send>>,
}

pub trait ImageProvider: Send + Sync {
    fn find(&self, release: &str, arch: &str) -> Result<ImageFiles, images::StoreError>;
}

/// Images from the image store (IMAGE_DIR): the newest valid one, locked while in use.
pub struct StoreImages {
    pub dir: PathBuf,
    /// How long a look-up waits for curtin's image sync to release the store
    /// (CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT; `None`: for ever).
    pub lock_timeout: Option<Duration>,
}

impl StoreImages {
    /// The run's store: IMAGE_DIR and CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT from `settings`.
    pub fn of(settings: &crate::settings::Settings) -> StoreImages {
        StoreImages {
            dir: settings.image_dir.clone(),
            lock_timeout: settings.image_lock_timeout,
        }
    }
}

impl ImageProvider for StoreImages {
    fn find(&self, release: &str, arch: &str) -> Result<ImageFiles, images::StoreError> {
        let store = images::ImageStore::open(&self.dir)?.with_lock_timeout(self.lock_timeout);
        let img = store.find_newest(release, arch)?;
        Ok(ImageFiles {
            kernel: img.kernel.clone(),
            initrd: img.initrd.clone(),
            squashfs: img.squashfs.clone(),
            version: img.version.clone(),
            _guard: Some(Box::new(img)),
        })
    }
}

/// One image's files in a directory (`kernel`, `initrd`, `squashfs`), without a store:
/// for tests and benchmarks that drive the runner with a fake backend.
pub struct DirImages(pub PathBuf);

impl ImageProvider for DirImages {
    fn find(&self, _release: &str, _arch: &str) -> Result<ImageFiles, images::StoreError> {
        Ok(ImageFiles {
            kernel: self.0.join("kernel"),
            initrd: self.0.join("initrd"),
            squashfs: self.0.join("squashfs"),
            version: "fake".into(),
            _guard: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use images::lock::{FileLock, LockKind};
    use images::store::CURTIN_LOCK;

    use super::*;
    use crate::settings::Settings;

    /// CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT reaches the stores a run opens: with curtin's
    /// image sync holding IMAGE_DIR, the image look-up and the image sync give up after
    /// it instead of waiting for ever.
    #[test]
    fn the_lock_timeout_reaches_the_store() {
        let d = tempfile::tempdir().unwrap();
        let env: HashMap<&str, String> = HashMap::from([
            ("IMAGE_DIR", d.path().display().to_string()),
            ("CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT", "0".to_string()),
        ]);
        let settings = Settings::from_lookup(|k| env.get(k).cloned(), false).unwrap();
        // curtin's vmtest-sync-images holds its lock file exclusively while it works.
        let _sync =
            FileLock::acquire(&d.path().join(CURTIN_LOCK), LockKind::Exclusive, true).unwrap();
        let busy = |e: &images::StoreError| matches!(e, images::StoreError::CurtinBusy { .. });
        let err = StoreImages::of(&settings)
            .find("bookworm", "amd64")
            .err()
            .expect("the look-up must not get the image while the sync holds the store");
        assert!(busy(&err), "{err}");
        let err = settings.image_store().unwrap().prune(1).unwrap_err();
        assert!(busy(&err), "{err}");
    }
}
