//! Where a test's install image comes from: the image store, or a plain directory.

use std::path::PathBuf;

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
}

impl ImageProvider for StoreImages {
    fn find(&self, release: &str, arch: &str) -> Result<ImageFiles, images::StoreError> {
        let store = images::ImageStore::open(&self.dir)?;
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
