//! The image index, `vmtest-image.json`: the format, and reading one version directory.
//!
//! # Index format (`vmtest-image.json`, format `vmtest-image/1`)
//!
//! ```json
//! {
//!   "format": "vmtest-image/1",
//!   "os": "debian",
//!   "release": "bookworm",
//!   "arch": "amd64",
//!   "version": "20261124",
//!   "flavor": "cloud",
//!   "kernel_package": "linux-image-cloud-amd64",
//!   "kernel_release": "6.1.0-56-cloud-amd64",
//!   "created": "2026-11-24T23:41:07Z",
//!   "source_date_epoch": 1764028800,
//!   "mirrors": [],
//!   "builder": "vmtest images build 0.1.0",
//!   "recipe": 2,
//!   "items": {
//!     "boot-kernel": {"path": "6.1.0-56-cloud-amd64/cloud/boot-kernel", "size": 7456, "sha256": "<64 hex>"},
//!     "boot-initrd": {"path": "6.1.0-56-cloud-amd64/cloud/boot-initrd", "size": 1234, "sha256": "..."},
//!     "squashfs":    {"path": "squashfs", "size": 190000000, "sha256": "..."},
//!     "manifest":    {"path": "squashfs.manifest", "size": 5000, "sha256": "..."}
//!   }
//! }
//! ```
//!
//! Item paths are relative to the version directory and may not leave it. `items` must hold
//! `boot-kernel`, `boot-initrd` and `squashfs` (the ftype names MAAS uses); other items are
//! checked the same way. `mirrors` is empty when mmdebstrap's default (deb.debian.org with
//! updates and security) was used. `source_date_epoch` is the `SOURCE_DATE_EPOCH` the build
//! used: building again with it and the same package versions gives the same files.
//! `recipe` is the revision of what the build puts into the root; `images sync` rebuilds
//! when the newest image's is older than the builder's (absent: 1).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::candidate::{Candidate, ImageOrigin, ItemRef, Problem};
use super::paths::safe_join;

/// Name of the per-image index file.
pub const INDEX_FILE: &str = "vmtest-image.json";
/// Value of the index's `format` field.
pub const INDEX_FORMAT: &str = "vmtest-image/1";
/// The items every image needs.
pub const BOOT_ITEMS: [&str; 3] = ["boot-kernel", "boot-initrd", "squashfs"];

/// One file of an image, as recorded in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexItem {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The contents of `vmtest-image.json` (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageIndex {
    pub format: String,
    pub os: String,
    pub release: String,
    pub arch: String,
    pub version: String,
    pub flavor: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub created: String,
    pub source_date_epoch: u64,
    #[serde(default)]
    pub mirrors: Vec<String>,
    pub builder: String,
    /// Revision of what the build puts into the root ([`crate::build::IMAGE_RECIPE`]);
    /// 1 for indexes written before the field existed.
    #[serde(default = "first_recipe")]
    pub recipe: u32,
    pub items: BTreeMap<String, IndexItem>,
}

fn first_recipe() -> u32 {
    1
}

pub(super) fn load_vmtest(
    index: &Path,
    dir: &Path,
    release: &str,
    arch: &str,
    version: &str,
) -> Candidate {
    let mut c = Candidate {
        release: release.into(),
        arch: arch.into(),
        version: version.into(),
        kernel_release: String::new(),
        origin: ImageOrigin::Vmtest {
            dir: dir.to_path_buf(),
        },
        items: BTreeMap::new(),
        broken: None,
    };
    let bad = |why: String| {
        Some(Problem::Incomplete {
            path: index.to_path_buf(),
            why,
        })
    };
    let parsed: ImageIndex = match fs::read_to_string(index)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(i) => i,
        Err(e) => {
            c.broken = bad(format!("unreadable index: {e}"));
            return c;
        }
    };
    if parsed.format != INDEX_FORMAT {
        c.broken = bad(format!(
            "unknown format {:?} (want {INDEX_FORMAT})",
            parsed.format
        ));
        return c;
    }
    if (
        parsed.release.as_str(),
        parsed.arch.as_str(),
        parsed.version.as_str(),
    ) != (release, arch, version)
    {
        c.broken = bad(format!(
            "index is for {}/{}/{} but sits in {release}/{arch}/{version}",
            parsed.release, parsed.arch, parsed.version
        ));
        return c;
    }
    c.kernel_release = parsed.kernel_release.clone();
    for (name, item) in &parsed.items {
        let Some(path) = safe_join(dir, &item.path) else {
            c.broken = bad(format!(
                "item {name} path {:?} leaves the image directory",
                item.path
            ));
            return c;
        };
        if !is_hex_sha256(&item.sha256) {
            c.broken = bad(format!("item {name} has no valid sha256"));
            return c;
        }
        c.items.insert(
            name.clone(),
            ItemRef {
                path,
                size: item.size,
                sha256: Some(item.sha256.clone()),
            },
        );
    }
    if let Some(m) = BOOT_ITEMS.iter().find(|k| !c.items.contains_key(**k)) {
        c.broken = bad(format!("index lists no {m}"));
    }
    c
}

pub(super) fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
