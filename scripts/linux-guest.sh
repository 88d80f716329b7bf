#!/bin/bash
# Builds a Linux test guest from Debian packages: the cloud kernel (vmlinuz, plus the
# vmlinux-less modules tree is not needed) and a busybox initramfs whose /init prints a
# marker, the kernel release and CPU count, then powers off through ACPI.
# Usage: scripts/linux-guest.sh OUTDIR      (idempotent: reuses what OUTDIR holds)
set -euo pipefail
out=${1:?usage: linux-guest.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ ! -s "$out/vmlinuz" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # The metapackage names the current kernel package; download that one.
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "linux-guest: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
    (cd "$work" && apt-get download "$pkg" >/dev/null)
    dpkg-deb -x "$work"/*.deb "$work/root"
    cp "$work"/root/boot/vmlinuz-* "$out/vmlinuz.tmp"
    echo "${pkg#linux-image-}" > "$out/kernel-release"
    mv "$out/vmlinuz.tmp" "$out/vmlinuz"
fi

if [ ! -s "$out/initrd.img" ]; then
    bb=$(command -v busybox || true)
    [ -x /bin/busybox ] && bb=/bin/busybox
    file "$bb" 2>/dev/null | grep -q "statically linked" || bb=/bin/busybox
    [ -x "$bb" ] || { echo "linux-guest: busybox-static is needed (apt-get install busybox-static)" >&2; exit 1; }
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,dev,proc,sys}
    cp "$bb" "$root/bin/busybox"
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "LINUX-GUEST userspace reached: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu(s), uptime $(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img.tmp"
    rm -rf "$root"
    mv "$out/initrd.img.tmp" "$out/initrd.img"
fi
echo "linux-guest: $out/vmlinuz ($(cat "$out/kernel-release")), $out/initrd.img"
