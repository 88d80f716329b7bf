//! Image store behaviour with small fake images in temporary directories (fast; no root,
//! no network, no VM).

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use images::store::{ImageOrigin, ImageStore, Problem, StoreError, Verify};

mod fake_store;
use fake_store::{KREL, fake_image, publish_fake, sha256, store};

fn valid_versions(store: &ImageStore) -> Vec<String> {
    store
        .list(Verify::Cached)
        .unwrap()
        .into_iter()
        .filter(|e| e.is_valid())
        .map(|e| e.version)
        .collect()
}

#[test]
fn find_newest_returns_the_newest_valid_image() {
    let (_t, store) = store();
    let a = fake_image(&store, "bookworm", "a");
    let b = fake_image(&store, "bookworm", "b");
    fake_image(&store, "trixie", "c");
    assert!(
        b.file_name().unwrap().to_string_lossy().ends_with(".1"),
        "{}",
        b.display()
    );
    let img = store.find_newest("bookworm", "amd64").unwrap();
    assert_eq!(img.squashfs, b.join("squashfs"));
    assert_eq!(img.kernel, b.join(KREL).join("cloud/boot-kernel"));
    assert_eq!(img.initrd, b.join(KREL).join("cloud/boot-initrd"));
    assert_eq!(img.kernel_release, KREL);
    assert_eq!(
        (img.release.as_str(), img.arch.as_str()),
        ("bookworm", "amd64")
    );
    assert_eq!(img.origin, ImageOrigin::Vmtest { dir: b.clone() });
    assert!(img.is_locked());
    assert!(a.exists());
    assert!(
        fs::read_to_string(b.join("vmtest-image.json"))
            .unwrap()
            .contains("\"format\": \"vmtest-image/1\"")
    );
}

#[test]
fn missing_image_error_says_what_to_do() {
    let (_t, store) = store();
    let err = store.find_newest("bookworm", "amd64").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NoImage { .. }));
    assert!(msg.contains("bookworm/amd64"), "{msg}");
    assert!(msg.contains(&store.dir().display().to_string()), "{msg}");
    assert!(
        msg.contains("vmtest images build --release bookworm"),
        "{msg}"
    );
}

#[test]
fn prune_keeps_n_per_release() {
    let (_t, store) = store();
    for t in ["1", "2", "3"] {
        fake_image(&store, "bookworm", t);
    }
    fake_image(&store, "trixie", "t1");
    fake_image(&store, "trixie", "t2");
    let all = valid_versions(&store);
    assert_eq!(all.len(), 5);

    let r = store.prune(2).unwrap();
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert_eq!(valid_versions(&store).len(), 4);

    let r = store.prune(1).unwrap();
    assert_eq!(r.removed.len(), 2, "{r:?}");
    let left = store.list(Verify::Cached).unwrap();
    let mut per: Vec<(String, String)> = left
        .iter()
        .map(|e| (e.release.clone(), e.version.clone()))
        .collect();
    per.sort();
    assert_eq!(per.len(), 2);
    // The newest of each release survives.
    let newest = store.find_newest("bookworm", "amd64").unwrap();
    assert!(per.contains(&("bookworm".into(), newest.version.clone())));
    assert!(newest.version.ends_with(".2"), "{}", newest.version);
}

#[test]
fn prune_leaves_images_in_use() {
    let (_t, store) = store();
    let old = fake_image(&store, "bookworm", "old");
    let in_use = store.find_newest("bookworm", "amd64").unwrap();
    fake_image(&store, "bookworm", "new");
    // keep=1 would remove the old image, but a test holds it.
    let r = store.prune(1).unwrap();
    assert!(r.removed.is_empty(), "{r:?}");
    assert_eq!(r.in_use.len(), 1, "{r:?}");
    assert!(old.join("squashfs").exists());
    let listed = store.list(Verify::Cached).unwrap();
    assert!(listed.iter().any(|e| e.in_use));
    drop(in_use);
    let r = store.prune(1).unwrap();
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert!(!old.exists());
}

#[test]
fn concurrent_builders_wait_for_each_other() {
    let (_t, store) = store();
    let first = store.begin_build("bookworm", "amd64").unwrap();
    assert!(store.build_running("bookworm", "amd64"));
    assert!(!store.build_running("trixie", "amd64"));
    // Another release builds in parallel.
    let other = store.begin_build("trixie", "amd64").unwrap();
    drop(other);

    let (tx, rx) = mpsc::channel();
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || {
        let slot = s2.begin_build("bookworm", "amd64").unwrap();
        tx.send(()).unwrap();
        drop(slot);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "second builder did not wait"
    );
    drop(first);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("second builder never got the lock");
    waiter.join().unwrap();
    assert!(!store.build_running("bookworm", "amd64"));
}

#[test]
fn a_sync_waits_for_a_running_build_and_then_sees_its_image() {
    let (_t, store) = store();
    // Nothing built yet: no lock file, nothing to wait for.
    store.wait_for_build("bookworm", "amd64").unwrap();
    let slot = store.begin_build("bookworm", "amd64").unwrap();
    let (tx, rx) = mpsc::channel();
    let s2 = store.clone();
    let waiter = std::thread::spawn(move || {
        s2.wait_for_build("bookworm", "amd64").unwrap();
        tx.send(s2.has_valid("bookworm", "amd64").unwrap()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the sync did not wait for the running build"
    );
    // The build publishes, then lets go of its lock.
    publish_fake(slot, "bookworm", "built");
    let saw_image = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the sync never stopped waiting");
    assert!(
        saw_image,
        "after waiting, the sync must see what the build published"
    );
    waiter.join().unwrap();
}

#[test]
fn readers_share_the_store_while_an_image_is_held() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "a");
    let a = store.find_newest("bookworm", "amd64").unwrap();
    // Many readers at once: shared locks do not block each other.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = store.clone();
            std::thread::spawn(move || s.find_newest("bookworm", "amd64").unwrap().version)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), a.version);
    }
    // And a new image can be published while the old one is in use.
    fake_image(&store, "bookworm", "b");
    assert_ne!(
        store.find_newest("bookworm", "amd64").unwrap().version,
        a.version
    );
}

#[test]
fn corrupt_file_is_detected_and_named() {
    let (_t, store) = store();
    let dir = fake_image(&store, "bookworm", "a");
    // First look-up hashes and caches.
    store.find_newest("bookworm", "amd64").unwrap();
    // Same size, different bytes: only the hash can tell.
    let sq = dir.join("squashfs");
    let mut data = fs::read(&sq).unwrap();
    data[100] ^= 0xff;
    fs::write(&sq, &data).unwrap();

    let err = store.find_newest("bookworm", "amd64").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(msg.contains(&sq.display().to_string()), "{msg}");

    let entries = store.verify().unwrap();
    assert!(matches!(&entries[0].problem, Some(Problem::Corrupt { path, .. }) if *path == sq));
    // Prune removes the broken image.
    let r = store.prune(1).unwrap();
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert!(!dir.exists());
}

#[test]
fn corrupt_newest_falls_back_to_an_older_valid_image() {
    let (_t, store) = store();
    let old = fake_image(&store, "bookworm", "old");
    let new = fake_image(&store, "bookworm", "new");
    fs::write(new.join(KREL).join("cloud/boot-initrd"), b"short").unwrap();
    let img = store.find_newest("bookworm", "amd64").unwrap();
    assert_eq!(img.squashfs, old.join("squashfs"));
    let listed = store.list(Verify::Cached).unwrap();
    let bad = listed.iter().find(|e| !e.is_valid()).unwrap();
    assert!(
        matches!(bad.problem, Some(Problem::WrongSize { .. })),
        "{:?}",
        bad.problem
    );
}

#[test]
fn interrupted_build_is_never_listed_as_valid() {
    let (_t, store) = store();
    {
        let slot = store.begin_build("trixie", "amd64").unwrap();
        let out = slot.staging.join("out");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("squashfs"), b"half written").unwrap();
        // dropped without publish: the build was interrupted
    }
    assert!(store.list(Verify::Cached).unwrap().is_empty());
    assert!(store.find_newest("trixie", "amd64").is_err());

    // A version directory that somehow lacks its index (copied by hand, index deleted):
    // not an image.
    let dir = fake_image(&store, "bookworm", "a");
    fs::remove_file(dir.join("vmtest-image.json")).unwrap();
    assert!(valid_versions(&store).is_empty());
    assert!(store.find_newest("bookworm", "amd64").is_err());

    // An index whose files are gone: listed, but broken.
    let dir = fake_image(&store, "bookworm", "b");
    fs::remove_file(dir.join("squashfs")).unwrap();
    let l = store.list(Verify::Cached).unwrap();
    assert_eq!(l.len(), 1);
    assert!(matches!(l[0].problem, Some(Problem::Missing { .. })));

    // Prune clears the staging leftovers of the interrupted build.
    let r = store.prune(1).unwrap();
    assert!(
        r.removed.iter().any(|(w, _)| w.starts_with(".partial/")),
        "{r:?}"
    );
    assert!(
        fs::read_dir(store.dir().join(".partial"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn garbage_index_is_broken_not_fatal() {
    let (_t, store) = store();
    let dir = fake_image(&store, "bookworm", "a");
    fs::write(dir.join("vmtest-image.json"), b"{ not json").unwrap();
    let l = store.list(Verify::Cached).unwrap();
    assert!(matches!(l[0].problem, Some(Problem::Incomplete { .. })));
    // An index pointing outside its directory is refused.
    let dir = fake_image(&store, "bookworm", "b");
    let text = fs::read_to_string(dir.join("vmtest-image.json")).unwrap();
    fs::write(
        dir.join("vmtest-image.json"),
        text.replace(
            "\"path\": \"squashfs\"",
            "\"path\": \"../../../../etc/passwd\"",
        ),
    )
    .unwrap();
    assert!(store.find_newest("bookworm", "amd64").is_err());
}

#[test]
fn image_dir_not_writable_is_a_clear_error() {
    // /proc/self exists but nobody, root included, can create files there.
    let store = ImageStore::open(Path::new("/proc/self")).unwrap();
    let err = store.begin_build("bookworm", "amd64").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NotWritable { .. }), "{msg}");
    assert!(msg.contains("/proc/self"), "{msg}");
    assert!(msg.contains("IMAGE_DIR"), "{msg}");

    // A regular file is not a store.
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("file");
    fs::write(&f, b"").unwrap();
    let err = ImageStore::open(&f).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");

    // Read-only use of a store we cannot write works (no locks needed: nobody can prune).
    let store = ImageStore::open(Path::new("/proc/self")).unwrap();
    assert!(store.list(Verify::Cached).unwrap().is_empty());
}

#[test]
fn simplestreams_trees_from_other_tools_are_found() {
    let (_t, store) = store();
    let root = store.dir();
    let files = [
        (
            "boot-kernel",
            "jammy/amd64/20240101/ga-22.04/generic/boot-kernel",
            "K",
        ),
        (
            "boot-initrd",
            "jammy/amd64/20240101/ga-22.04/generic/boot-initrd",
            "I",
        ),
        ("squashfs", "jammy/amd64/20240101/squashfs", "S"),
    ];
    let mut items = serde_json::Map::new();
    for (ftype, path, data) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        items.insert(
            ftype.to_string(),
            serde_json::json!({"ftype": ftype, "path": path, "size": data.len(), "sha256": sha256(data.as_bytes())}),
        );
    }
    let products = serde_json::json!({
        "format": "products:1.0",
        "content_id": "com.ubuntu.maas:daily:v3:download",
        "products": {
            "com.ubuntu.maas.daily:v3:boot:22.04:amd64:ga-22.04": {
                "arch": "amd64", "release": "jammy", "os": "ubuntu", "subarch": "ga-22.04",
                "versions": {"20240101": {"items": items}}
            }
        }
    });
    let streams = root.join("streams/v1");
    fs::create_dir_all(&streams).unwrap();
    fs::write(
        streams.join("com.ubuntu.maas:daily:v3:download.json"),
        products.to_string(),
    )
    .unwrap();
    fs::write(
        streams.join("index.json"),
        serde_json::json!({"format": "index:1.0", "index": {"com.ubuntu.maas:daily:v3:download": {
            "format": "products:1.0", "path": "streams/v1/com.ubuntu.maas:daily:v3:download.json"}}})
        .to_string(),
    )
    .unwrap();
    // Our images of another release sit beside it.
    fake_image(&store, "bookworm", "a");

    let img = store.find_newest("jammy", "amd64").unwrap();
    assert_eq!(img.version, "20240101");
    assert_eq!(img.kernel, root.join(files[0].1));
    assert_eq!(img.squashfs, root.join(files[2].1));
    assert!(matches!(img.origin, ImageOrigin::Simplestreams { .. }));
    assert!(store.find_newest("bookworm", "amd64").is_ok());
    // The MAAS version directory has no vmtest index: it is not mistaken for a broken image
    // of ours, and prune does not touch it.
    drop(img);
    let r = store.prune(0).unwrap();
    assert!(
        r.removed.iter().all(|(w, _)| !w.starts_with("jammy")),
        "{r:?}"
    );
    assert!(root.join(files[2].1).exists());

    // A corrupt MAAS file is named too.
    fs::write(root.join(files[2].1), "X").unwrap();
    let err = store.find_newest("jammy", "amd64").unwrap_err().to_string();
    assert!(err.contains("jammy/amd64/20240101/squashfs"), "{err}");
}

#[test]
fn publish_records_hashes_so_first_lookup_does_not_rehash() {
    let (_t, store) = store();
    let dir = fake_image(&store, "bookworm", "a");
    let version = dir.file_name().unwrap().to_string_lossy().into_owned();
    let cache = store
        .dir()
        .join(format!(".locks/vmtest-bookworm-amd64-{version}.verified"));
    let text = fs::read_to_string(&cache).unwrap();
    assert!(
        text.contains(&dir.join("squashfs").display().to_string()),
        "{text}"
    );
    assert!(store.find_newest("bookworm", "amd64").is_ok());
}

#[test]
fn build_refuses_unsupported_arch_and_bad_release() {
    use images::build::{BuildOptions, preflight};
    let err = preflight(&BuildOptions::new("bookworm", "arm64"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("only amd64"), "{err}");
    let err = preflight(&BuildOptions::new("../etc", "amd64"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--release"), "{err}");
}

#[test]
fn a_new_build_is_newer_than_every_image_of_the_day_even_after_prune() {
    let (_t, store) = store();
    fake_image(&store, "bookworm", "1");
    fake_image(&store, "bookworm", "2");
    let third = fake_image(&store, "bookworm", "3");
    store.prune(1).unwrap();
    // Only "<day>.2" is left; the next build must not reuse the free "<day>" name.
    let fourth = fake_image(&store, "bookworm", "4");
    assert!(
        fourth
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(".3"),
        "{}",
        fourth.display()
    );
    assert!(!third.exists() || third != fourth);
    assert_eq!(
        store.find_newest("bookworm", "amd64").unwrap().squashfs,
        fourth.join("squashfs")
    );
}

#[test]
fn missing_packages_reads_the_newest_images_manifest() {
    let (_t, store) = store();
    let dir = fake_image(&store, "bookworm", "a");
    let want: Vec<String> = ["grub-efi-amd64-bin", "python3", "lvm2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // No manifest at all: nothing is known to be inside, so everything counts as missing.
    assert_eq!(
        store.missing_packages("bookworm", "amd64", &want).unwrap(),
        want
    );
    // dpkg's "name:arch" form counts as the package.
    fs::write(
        dir.join("squashfs.manifest"),
        "python3\t3.11.2-1+b1\nlvm2:amd64\t2.03.16-2\n",
    )
    .unwrap();
    assert_eq!(
        store.missing_packages("bookworm", "amd64", &want).unwrap(),
        vec!["grub-efi-amd64-bin".to_string()]
    );
    // A .deb the local repository keeps counts as carried too.
    fs::write(
        dir.join(images::store::LOCAL_DEBS_MANIFEST),
        "grub-efi-amd64-bin\t2.06-13+deb12u2\n",
    )
    .unwrap();
    assert!(
        store
            .missing_packages("bookworm", "amd64", &want)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.missing_packages("trixie", "amd64", &want),
        Err(StoreError::NoImage { .. })
    ));
}

#[test]
fn an_image_of_an_older_recipe_is_outdated() {
    use images::build::IMAGE_RECIPE;
    let (_t, store) = store();
    let dir = fake_image(&store, "bookworm", "a");
    assert_eq!(
        store
            .outdated_recipe("bookworm", "amd64", IMAGE_RECIPE)
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .outdated_recipe("bookworm", "amd64", IMAGE_RECIPE + 1)
            .unwrap(),
        Some(IMAGE_RECIPE)
    );
    // An index written before the field existed is recipe 1.
    let index = dir.join(images::store::INDEX_FILE);
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&index).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("recipe");
    fs::write(&index, serde_json::to_string(&json).unwrap()).unwrap();
    assert_eq!(
        store.outdated_recipe("bookworm", "amd64", 2).unwrap(),
        Some(1)
    );
    assert!(matches!(
        store.outdated_recipe("trixie", "amd64", 2),
        Err(StoreError::NoImage { .. })
    ));
}
