#!/bin/sh
# mmdebstrap customize hook for the vmtest ephemeral root: $1 is the new root, with /proc,
# /sys and /dev mounted. Keep it idempotent and free of host-specific data (reproducible).
set -eu
R="$1"

# Identity: nothing from the build host. cloud-init sets the real hostname from meta-data.
echo vmtest-ephemeral >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvmtest-ephemeral\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
# systemd makes a fresh machine id on every boot of the ephemeral image.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"

# Networking: systemd-networkd and resolved. The ephemeral system's DHCP on every NIC is
# not here but in /run, written by the image's own initramfs at each boot (images/initramfs/
# init): an installed system is a copy of this root, and it must bring up only what its own
# network config says (cloud-init renders it through netplan at first boot), not DHCP on
# every NIC behind its back.
chroot "$R" systemctl enable systemd-networkd.service systemd-resolved.service
# A VM without a NIC must not hold boot for two minutes waiting for the network.
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$R/etc/systemd/system/systemd-networkd-wait-online.service.d/vmtest.conf" <<'NET'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
NET

# cloud-init: only NoCloud (a disk labelled cidata, or ds=nocloud-net;seedfrom=URL).
cat >"$R/etc/cloud/cloud.cfg.d/90_vmtest.cfg" <<'CFG'
# vmtest ephemeral image: seeds come from a NoCloud source only.
datasource_list: [ NoCloud, None ]
# Translations are filtered out of the image; C.UTF-8 is built into glibc.
locale: C.UTF-8
CFG

# bcache: CACHED_UUID and CACHED_LABEL (the backing device's uuid and label) on every udev
# event of a bcache device, coldplug included, and the links made from them. The kernel
# sets them only on its change event at attach time, and an installed system attaches its
# bcache devices in the initramfs: after the switch to the real root, coldplug's add events
# carry neither. Then Debian's 69-bcache.rules make no /dev/bcache/by-uuid link, and
# curtin's fstab entries name those links (curtin's get_volume_spec), so every such mount
# waits 90 s and drops the boot to emergency mode; and curtin's by-dname rules, which match
# ENV{CACHED_UUID}, make no /dev/disk/by-dname link. (Ubuntu's bcache-tools carries a
# bcache-export-cached helper for this; Debian's does not.) This file sorts before curtin's
# /etc/udev/rules.d/<name>.rules, so those see the variables. An installed system is a copy
# of this root, so the rule and its helper travel with it.
cat >"$R/usr/lib/udev/vmtest-bcache-export" <<'BCACHE'
#!/bin/sh
# Prints CACHED_UUID= and CACHED_LABEL= (the kernel's names) for the bcache device $1, read
# from the superblock of its backing device (among its slaves, beside any cache device).
n=${1##*/}
for s in /sys/block/"$n"/slaves/*; do
	[ -e "$s" ] || continue
	sb=$(bcache-super-show -f "/dev/${s##*/}" 2>/dev/null) || continue
	printf '%s\n' "$sb" | grep -q '^sb\.version.*\[backing device\]' || continue
	uuid=$(printf '%s\n' "$sb" | sed -n 's/^dev\.uuid[[:space:]]*//p')
	label=$(printf '%s\n' "$sb" | sed -n 's/^dev\.label[[:space:]]*//p')
	case "$uuid" in *[!0-9a-f-]* | "") ;; *) echo "CACHED_UUID=$uuid" ;; esac
	case "$label" in "(empty)" | *[!A-Za-z0-9._-]* | "") ;; *) echo "CACHED_LABEL=$label" ;; esac
	exit 0
done
exit 0
BCACHE
chmod 755 "$R/usr/lib/udev/vmtest-bcache-export"
cat >"$R/usr/lib/udev/rules.d/70-vmtest-bcache-links.rules" <<'BCACHE'
# vmtest image: CACHED_UUID/CACHED_LABEL and the /dev/bcache/by-uuid and by-label links on
# every event of a bcache device, coldplug included (see images/rootfs/customize.sh in the
# vmtest tree).
SUBSYSTEM!="block", GOTO="vmtest_bcache_end"
ACTION=="remove", GOTO="vmtest_bcache_end"
KERNEL!="bcache[0-9]*", GOTO="vmtest_bcache_end"
ENV{DEVTYPE}!="disk", GOTO="vmtest_bcache_end"
IMPORT{program}="vmtest-bcache-export $devnode"
ENV{CACHED_UUID}=="?*", SYMLINK+="bcache/by-uuid/$env{CACHED_UUID}"
ENV{CACHED_LABEL}=="?*", SYMLINK+="bcache/by-label/$env{CACHED_LABEL}"
LABEL="vmtest_bcache_end"
BCACHE

# No password-less logins anywhere, the serial console included.
chroot "$R" passwd --lock root >/dev/null
rm -rf "$R/etc/systemd/system/serial-getty@.service.d" "$R/etc/systemd/system/getty@.service.d"

# open-iscsi's postinst made a random initiator name: every system installed from this
# image would share it (and builds would differ). Let iscsid generate one on first start.
if [ -f "$R/etc/iscsi/initiatorname.iscsi" ]; then
	printf '## vmtest image: iscsid generates a unique name on first start.\nGenerateName=yes\n' \
		>"$R/etc/iscsi/initiatorname.iscsi"
	chmod 600 "$R/etc/iscsi/initiatorname.iscsi"
fi
# The installed kernel's initramfs embedded the old name: rebuild it (reproducibly, with
# SOURCE_DATE_EPOCH from mmdebstrap's environment).
chroot "$R" update-initramfs -u -k all

# Build-time logs and caches that differ between otherwise identical builds.
rm -f "$R/var/log/dpkg.log" "$R/var/log/alternatives.log" "$R/var/log/bootstrap.log"
rm -f "$R"/var/log/apt/*.log "$R/var/cache/ldconfig/aux-cache" "$R/etc/ssh/ssh_host_"*
rm -f "$R"/var/cache/apt/*.bin
# The .debs apt downloaded to build this root (about 90 MiB): nothing installs from them
# (the offline repository is /var/lib/vmtest/debs), yet every install copied them into its
# target and every ephemeral boot downloaded them with the squashfs, which under TCG cost
# each test about half a minute.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/archives/partial/*
rm -rf "$R"/tmp/* "$R"/var/tmp/*
