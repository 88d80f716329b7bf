//! Small fake images published through the same path a real build uses, in temporary
//! stores: what the store tests share.

use std::collections::BTreeMap;
use std::fs;

use images::store::{BuildSlot, INDEX_FORMAT, ImageIndex, ImageStore, IndexItem};

pub const KREL: &str = "6.1.0-99-cloud-amd64";

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Publishes a fake image through the same path a real build uses; returns its directory.
pub fn fake_image(store: &ImageStore, release: &str, tag: &str) -> std::path::PathBuf {
    publish_fake(store.begin_build(release, "amd64").unwrap(), release, tag)
}

/// Publishes a fake image from a build slot already held (the build's lock goes with it).
pub fn publish_fake(slot: BuildSlot, release: &str, tag: &str) -> std::path::PathBuf {
    let out = slot.staging.join("out");
    let files = [
        (
            "boot-kernel",
            format!("{KREL}/cloud/boot-kernel"),
            format!("kernel {tag}"),
        ),
        (
            "boot-initrd",
            format!("{KREL}/cloud/boot-initrd"),
            format!("initrd {tag}"),
        ),
        (
            "squashfs",
            "squashfs".to_string(),
            format!("squashfs {tag} {}", "x".repeat(5000)),
        ),
    ];
    let mut items = BTreeMap::new();
    for (name, rel, data) in &files {
        let p = out.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        items.insert(
            name.to_string(),
            IndexItem {
                path: rel.clone(),
                size: data.len() as u64,
                sha256: sha256(data.as_bytes()),
            },
        );
    }
    let index = ImageIndex {
        format: INDEX_FORMAT.into(),
        os: "debian".into(),
        release: release.into(),
        arch: "amd64".into(),
        version: String::new(),
        flavor: "cloud".into(),
        kernel_package: "linux-image-cloud-amd64".into(),
        kernel_release: KREL.into(),
        created: "2026-01-01T00:00:00Z".into(),
        source_date_epoch: 0,
        mirrors: vec![],
        builder: "test".into(),
        recipe: images::build::IMAGE_RECIPE,
        items,
    };
    slot.publish(&out, index).unwrap()
}

pub fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    (dir, store)
}
