#!/bin/sh
# mmdebstrap customize hook: $1 is the new root, the rest are package names. Downloads
# those packages (without installing them) into a flat local apt repository in the root,
# /var/lib/vmtest/debs, and lists it in /etc/apt/sources.list.d/vmtest-local.list, so an
# installer can `apt-get install` them into a target copied from this root without network
# (apt-get update only warns about mirrors it cannot reach). The download runs on the build
# host with mmdebstrap's apt configuration (MMDEBSTRAP_APT_CONFIG: the new root's sources
# and lists, the host's resolver, which the root itself no longer has by now).
set -eu
R="$1"
shift
D=/var/lib/vmtest/debs
rm -rf "$R$D"
mkdir -p "$R$D"
: "${MMDEBSTRAP_APT_CONFIG:?run as an mmdebstrap hook (it sets MMDEBSTRAP_APT_CONFIG)}"
cd "$R$D"
# The packages and whatever they need that the root does not have yet, as apt would
# install them into a copy of this root (grub-pc's removal is apt's business then).
mkdir -p partial
chown _apt . partial 2>/dev/null || true
APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get --quiet --yes --download-only \
	--no-install-recommends -o Dir::Cache::archives="$R$D" install "$@"
rm -rf partial lock
chown root:root .
# Packages: each .deb's control fields plus where it is and its hashes.
for f in *.deb; do
	dpkg-deb --field "$f"
	echo "Filename: ./$f"
	echo "Size: $(stat -c %s "$f")"
	echo "SHA256: $(sha256sum "$f" | cut -d' ' -f1)"
	echo
done >Packages
# A Release file with the index's hash; [trusted=yes] stands in for a signature.
{
	echo "Origin: vmtest"
	echo "Label: vmtest-local"
	echo "Suite: vmtest-local"
	echo "Codename: vmtest-local"
	echo "Date: $(date -u -d "@${SOURCE_DATE_EPOCH:-0}" '+%a, %d %b %Y %H:%M:%S UTC')"
	echo "SHA256:"
	echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"
} >Release
echo "deb [trusted=yes] file:$D ./" >"$R/etc/apt/sources.list.d/vmtest-local.list"
