#!/bin/bash
# Installs what building and testing vmtest needs on a fresh Debian machine, and nothing
# when it is all there already (so `make test` stays quick on a prepared machine).
# Usage: scripts/install-deps.sh [test|vmtest|linux|linux-kernel|lint]   (default: test)
set -euo pipefail

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: installing packages needs root (apt-get); run as root or with sudo" >&2
        exit 1
    fi
}

# Package -> why (the README repeats these).
common=(
    gcc g++ binutils make
    pkg-config libslirp-dev libglib2.0-dev
    qemu-system-x86
    acpica-tools
    util-linux
)
images=(
    mmdebstrap squashfs-tools busybox-static cpio zstd xz-utils kmod
)
# The vmtest kernel (scripts/linux-kernel.sh): Debian's kernel source and what building
# it needs; the Linux test's disks are made with sfdisk (fdisk) and e2fsprogs.
linux_kernel=(
    linux-source bc bison flex libelf-dev libssl-dev xz-utils fdisk e2fsprogs
)

case "${1:-test}" in
    test) pkgs=("${common[@]}" "${images[@]}" e2fsprogs) ;;
    vmtest) pkgs=("${common[@]}" "${images[@]}" e2fsprogs ovmf) ;;
    linux) pkgs=("${common[@]}" busybox-static cpio kmod xz-utils zstd) ;;
    linux-kernel) pkgs=("${common[@]}" "${linux_kernel[@]}") ;;
    # `make lint`: the test set's packages (clippy builds everything) and cargo-deny.
    lint) pkgs=("${common[@]}" "${images[@]}" e2fsprogs) ;;
    *) echo "install-deps: unknown set '$1' (test, vmtest, linux, linux-kernel, lint)" >&2; exit 1 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    case "$p" in \#*) continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    need_root
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PyYAML, the YAML reader curtin and cloud-init use: harness/tests/pyyaml_reads.rs checks
# with it that what the guest gets means what the test file meant. It must be importable
# by the `python3` on PATH, whichever python that is.
if [ "${1:-test}" != linux ] && ! python3 -c 'import yaml' 2>/dev/null; then
    need_root
    echo "install-deps: installing python3-yaml (PyYAML: curtin's YAML reader, for the tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-yaml >/dev/null
    if ! python3 -c 'import yaml' 2>/dev/null; then
        echo "install-deps: $(command -v python3) still cannot import yaml (python3-yaml is for /usr/bin/python3): put /usr/bin first in PATH or install PyYAML for that python" >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing: install the Rust toolchain (rustup, or Debian's cargo)" >&2
    exit 1
fi

# cargo-deny for `make lint` (licenses, bans, sources, advisories), from crates.io. A pinned
# version: deny.toml's format follows it. Building it takes ~12 minutes on 2 cores, once.
CARGO_DENY_VERSION=0.20.2
if [ "${1:-test}" = lint ] && ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    echo "install-deps: installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; ~12 min on 2 cores)"
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
