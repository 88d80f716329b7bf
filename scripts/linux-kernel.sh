#!/bin/bash
# Builds the vmtest kernel from Debian's linux-source package with the fragment
# scripts/linux-kernel.config (applied to `make tinyconfig`, then `make olddefconfig`) and
# caches it outside the clone, once per machine:
#
#   $VMTEST_CACHE_DIR/linux/<source version>-<hash>/{vmlinux,bzImage,config,kernel-release,...}
#
# VMTEST_CACHE_DIR defaults to /var/cache/vmtest as root, else $XDG_CACHE_HOME/vmtest
# (~/.cache/vmtest). <hash> covers the fragment, this recipe and the compiler, so a change
# to any of them builds a new kernel beside the old one. Builds of the same key wait for
# each other (flock); a build is staged in a temporary directory and renamed into place
# only when complete, so a failed or killed build never leaves a half-cached kernel.
#
# Usage: scripts/linux-kernel.sh            build if needed; the last stdout line is the dir
#        scripts/linux-kernel.sh --print-dir  print the dir this source and config map to
#                                              (it may not exist yet); build nothing
# Needs: linux-source-X.Y (apt), gcc make bc bison flex libelf-dev libssl-dev
#        (scripts/install-deps.sh linux-kernel installs them).
set -euo pipefail

# Bump when the build steps change in a way that changes the result.
RECIPE=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/linux-kernel.config
nice_level=${VMTEST_LINUX_NICE:-10}

die() { echo "linux-kernel: $*" >&2; exit 1; }

if [ -n "${VMTEST_CACHE_DIR:-}" ]; then
    cache_root=$VMTEST_CACHE_DIR
elif [ "$(id -u)" = 0 ]; then
    cache_root=/var/cache/vmtest
else
    cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/vmtest
fi
cache=$cache_root/linux

# The newest installed linux-source tarball and the Debian version of its package.
tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$tarball" ] || die "no /usr/src/linux-source-*.tar.xz: install Debian's linux-source (scripts/install-deps.sh linux-kernel)"
package=$(basename "$tarball" .tar.xz)
version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null) \
    || die "$tarball belongs to no installed package $package: reinstall it with apt-get install $package"
[ -f "$fragment" ] || die "the config fragment $fragment is missing"
command -v gcc >/dev/null || die "gcc is missing (scripts/install-deps.sh linux-kernel)"
hash=$( { echo "recipe $RECIPE"; cat "$fragment"; gcc --version | head -n 1; } | sha256sum | cut -c1-12)
key=$version-$hash
dir=$cache/$key

if [ "${1:-}" = "--print-dir" ]; then
    echo "$dir"
    exit 0
fi
[ $# -eq 0 ] || die "unknown argument '$1' (usage: linux-kernel.sh [--print-dir])"

complete() { [ -s "$1/vmlinux" ] && [ -s "$1/bzImage" ] && [ -s "$1/config" ] && [ -s "$1/kernel-release" ]; }

if complete "$dir"; then
    echo "linux-kernel: cached: $dir ($(cat "$dir/kernel-release"))" >&2
    echo "$dir"
    exit 0
fi

for tool in make bc bison flex readelf; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh linux-kernel)"
done
[ -e /usr/include/libelf.h ] || die "libelf-dev is missing (scripts/install-deps.sh linux-kernel)"
[ -e /usr/include/openssl/ssl.h ] || die "libssl-dev is missing (scripts/install-deps.sh linux-kernel)"

mkdir -p "$cache"
exec 9>"$cache/$key.lock"
if ! flock -n 9; then
    echo "linux-kernel: another build of $key is running; waiting for it" >&2
    flock 9
fi
if complete "$dir"; then
    echo "linux-kernel: built by another process: $dir" >&2
    echo "$dir"
    exit 0
fi
# We hold the key's lock: staging directories of this key left by a killed build are stale.
rm -rf "$cache/.staging-$key".* "$dir"

stage=$(mktemp -d "$cache/.staging-$key.XXXXXX")
make_pid=
# Whatever ends this script (failure, Ctrl-C, kill) also ends the compiler and removes the
# staging directory; only a complete result is ever renamed into the cache.
cleanup() {
    [ -z "$make_pid" ] || kill "$make_pid" 2>/dev/null || true
    rm -rf "$stage"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
log=$stage/build.log
src=$stage/src
start=$(date +%s)

echo "linux-kernel: building $package $version with $(basename "$fragment") ($hash) in $stage" >&2
echo "linux-kernel: extracting $tarball" >&2
mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1

kmake() { nice -n "$nice_level" make -C "$src" ARCH=x86_64 "$@"; }

echo "linux-kernel: configuring (tinyconfig + fragment + olddefconfig)" >&2
{
    kmake tinyconfig
    "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment"
    kmake olddefconfig
} >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "configuration failed (log above)"; }

# Every option the fragment sets or unsets must have survived olddefconfig: a dependency
# it lacks drops an option silently, and the tests would then fail far from the cause.
missing=()
while IFS= read -r line; do
    case "$line" in
        '# CONFIG_'*' is not set') ;;
        ''|\#*) continue ;;
    esac
    grep -qxF "$line" "$src/.config" || missing+=("'$line'")
done <"$fragment"
[ ${#missing[@]} -eq 0 ] || die "olddefconfig dropped ${missing[*]} (a dependency is missing from $fragment)"

jobs=$(nproc)
echo "linux-kernel: compiling vmlinux and bzImage with $jobs jobs at nice $nice_level (about 6 minutes on 2 cores)" >&2
kmake -j"$jobs" vmlinux bzImage >>"$log" 2>&1 &
make_pid=$!
while kill -0 "$make_pid" 2>/dev/null; do
    sleep 30
    kill -0 "$make_pid" 2>/dev/null || break
    echo "linux-kernel:   $(( $(date +%s) - start )) s, $(grep -c '^  CC' "$log" || true) files compiled" >&2
done
if ! wait "$make_pid"; then
    make_pid=
    tail -n 40 "$log" >&2
    cp "$log" "$cache/$key.failed.log"
    die "the build failed (log above; whole log in $cache/$key.failed.log)"
fi
make_pid=

readelf -n "$src/vmlinux" | grep -q "^  Xen .*0x00000012" \
    || die "vmlinux lacks the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): CONFIG_PVH did not take"

out=$stage/out
mkdir "$out"
cp "$src/vmlinux" "$out/vmlinux"
cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
cp "$src/.config" "$out/config"
kmake -s kernelrelease >"$out/kernel-release"
cp "$log" "$out/build.log"
echo "$package $version" >"$out/source"
echo $(( $(date +%s) - start )) >"$out/build-seconds"
mv -T "$out" "$dir"    # the source tree goes with the staging directory, on exit
rm -f "$cache/$key.failed.log"
echo "linux-kernel: built $(cat "$dir/kernel-release") in $(cat "$dir/build-seconds") s: $dir" >&2
echo "$dir"
