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
