#!/bin/sh
# vmtest script installer: installs the running ephemeral root onto the disks described by
# a plan (written by the harness from the test's curtin storage config), well enough for
# the installed system to boot through grub and be verified. Runs as root inside the
# install VM, from the packed archive:
# `sh installer/install.sh config/plan config/install-cfg.yaml [config/50-curtin-networking.cfg]`.
# The third file is the installed system's network config for its cloud-init, which
# renders it at first boot (what curtin hands on when the target's cloud-init takes it).
#
# Plan lines (fields are checked by the harness: ids, serials and paths hold no blanks):
#   firmware uefi|bios   (uefi: grub x86_64-efi onto the ESP at /boot/efi; bios: i386-pc)
#   disk    ID SERIAL PTABLE(msdos|gpt|none) GRUB(0|1)
#   part    ID DISK NUMBER SIZE_BYTES FLAG(-|boot|bios_grub|swap|lvm|esp|...)
#   vg      ID NAME DEVICE_ID...
#   lv      ID NAME VG_ID SIZE_BYTES(0 = rest)
#   format  ID VOLUME_ID FSTYPE LABEL(- = none)
#   mount   ID FORMAT_ID PATH OPTIONS(- = defaults)
#   dname   disk SERIAL NAME | part SERIAL NUMBER NAME | lv DM_NAME NAME
#           (/dev/disk/by-dname/NAME udev rules in the target, as curtin writes them)
set -eu

PLAN=${1:?usage: install.sh PLAN [CONFIG [NETWORK_CONFIG]]}
CONFIG=${2:-}
NETCFG=${3:-}
TARGET=${TARGET:-/target}
SOURCE=${SOURCE:-/media/root-ro}
STATE=$(mktemp -d /tmp/vmtest-install.XXXXXX)
# Tools' own error messages belong in the same (console) log as ours.
exec 2>&1

# Our own log lines also go to the target's /root/curtin-install.log (curtin's name).
INSTALL_LOG=$STATE/install.log
log() {
    echo "vmtest-installer: $*"
    echo "vmtest-installer: $*" >>"$INSTALL_LOG"
}
# To stderr: fail may run inside $(...), whose stdout is captured.
fail() {
    echo "vmtest-installer: ERROR: $*" >&2
    echo "curtin: Installation failed: $*" >&2
    exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || echo "curtin: Installation failed (exit $rc)"' EXIT

# id -> device path, kept as files so any id works as a key.
setdev() { echo "$2" >"$STATE/dev.$1"; }
getdev() { [ -f "$STATE/dev.$1" ] || fail "no device for storage id $1"; cat "$STATE/dev.$1"; }

[ -d "$SOURCE/usr" ] || fail "install source $SOURCE is not a root filesystem"
FIRMWARE=$(awk '$1 == "firmware" {print $2; exit}' "$PLAN")
FIRMWARE=${FIRMWARE:-bios}
case "$FIRMWARE" in
    bios | uefi) log "installing for $FIRMWARE firmware" ;;
    *) fail "plan: firmware $FIRMWARE is not supported (bios, uefi)" ;;
esac
udevadm settle || true

# --- disks and partitions -------------------------------------------------------------
partdev() { # disk-device number
    case "$1" in
        *[0-9]) echo "${1}p$2" ;;
        *) echo "$1$2" ;;
    esac
}

GRUB_DISKS=""
while read -r kind id serial ptable grub; do
    [ "$kind" = disk ] || continue
    link=/dev/disk/by-id/virtio-$serial
    i=0
    while [ ! -e "$link" ] && [ $i -lt 30 ]; do sleep 1; udevadm settle || true; i=$((i + 1)); done
    [ -e "$link" ] || fail "disk $id: $link does not exist (serial $serial)"
    dev=$(readlink -f "$link")
    setdev "$id" "$dev"
    log "disk $id is $dev ($ptable)"
    wipefs -a -q "$dev" >/dev/null 2>&1 || true
    dd if=/dev/zero of="$dev" bs=1M count=2 conv=fsync 2>/dev/null
    [ "$grub" = 1 ] && GRUB_DISKS="$GRUB_DISKS $dev"
    [ "$ptable" = none ] && continue
    case "$ptable" in
        msdos | dos) label=dos ;;
        gpt) label=gpt ;;
        *) fail "disk $id: ptable $ptable is not supported (msdos, gpt)" ;;
    esac
    {
        echo "label: $label"
        # Partitions in number order; sfdisk numbers them 1, 2, ... in the order given.
        awk -v d="$id" '$1 == "part" && $3 == d' "$PLAN" | sort -k4,4n | while read -r _ pid _ num size flag; do
            t=""
            case "$label:$flag" in
                dos:boot) t=", bootable" ;;
                dos:swap) t=", type=82" ;;
                dos:lvm) t=", type=8e" ;;
                dos:raid) t=", type=fd" ;;
                dos:esp) t=", type=ef" ;;
                gpt:bios_grub) t=", type=21686148-6449-6E6F-744E-656564454649" ;;
                gpt:swap) t=", type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" ;;
                gpt:lvm) t=", type=E6D6D379-F507-44C2-A23C-238F2A3DF928" ;;
                gpt:raid) t=", type=A19D880F-05FC-4D3B-A006-743F0F84911E" ;;
                gpt:esp | gpt:boot) t=", type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B" ;;
            esac
            echo "size=$((size / 1024))KiB$t"
        done
    } >"$STATE/sfdisk.$id"
    sfdisk -q --wipe always "$dev" <"$STATE/sfdisk.$id" || fail "disk $id: sfdisk failed"
    udevadm settle || true
    awk -v d="$id" '$1 == "part" && $3 == d' "$PLAN" | sort -k4,4n | {
        n=0
        while read -r _ pid _ num size flag; do
            n=$((n + 1))
            [ "$n" = "$num" ] || fail "partition $pid: number $num leaves a gap (partitions are numbered 1, 2, ...)"
            p=$(partdev "$dev" "$n")
            i=0
            while [ ! -b "$p" ] && [ $i -lt 10 ]; do sleep 1; i=$((i + 1)); done
            [ -b "$p" ] || fail "partition $pid: $p did not appear"
            wipefs -a -q "$p" >/dev/null 2>&1 || true
            setdev "$pid" "$p"
        done
    }
done <"$PLAN"

# --- LVM ------------------------------------------------------------------------------
while read -r kind id name rest; do
    [ "$kind" = vg ] || continue
    pvs=""
    for d in $rest; do
        p=$(getdev "$d")
        pvcreate -ff -y -q "$p" >/dev/null || fail "pvcreate $p failed"
        pvs="$pvs $p"
    done
    # shellcheck disable=SC2086
    vgcreate -q "$name" $pvs >/dev/null || fail "vgcreate $name failed"
    setdev "$id" "$name"
done <"$PLAN"
while read -r kind id name vg size; do
    [ "$kind" = lv ] || continue
    vgname=$(getdev "$vg")
    if [ "$size" = 0 ]; then
        lvcreate -q -y -n "$name" -l 100%FREE "$vgname" >/dev/null || fail "lvcreate $name failed"
    else
        lvcreate -q -y -n "$name" -L "$((size / 1048576))M" "$vgname" >/dev/null || fail "lvcreate $name failed"
    fi
    setdev "$id" "/dev/$vgname/$name"
done <"$PLAN"
udevadm settle || true

# --- filesystems ----------------------------------------------------------------------
while read -r kind id vol fstype label; do
    [ "$kind" = format ] || continue
    dev=$(getdev "$vol")
    l=""
    case "$fstype" in
        ext2 | ext3 | ext4)
            [ "$label" = - ] || l="-L $label"
            # shellcheck disable=SC2086
            mkfs."$fstype" -q -F $l "$dev" || fail "mkfs.$fstype $dev failed" ;;
        xfs | btrfs)
            [ "$label" = - ] || l="-L $label"
            # shellcheck disable=SC2086
            mkfs."$fstype" -q -f $l "$dev" >/dev/null || fail "mkfs.$fstype $dev failed" ;;
        fat | fat32 | vfat)
            [ "$label" = - ] || l="-n $label"
            # shellcheck disable=SC2086
            mkfs.vfat -F 32 $l "$dev" >/dev/null || fail "mkfs.vfat $dev failed"
            fstype=vfat ;;
        swap)
            [ "$label" = - ] || l="-L $label"
            # shellcheck disable=SC2086
            mkswap $l "$dev" >/dev/null || fail "mkswap $dev failed" ;;
        *) fail "format $id: fstype $fstype is not supported by the script installer" ;;
    esac
    setdev "$id" "$dev"
    echo "$fstype" >"$STATE/fstype.$id"
    log "formatted $dev as $fstype"
done <"$PLAN"
udevadm settle || true

# --- mounts, in path order so parents come first ---------------------------------------
grep '^mount ' "$PLAN" | awk '{print length($4), $0}' | sort -n | cut -d' ' -f2- >"$STATE/mounts"
grep -q '^mount [^ ]* [^ ]* / ' "$STATE/mounts" || fail "no mount with path / in the storage config"
: >"$STATE/fstab"
while read -r _ id fmt path opts; do
    dev=$(getdev "$fmt")
    fstype=$(cat "$STATE/fstype.$fmt")
    [ "$opts" = - ] && opts=defaults
    uuid=$(blkid -s UUID -o value "$dev")
    [ -n "$uuid" ] || fail "mount $id: $dev has no filesystem UUID"
    if [ "$fstype" = swap ]; then
        continue
    fi
    mkdir -p "$TARGET$path"
    mount -t "$fstype" -o "$opts" "$dev" "$TARGET$path" || fail "mount $dev on $TARGET$path failed"
    pass=2
    [ "$path" = / ] && pass=1
    [ "$fstype" = vfat ] && pass=0
    echo "UUID=$uuid $path $fstype $opts 0 $pass" >>"$STATE/fstab"
    log "mounted $dev on $path"
done <"$STATE/mounts"
# Every swap format is used, whether or not a mount entry names it. (curtin itself only
# puts a swap into fstab when a `type: mount` entry names its format; configs meant for
# both installers give the swap such an entry, which the plan leaves out.)
while read -r kind id vol fstype label; do
    [ "$kind" = format ] && [ "$fstype" = swap ] || continue
    uuid=$(blkid -s UUID -o value "$(getdev "$id")")
    echo "UUID=$uuid none swap sw 0 0" >>"$STATE/fstab"
done <"$PLAN"

# --- copy the ephemeral root ------------------------------------------------------------
log "copying $SOURCE to $TARGET"
rsync -aHAXx --numeric-ids "$SOURCE"/ "$TARGET"/ || fail "copying the root failed"
{
    echo "# written by the vmtest script installer"
    cat "$STATE/fstab"
} >"$TARGET/etc/fstab"
echo "vmtest-installed" >"$TARGET/etc/hostname"
if [ -n "$CONFIG" ] && [ -f "$CONFIG" ]; then
    mkdir -p "$TARGET/root"
    cp "$CONFIG" "$TARGET/root/curtin-install-cfg.yaml"
fi
if [ -n "$NETCFG" ]; then
    [ -f "$NETCFG" ] || fail "network config $NETCFG is missing from the installer pack"
    mkdir -p "$TARGET/etc/cloud/cloud.cfg.d"
    cp "$NETCFG" "$TARGET/etc/cloud/cloud.cfg.d/50-curtin-networking.cfg" ||
        fail "cannot write the installed system's network config"
    log "network config for the installed system's cloud-init: /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg"
fi

# --- /dev/disk/by-dname rules (names are sanitized by the harness: [A-Za-z0-9_-]) -------
rules=$TARGET/etc/udev/rules.d
mkdir -p "$rules"
while read -r kind what a b c; do
    [ "$kind" = dname ] || continue
    base='SUBSYSTEM=="block", ACTION=="add|change"'
    case "$what" in
        disk)
            {
                echo "# written by the vmtest script installer"
                echo "$base, ENV{DEVTYPE}==\"disk\", ENV{ID_SERIAL}==\"$a\", SYMLINK+=\"disk/by-dname/$b\""
                echo "$base, ENV{DEVTYPE}==\"partition\", ENV{ID_SERIAL}==\"$a\", SYMLINK+=\"disk/by-dname/$b-part%n\""
            } >"$rules/$b.rules"
            name=$b ;;
        part)
            {
                echo "# written by the vmtest script installer"
                echo "$base, ENV{DEVTYPE}==\"partition\", ENV{ID_SERIAL}==\"$a\", ENV{ID_PART_ENTRY_NUMBER}==\"$b\", SYMLINK+=\"disk/by-dname/$c\""
            } >"$rules/$c.rules"
            name=$c ;;
        lv)
            {
                echo "# written by the vmtest script installer"
                echo "$base, ENV{DM_NAME}==\"$a\", SYMLINK+=\"disk/by-dname/$b\""
            } >"$rules/$b.rules"
            name=$b ;;
        *) fail "plan: dname $what is not supported" ;;
    esac
    log "by-dname rule for $name"
done <"$PLAN"

# --- kernel, initrd, grub ---------------------------------------------------------------
for d in dev proc sys run; do mount --bind "/$d" "$TARGET/$d"; done
cleanup_binds() { for d in run sys proc dev; do umount "$TARGET/$d" 2>/dev/null || true; done; }
krel=$(ls "$TARGET/lib/modules" | sort -V | tail -n 1)
[ -n "$krel" ] && [ -f "$TARGET/boot/vmlinuz-$krel" ] || fail "no kernel in the copied root (/boot/vmlinuz-*)"
if [ ! -f "$TARGET/boot/initrd.img-$krel" ]; then
    log "building the target's initramfs for $krel"
    chroot "$TARGET" update-initramfs -c -k "$krel" >/dev/null || fail "update-initramfs failed"
fi

rootdev=$(findmnt -n -o SOURCE "$TARGET")
case "$rootdev" in
    /dev/mapper/* | /dev/dm-*) rootspec=$rootdev ;;
    *) rootspec="UUID=$(blkid -s UUID -o value "$rootdev")" ;;
esac
bootdir=$TARGET/boot
bootdev=$(findmnt -n -o SOURCE --target "$bootdir")
bootuuid=$(blkid -s UUID -o value "$bootdev")
prefix=/boot
[ "$(findmnt -n -o TARGET --target "$bootdir")" = "$TARGET/boot" ] && prefix=""
cmdline="root=$rootspec ro console=ttyS0"

mkdir -p "$TARGET/etc/default"
cat >"$TARGET/etc/default/grub" <<GRUB
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB
mkdir -p "$bootdir/grub"
cat >"$bootdir/grub/grub.cfg" <<GRUB
# written by the vmtest script installer
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
insmod part_msdos
insmod part_gpt
insmod ext2
insmod lvm
search --no-floppy --fs-uuid --set=root $bootuuid
menuentry 'Debian GNU/Linux ($krel)' {
	linux $prefix/vmlinuz-$krel $cmdline
	initrd $prefix/initrd.img-$krel
}
GRUB
if [ "$FIRMWARE" = uefi ]; then
    # The removable-media path (EFI/BOOT/BOOTX64.EFI) is what firmware boots when its NVRAM
    # holds no boot entries, as on a fresh OVMF; --no-nvram leaves efivars alone (the install
    # VM may not even have booted through UEFI).
    [ "$(findmnt -n -o TARGET --target "$TARGET/boot/efi")" = "$TARGET/boot/efi" ] ||
        fail "UEFI install: nothing is mounted at /boot/efi (the EFI system partition)"
    [ -d "$TARGET/usr/lib/grub/x86_64-efi" ] ||
        fail "UEFI install: the image has no grub-efi-amd64-bin (/usr/lib/grub/x86_64-efi); rebuild it with vmtest images build"
    log "grub-install --target=x86_64-efi on /boot/efi"
    chroot "$TARGET" grub-install --target=x86_64-efi --efi-directory=/boot/efi \
        --bootloader-id=debian --removable --no-nvram --no-uefi-secure-boot >"$STATE/grub-install.log" 2>&1 || {
        sed 's/^/vmtest-installer: grub-install: /' "$STATE/grub-install.log"
        fail "grub-install --target=x86_64-efi failed"
    }
    [ -f "$TARGET/boot/efi/EFI/BOOT/BOOTX64.EFI" ] ||
        fail "grub-install left no EFI/BOOT/BOOTX64.EFI on the ESP"
else
    [ -n "$GRUB_DISKS" ] || GRUB_DISKS=$(getdev "$(awk '$1 == "disk" {print $2; exit}' "$PLAN")")
    for d in $GRUB_DISKS; do
        log "grub-install on $d"
        chroot "$TARGET" grub-install --target=i386-pc --recheck "$d" >"$STATE/grub-install.log" 2>&1 || {
            sed 's/^/vmtest-installer: grub-install: /' "$STATE/grub-install.log"
            fail "grub-install on $d failed"
        }
    done
fi
cleanup_binds
log "installed"
cp "$INSTALL_LOG" "$TARGET/root/curtin-install.log"
sync
# The handoff for a boot phase without firmware (VMTEST_HANDOFF names the writer when the
# harness attached a handoff disk): what grub would boot, read through the mounted target.
if [ -n "${VMTEST_HANDOFF:-}" ]; then
    sh "$VMTEST_HANDOFF" "$TARGET" || fail "writing the handoff failed"
fi
grep -v '^#' "$TARGET/etc/fstab" | sed 's/^/vmtest-installer: fstab: /'
umount -R "$TARGET" 2>/dev/null || true
vgchange -a n >/dev/null 2>&1 || true
sync
log "done"
echo "curtin: Installation finished."
