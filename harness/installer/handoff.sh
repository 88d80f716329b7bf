#!/bin/sh
# vmtest handoff writer: runs last in the install phase, inside the install environment,
# with the installed system still mounted. Writes what grub would boot onto the handoff
# disk, so the boot phase can boot the installed kernel directly (no firmware) whatever
# /boot sits on (RAID, LVM, xfs, btrfs, dm-crypt): the installed system's grub.cfg, and
# every kernel and initrd its menu entries name, read through the mounted target.
# The host picks the default entry from that grub.cfg (the same rules as grub).
#
# Usage: sh handoff.sh [TARGET]   (TARGET defaults to $TARGET_MOUNT_POINT, curtin's name)
#
# Disk format, version 1 (the host's reader is harness/src/handoff/; it trusts none of it):
#   bytes 0..4096   header: ASCII lines, then NUL padding
#                     vmtest-handoff 1
#                     grub-cfg SIZE SHA256 PATH   (PATH: where it is in the target)
#                     file SIZE SHA256 PATH       (PATH: as grub.cfg names it)
#                     end
#   1 MiB ...       each entry's bytes in header order, each at the next MiB boundary.
# The data goes first and the header last, so a write that did not finish leaves no
# header: the host then reports a blank handoff rather than reading half a file.
set -eu

T=${1:-${TARGET_MOUNT_POINT:-}}
# VMTEST_HANDOFF_DEV: another device or an image file (the harness's tests of this script).
DEV=${VMTEST_HANDOFF_DEV:-/dev/disk/by-id/virtio-vmtest-handoff}
MAX_FILES=16

say() { echo "vmtest-handoff: $*"; }
# A failure is reported once, by the installer running this: install.sh's own `fail`, or
# curtin's failed late command (each prints the failure line the verdict looks for).
fail() {
    echo "vmtest-handoff: ERROR: $*" >&2
    exit 1
}

[ -n "$T" ] || fail "no target: give it as the first argument or TARGET_MOUNT_POINT"
i=0
while [ ! -b "$DEV" ] && [ ! -f "$DEV" ] && [ $i -lt 10 ]; do
    sleep 1
    udevadm settle --timeout=5 2>/dev/null || true
    i=$((i + 1))
done
[ -b "$DEV" ] || [ -f "$DEV" ] || fail "the handoff disk $DEV is not attached"
CFG=$T/boot/grub/grub.cfg
if [ ! -f "$CFG" ]; then
    if ! mountpoint -q "$T"; then
        fail "the target is no longer mounted at $T (a late command unmounted it?): nothing to hand off"
    fi
    fail "the installed system has no /boot/grub/grub.cfg: nothing tells which kernel boots"
fi

# The paths in grub.cfg are relative to grub's root: /boot when it is a filesystem of its
# own, else the root filesystem.
GROOT=$T
[ "$(findmnt -n -o TARGET --target "$T/boot")" = "$T/boot" ] && GROOT=$T/boot

WORK=$(mktemp -d /tmp/vmtest-handoff.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# The kernel of each `linux` line and the first file of each `initrd` line, once each,
# in the order grub.cfg names them (what the host's grub.cfg reader takes).
awk '
    $1 ~ /^(linux|linux16|linuxefi|initrd|initrd16|initrdefi)$/ {
        for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break }
    }' "$CFG" | awk '!seen[$0]++' >"$WORK/paths"

size() { stat -L -c %s "$1"; }
sum() { sha256sum <"$1" | cut -d' ' -f1; }
entry() { # kind file path
    printf '%s %s %s %s\n' "$1" "$(size "$2")" "$(sum "$2")" "$3" >>"$WORK/header"
    echo "$2" >>"$WORK/files"
}

printf 'vmtest-handoff 1\n' >"$WORK/header"
: >"$WORK/files"
entry grub-cfg "$CFG" /boot/grub/grub.cfg
n=0
while read -r p; do
    case "$p" in
        /*) ;;
        *) say "grub.cfg names $p (not a path on grub's root): left out"; continue ;;
    esac
    f=$GROOT$p
    if [ ! -f "$f" ]; then
        say "grub.cfg names $p, which is not a file in the target: left out"
        continue
    fi
    n=$((n + 1))
    [ $n -le $MAX_FILES ] || fail "grub.cfg names more than $MAX_FILES kernels and initrds"
    entry file "$f" "$p"
    say "$p ($(size "$f") bytes)"
done <"$WORK/paths"
printf 'end\n' >>"$WORK/header"
[ "$(size "$WORK/header")" -le 4096 ] || fail "the header is over 4096 bytes (paths too long?)"

# Data at MiB boundaries from 1 MiB on, then the header.
MIB=1048576
if [ -b "$DEV" ]; then cap=$(blockdev --getsize64 "$DEV"); else cap=$(size "$DEV"); fi
at=1
while read -r f; do
    s=$(size "$f")
    end=$((at * MIB + s))
    [ "$end" -le "$cap" ] || fail "$f does not fit the ${cap}-byte handoff disk"
    dd if="$f" of="$DEV" bs=$MIB seek=$at conv=notrunc,fsync status=none ||
        fail "cannot write $f to $DEV"
    at=$(((end + MIB - 1) / MIB))
done <"$WORK/files"
truncate -s 4096 "$WORK/header"
dd if="$WORK/header" of="$DEV" bs=4096 count=1 conv=notrunc,fsync status=none ||
    fail "cannot write the header to $DEV"
sync
say "wrote grub.cfg and $n kernel and initrd files (grub's root: ${GROOT#"$T"}/) to $DEV"
