//! The collect script the harness owns: what the installed system shows about its
//! storage, in machine-readable form, for the derived checks. It runs in the boot phase
//! after curtin's default collect files and before the test's own collect scripts, in
//! `/mnt/output`, and writes everything under `vmtest/` (so a test's own file names never
//! collide with it). Each section gathers exactly what the checks of one domain read;
//! the network checks add theirs beside [`STORAGE`].
//!
//! Every tool used is in the image builder's package list (images/src/build.rs) and so in
//! the installed Debian system, which is a copy of the image's root: lsblk, findmnt,
//! swapon (util-linux, mount), sfdisk (fdisk), mdadm, pvs/vgs/lvs and dmsetup (lvm2).
//! bcache needs no tool (sysfs). A tool that is missing leaves its file out or empty;
//! the checks that need it then fail saying which file is missing, never the run.

/// Storage facts. Files (under `vmtest/`):
///
/// | file | from | read by |
/// |---|---|---|
/// | `lsblk.json` | `lsblk -J -b -O` | every device: serial, WWN, type, size, fs type/label/UUID, mount points, holders |
/// | `sfdisk/<kname>.json` | `sfdisk -J` per block device with a table | partition table type, partition numbers, sizes, types, boot flag |
/// | `links.txt` | the links under /dev/disk, /dev/mapper, /dev/md, /dev/bcache (`path<TAB>target`) | by-id and by-dname links, fstab and crypttab specs |
/// | `findmnt.json` | `findmnt -J -l -b` | what is mounted now, with which type and options |
/// | `swapon.txt` | `swapon --show --bytes --raw` | swap in use |
/// | `md/<kname>.export` | `mdadm --detail --export` and the array's sysfs (level, state, members with their slots) | RAID level, members, spares, name, state |
/// | `md/<kname>.detail`, `mdstat` | `mdadm --detail`, /proc/mdstat | evidence only |
/// | `pvs.json`, `vgs.json`, `lvs.json` | `pvs/vgs/lvs --reportformat json --units b --nosuffix` | volume groups, their PVs, LV sizes |
/// | `dmsetup.txt` | `dmsetup info -c` (name, uuid, kernel name, devices below, open count) | dm-crypt mappings |
/// | `crypttab` | /etc/crypttab | dm-crypt entries |
/// | `bcache/<kname>.export` | /sys/block/bcacheN/bcache (backing device, cache set and its cache device, mode, state) | bcache |
///
/// The fstab, blkid and /dev/disk listings are curtin's default collect files
/// (`fstab`, `blkid.out`, `ls_al_byid`, ...), read where they are.
pub const STORAGE: &str = r#"
# vmtest: storage facts for the derived checks (harness/src/checks)
mkdir -p /mnt/output/vmtest/sfdisk /mnt/output/vmtest/md /mnt/output/vmtest/bcache
cd /mnt/output/vmtest || exit 0
lsblk -J -b -O > lsblk.json 2> lsblk.err
findmnt -J -l -b -o TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN > findmnt.json 2> findmnt.err
swapon --show=NAME,TYPE,SIZE,USED,PRIO --bytes --raw > swapon.txt 2> swapon.err
find /dev/disk /dev/mapper /dev/md /dev/bcache -type l -printf '%p\t%l\n' > links.txt 2> /dev/null
for d in /sys/block/*; do
    k=${d##*/}
    case "$k" in loop* | ram* | sr* | zram*) continue ;; esac
    sfdisk -J "/dev/$k" > "sfdisk/$k.json" 2> /dev/null || rm -f "sfdisk/$k.json"
done
for d in /sys/block/md*; do
    [ -d "$d/md" ] || continue
    k=${d##*/}
    {
        mdadm --detail --export "/dev/$k"
        echo "SYSFS_LEVEL=$(cat "$d/md/level")"
        echo "SYSFS_RAID_DISKS=$(cat "$d/md/raid_disks")"
        echo "SYSFS_ARRAY_STATE=$(cat "$d/md/array_state")"
        echo "SYSFS_DEGRADED=$(cat "$d/md/degraded" 2> /dev/null)"
        echo "SYSFS_SYNC_ACTION=$(cat "$d/md/sync_action" 2> /dev/null)"
        for m in "$d"/md/dev-*; do
            [ -e "$m" ] || continue
            echo "SYSFS_MEMBER_${m##*/dev-}=$(cat "$m/slot") $(cat "$m/state")"
        done
    } > "md/$k.export" 2> /dev/null
    mdadm --detail "/dev/$k" > "md/$k.detail" 2>&1
done
cat /proc/mdstat > mdstat 2> /dev/null
pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,pv_uuid > pvs.json 2> pvs.err
vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,pv_count,lv_count,vg_size,vg_free,vg_extent_size > vgs.json 2> vgs.err
lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,lv_path,lv_dm_path,lv_uuid,lv_active > lvs.json 2> lvs.err
dmsetup info -c --noheadings --separator '|' -o name,uuid,blkdevname,blkdevs_used,open > dmsetup.txt 2> dmsetup.err
[ -f /etc/crypttab ] && cp /etc/crypttab crypttab
for d in /sys/block/bcache*; do
    [ -e "$d/bcache" ] || continue
    k=${d##*/}
    b=$(readlink -f "$d/bcache")
    {
        echo "BACKING=$(basename "$(dirname "$b")")"
        echo "CACHE_MODE=$(cat "$b/cache_mode")"
        echo "STATE=$(cat "$b/state")"
        c=$(readlink -f "$b/cache" 2> /dev/null)
        if [ -n "$c" ] && [ -d "$c" ]; then
            echo "CSET=${c##*/}"
            for cd in "$c"/cache[0-9]*; do
                [ -e "$cd" ] && echo "CACHE=$(basename "$(dirname "$(readlink -f "$cd")")")"
            done
        fi
    } > "bcache/$k.export" 2> /dev/null
done
cd /mnt/output
"#;

/// The harness's own collect script, all sections.
pub fn collect_script() -> String {
    STORAGE.to_string()
}
