//! Images other tools mirrored into IMAGE_DIR as a simplestreams tree (`streams/v1`):
//! read only; their items are paths in IMAGE_DIR.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::candidate::{Candidate, ImageOrigin, ItemRef, Problem};
use super::index::{BOOT_ITEMS, is_hex_sha256};
use super::paths::safe_join;
use super::{ImageStore, StoreError};

impl ImageStore {
    /// Images described by simplestreams products files under `streams/v1`.
    pub(super) fn simplestreams(&self) -> Result<Vec<Candidate>, StoreError> {
        let streams = self.dir.join("streams/v1");
        let mut files = Vec::new();
        let index = streams.join("index.json");
        if let Ok(text) = fs::read_to_string(&index) {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => {
                    if let Some(idx) = v.get("index").and_then(|i| i.as_object()) {
                        for entry in idx.values() {
                            if let Some(p) = entry.get("path").and_then(|p| p.as_str())
                                && let Some(p) = safe_join(&self.dir, p)
                            {
                                files.push(p);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("{}: not valid JSON ({e}); ignored", index.display()),
            }
        } else if let Ok(rd) = fs::read_dir(&streams) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        files.dedup();
        let mut out = Vec::new();
        for f in files {
            let Ok(text) = fs::read_to_string(&f) else {
                continue;
            };
            let v: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("{}: not valid JSON ({e}); ignored", f.display());
                    continue;
                }
            };
            out.extend(parse_products(&self.dir, &f, &v));
        }
        Ok(out)
    }
}

/// Reads a simplestreams `products:1.0` document. Fields set at product or version level
/// apply to the items below them (simplestreams' inheritance); the item `ftype` says which
/// boot file it is.
fn parse_products(root: &Path, file: &Path, v: &serde_json::Value) -> Vec<Candidate> {
    let mut out = Vec::new();
    let Some(products) = v.get("products").and_then(|p| p.as_object()) else {
        return out;
    };
    let s = |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(String::from);
    for (pname, product) in products {
        let Some(versions) = product.get("versions").and_then(|x| x.as_object()) else {
            continue;
        };
        for (vname, ver) in versions {
            let get = |k: &str| s(ver, k).or_else(|| s(product, k)).or_else(|| s(v, k));
            let (Some(release), Some(arch)) = (get("release"), get("arch")) else {
                continue;
            };
            let kernel_release = get("kernel_release")
                .or_else(|| get("subarch"))
                .or_else(|| get("kflavor"))
                .unwrap_or_default();
            let mut c = Candidate {
                release,
                arch,
                version: vname.clone(),
                kernel_release,
                origin: ImageOrigin::Simplestreams {
                    products: file.to_path_buf(),
                    product: pname.clone(),
                },
                items: BTreeMap::new(),
                broken: None,
            };
            let Some(items) = ver.get("items").and_then(|x| x.as_object()) else {
                continue;
            };
            for (iname, item) in items {
                let ftype = s(item, "ftype").unwrap_or_else(|| iname.clone());
                if !BOOT_ITEMS.contains(&ftype.as_str()) || c.items.contains_key(&ftype) {
                    continue;
                }
                let Some(p) = s(item, "path") else { continue };
                let Some(path) = safe_join(root, &p) else {
                    c.broken = Some(Problem::Incomplete {
                        path: file.to_path_buf(),
                        why: format!("{pname} {vname} {iname}: path {p:?} leaves IMAGE_DIR"),
                    });
                    continue;
                };
                let size = item.get("size").and_then(|x| x.as_u64());
                let sha256 = s(item, "sha256").filter(|h| is_hex_sha256(h));
                let size = match size {
                    Some(n) => n,
                    None => fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX),
                };
                c.items.insert(ftype, ItemRef { path, size, sha256 });
            }
            if c.broken.is_none()
                && let Some(m) = BOOT_ITEMS.iter().find(|k| !c.items.contains_key(**k))
            {
                // Products without all boot files (e.g. root-tgz only) are not boot images.
                let _ = m;
                continue;
            }
            out.push(c);
        }
    }
    out
}
