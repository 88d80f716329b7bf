#!/usr/bin/env python3
"""Writes the seed inputs under fuzz/seeds/<target>/: well-formed examples of what each
harness target parses, so libFuzzer starts from inputs that pass checksums and JSON
syntax instead of having to find them. Run from anywhere; rewrites the seed files."""
import base64, io, json, os, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NET = os.path.join(ROOT, "harness/tests/fixtures/net")


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# http_request: heads the guest sends (cloud-init, curl, curtin's webhook reporter).
put("http_request", "get", "GET /user-data HTTP/1.1\r\nHost: 10.0.2.2:8000\r\nUser-Agent: Cloud-Init\r\n\r\n")
put("http_request", "range", "GET /squashfs?x=1 HTTP/1.1\r\nRange: bytes=100-199\r\nAccept: */*\r\n\r\n")
put("http_request", "suffix", "HEAD /f HTTP/1.0\nRange: bytes=-5\n\n")
ev = json.dumps({"name": "cmd-install", "event_type": "finish", "result": "SUCCESS"})
put("http_request", "post", f"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(ev)}\r\n\r\n{ev}")
put("http_request", "post_short", "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"a\":\n1}")


# collect_tar: what `tar -C collect -cf /dev/disk/by-id/virtio-output_disk.img .` writes,
# and a few entries the extraction must refuse.
def tar_of(fmt, entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, kind, data, link in entries:
            i = tarfile.TarInfo(name)
            i.type = kind
            i.size = len(data) if kind == tarfile.REGTYPE else 0
            i.linkname = link
            t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    # tarfile pads the archive to 10 KiB; keep the entries and the two end blocks only,
    # so the inputs libFuzzer grows from stay small.
    body = b.getvalue().rstrip(b"\0")
    return body + b"\0" * (-len(body) % 512 + 1024)


R, D, S, L = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
put("collect_tar", "plain", tar_of(tarfile.USTAR_FORMAT, [
    ("./", D, b"", ""), ("./fstab", R, b"UUID=1 / ext4 defaults 0 1\n", ""),
    ("./vmtest/", D, b"", ""), ("./vmtest/lsblk.json", R, b"{}", ""),
    ("./vmtest/net/ip-link.json", R, b"[]", "")]))
put("collect_tar", "hostile", tar_of(tarfile.GNU_FORMAT, [
    ("../escape", R, b"x", ""), ("/abs", R, b"x", ""), ("./link", S, b"", "/etc"),
    ("./link/passwd", R, b"x", ""), ("./hard", L, b"", "fstab"), ("a", R, b"f", ""),
    ("a/", D, b"", ""), ("a/b", R, b"x", ""), ("d/" * 8 + "f", R, b"deep", ""),
    ("n" * 150, R, b"long name", "")]))
put("collect_tar", "pax", tar_of(tarfile.PAX_FORMAT, [
    ("./p/" + "é" * 60, R, b"pax", ""), ("./q", R, b"q" * 700, "")]))

# grub_cfg: grub-mkconfig's shape, with submenus, ids and a saved-entry default.
put("grub_cfg", "simple", "set timeout=0\nset default=\"0\"\nsearch --set=root x\nmenuentry 'Debian' --class os {\n\tinsmod ext2\n\tlinux\t/vmlinuz-6.1 root=UUID=abc ro console=ttyS0 $vt_handoff\n\tinitrd\t/initrd.img-6.1\n}\nsubmenu 'Advanced' {\n menuentry 'x' {\n  linux /other\n }\n}\n")
put("grub_cfg", "mkconfig", """if [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
else
   set default="gnulinux-advanced-abc>gnulinux-6.1-advanced-abc"
fi
function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
  fi
}
menuentry 'Ubuntu' --class ubuntu $menuentry_id_option 'gnulinux-simple-abc' {
	linux	/boot/vmlinuz-6.1 root=UUID=abc ro
	initrd	/boot/initrd.img-6.1
}
submenu 'Advanced options for Ubuntu' $menuentry_id_option 'gnulinux-advanced-abc' {
	menuentry 'Ubuntu, with Linux 6.2' --id 'gnulinux-6.2-advanced-abc' {
		linux	/boot/vmlinuz-6.2 root=UUID=abc ro
	}
	menuentry 'Ubuntu, with Linux 6.1' $menuentry_id_option 'gnulinux-6.1-advanced-abc' {
		linux	/boot/vmlinuz-6.1 root=UUID=abc ro single
		initrd	/boot/initrd.img-6.1
	}
}
""")

# curtin_events: start/finish events, a failure, the final event with the install log.
log = base64.b64encode(b"".join(b"curtin: line %d\n" % i for i in range(30))).decode()
put("curtin_events", "install", "\n".join(json.dumps(e) for e in [
    {"name": "cmd-install", "event_type": "start", "description": "curtin command install"},
    {"name": "cmd-install/stage-partitioning/builtin/cmd-block-meta", "event_type": "finish",
     "result": "FAIL", "description": "configuring disk: sda"},
    {"name": "cmd-install", "event_type": "finish", "result": "FAIL",
     "files": [{"path": "/var/log/curtin/install.log", "content": log, "encoding": "base64"}]},
    "not json"]) + "\n")

# serial_log: window 0x20*4+1, chunk 7, line cap 40, reads of 3, 1 and 20 bytes.
put("serial_log", "boot", bytes([0x20, 6, 40, 3, 1, 20]) +
    b"[    0.000000] Linux version 6.1\r\n\x1b[0;32m  OK  \x1b[0m] Reached target Network.\n"
    + b"x" * 90 + b"\nKernel panic - not syncing: VFS\nno newline")

# collected_data: selector byte, then the file.
def cd(sel, name, text):
    put("collected_data", name, bytes([sel]) + (text.encode() if isinstance(text, str) else text))

cd(0, "lsblk", json.dumps({"blockdevices": [
    {"name": "vda", "kname": "vda", "path": "/dev/vda", "type": "disk", "size": 10737418240,
     "serial": "disk-a", "pttype": "gpt", "mountpoints": [None], "children": [
        {"name": "vda1", "kname": "vda1", "type": "part", "size": 1048576, "mountpoints": [None]},
        {"name": "vda2", "kname": "vda2", "type": "part", "size": "3221225472",
         "fstype": "linux_raid_member", "children": [
            {"name": "md127", "kname": "md127", "type": "raid5", "fstype": "ext4", "mountpoints": ["/"]}]}]}]}))
cd(1, "sfdisk", json.dumps({"partitiontable": {"label": "gpt", "device": "/dev/vda", "unit": "sectors",
    "sectorsize": 512, "partitions": [
        {"node": "/dev/vda1", "start": 2048, "size": 2048, "type": "21686148-6449-6e6f-744e-656564454649"},
        {"node": "/dev/vda2", "start": 4096, "size": 6291456, "type": "83", "bootable": True}]}}))
cd(2, "links", "/dev/disk/by-id/virtio-disk-a\tvda\n/dev/disk/by-id/virtio-disk-a-part1\tvda1\n"
   "lrwxrwxrwx 1 root root 9 Jan 1 00:00 virtio-disk-b -> ../../vdb\n")
cd(3, "blkid", "DEVNAME=/dev/vda1\nUUID=1234\nTYPE=ext4\n\nDEVNAME=/dev/vda2\nTYPE=swap\nLABEL=sw\n")
cd(4, "lvm", '{"report": [{"pv": [{"pv_name": "/dev/md127", "vg_name": "vg0", "pv_size": "10"}]}]}\0'
   '{"report": [{"vg": [{"vg_name": "vg0", "vg_size": "21458059264", "vg_free": "0", "vg_extent_size": "4194304"}]}]}\0'
   '{"report": [{"lv": [{"lv_name": "lv-0", "vg_name": "vg0", "lv_size": "3221225472", "lv_dm_path": "/dev/mapper/vg0-lv--0"}]}]}')
cd(5, "dmsetup", "vg0-lv--0|LVM-abc|dm-0|md127|1\ncryptroot|CRYPT-LUKS2-x|dm-1|vda3|1\n")
cd(6, "mdadm", "MD_LEVEL=raid5\nMD_DEVICES=3\nMD_METADATA=1.2\nMD_UUID=a:b:c:d\nMD_DEVNAME=os\n"
   "MD_DEVICE_dev_vda2_ROLE=0\nMD_DEVICE_dev_vda2_DEV=/dev/vda2\nMD_DEVICE_dev_vdb1_ROLE=spare\n"
   "MD_DEVICE_dev_vdb1_DEV=/dev/vdb1\narray_state=clean\ndegraded=0\n")
cd(7, "bcache", "backing=vdb\ncache_mode=writethrough [writeback] writearound none\nstate=clean\ncset=abc\ncaches=vdc vdd\n")
cd(8, "fstab", "# comment\nUUID=1 / ext4 defaults 0 1\n/dev/vda2 none swap sw 0 0\n"
   "/my\\040dir /mnt xfs rw 0 0\ncryptroot /dev/vda3 none luks\nNAME TYPE SIZE USED PRIO\n/dev/vda2 partition 1G 0B -2\n")
cd(9, "findmnt", '{"filesystems": [{"target": "/", "source": "/dev/md127", "fstype": "ext4", "options": "rw"},'
   '{"target": "/btrfs", "source": "/dev/vdc[/@]", "fstype": "btrfs", "options": "rw"}]}')
for sel, f in [(10, "ip-link.json"), (11, "ip-addr.json"), (12, "ip-route4.json"), (12, "ip-route6.json"),
               (13, "bridge-link.json")]:
    for test in ["network_basic", "network_advanced"]:
        with open(os.path.join(NET, test, "vmtest/net", f), "rb") as fh:
            cd(sel, f"{test}-{f}", fh.read())
bonding_dir = os.path.join(NET, "network_advanced/vmtest/net/bonding")
for n in sorted(os.listdir(bonding_dir)):
    with open(os.path.join(bonding_dir, n), "rb") as fh:
        cd(14, f"bonding-{n}", fh.read())
with open(os.path.join(NET, "network_advanced/vmtest/net/etc-resolv.conf"), "rb") as fh:
    cd(14, "resolv.conf", fh.read())
cd(15, "dst", "10.0.0.0/8")
cd(31, "dst6", "fd00::/64")

