//! What the image boot tests share: a NoCloud seed whose user-data prints a marker on the
//! serial console and powers the guest off.

use std::path::{Path, PathBuf};

/// Writes `seed.img` (VFAT, `cidata`) into `dir`; returns its path and the marker the
/// guest will print. The guest computes part of the marker, so seeing it proves the
/// user-data ran rather than being echoed.
pub fn marker_seed(dir: &Path) -> (PathBuf, String) {
    let nonce = format!("{}-{}", std::process::id(), dir.display().to_string().len());
    let marker = format!("VMTEST-MARKER-42-{nonce}");
    let user_data = format!(
        "#cloud-config\n\
         runcmd:\n\
         \x20 - [sh, -c, 'echo \"VMTEST-MARKER-$((6*7))-{nonce}\" > /dev/ttyS0']\n\
         power_state:\n\
         \x20 mode: poweroff\n\
         \x20 condition: true\n"
    );
    let seed = dir.join("seed.img");
    seed::SeedImage::new()
        .file(
            "meta-data",
            "instance-id: iid-vmtest-images-boot\nlocal-hostname: vmtest-boot\n",
        )
        .file("user-data", user_data)
        .write_vfat(&seed)
        .unwrap();
    (seed, marker)
}
