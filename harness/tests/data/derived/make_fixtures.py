#!/usr/bin/env python3
"""Writes the hand-made collect/ fixtures of harness/tests/derived_checks.rs.

raid5boot/ and raid6boot/ are real: the collect/ of curtin installs of curtin's
raid5boot.yaml and raid6boot.yaml through qemu (see their tests). The others are made
here, in the same formats (lsblk's full column set, sfdisk -J, mdadm --detail --export
plus sysfs, LVM's JSON reports, ...), describing what curtin makes of curtin's
lvmoverraid.yaml, allindata.yaml and basic.yaml on this harness's disks: disks attached
in config order as vda, vdb, ..., then the output disk and the seed; arrays assembled in
the installed system as md127, md126, ... (the install's hostname, the test name, in
their superblock names); fstab specs as curtin writes them (by-uuid for partitions and
whole disks, md-uuid for arrays, dm-uuid for LVM).

Run it from this directory; it rewrites lvmoverraid/, allindata/ and basic/.
"""

import json
import os
import shutil
import uuid as uuidlib

COLUMNS = ['alignment', 'disc-aln', 'dax', 'disc-gran', 'disc-max', 'disc-zero',
           'fsavail', 'fsroots', 'fssize', 'fstype', 'fsused', 'fsuse%', 'fsver',
           'group', 'hctl', 'hotplug', 'kname', 'label', 'log-sec', 'maj:min', 'min-io',
           'mode', 'model', 'name', 'opt-io', 'owner', 'partflags', 'partlabel',
           'parttype', 'parttypename', 'partuuid', 'path', 'phy-sec', 'pkname', 'pttype',
           'ptuuid', 'ra', 'rand', 'rev', 'rm', 'ro', 'rota', 'rq-size', 'sched',
           'serial', 'size', 'start', 'state', 'subsystems', 'mountpoint',
           'mountpoints', 'tran', 'type', 'uuid', 'vendor', 'wsame', 'wwn', 'zoned',
           'zone-sz', 'zone-wgran', 'zone-app', 'zone-nr', 'zone-omax', 'zone-amax']

G = 1 << 30
M = 1 << 20
GPT_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
GPT_BIOS = '21686148-6449-6E6F-744E-656564454649'
GPT_PREP = '9E1A2D38-C612-4316-AA26-8B49521E5A8B'


def uid(seed):
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, seed))


class Dev:
    def __init__(self, kname, kind, size, **kw):
        self.kname, self.kind, self.size = kname, kind, size
        self.name = kw.pop('name', kname)
        self.path = kw.pop('path', '/dev/' + kname)
        self.attrs = kw
        self.children = []
        self.parents = []

    def add(self, child):
        self.children.append(child)
        child.parents.append(self)
        return child

    def row(self):
        r = {c: None for c in COLUMNS}
        r.update({'kname': self.kname, 'name': self.name, 'path': self.path,
                  'type': self.kind, 'size': self.size, 'log-sec': 512, 'phy-sec': 512,
                  'mountpoints': [None], 'ro': False, 'rm': False, 'group': 'disk',
                  'mode': 'brw-rw----', 'owner': 'root'})
        for k, v in self.attrs.items():
            r[k.replace('_', '-') if k != 'mountpoints' else k] = v
        if self.attrs.get('mountpoints'):
            r['mountpoint'] = self.attrs['mountpoints'][0]
        if self.parents:
            r['pkname'] = self.parents[0].kname
        if self.children:
            r['children'] = [c.row() for c in self.children]
        return r


class Fixture:
    def __init__(self, name):
        self.name = name
        self.disks = []
        self.tables = {}      # disk kname -> (label, [(number, start, size, type, bootable)])
        self.links = []       # (path, target kname)
        self.mounts = []      # (target, source, fstype, options)
        self.swaps = []       # (name, type, size)
        self.md = {}          # kname -> export text
        self.pvs, self.vgs, self.lvs = [], [], []
        self.dm = []          # name|uuid|kname|below|open
        self.crypttab = []
        self.fstab = []
        self.blkid = []

    def disk(self, kname, serial, size=10 * G, pttype=None, dname=None, fstype=None,
             fsuuid=None, label=None, mounts=None):
        d = Dev(kname, 'disk', size, serial=serial, pttype=pttype, fstype=fstype,
                uuid=fsuuid, label=label, mountpoints=mounts or [None])
        self.disks.append(d)
        self.links.append(('/dev/disk/by-id/virtio-' + serial, kname))
        if dname:
            self.links.append(('/dev/disk/by-dname/' + dname, kname))
        if fsuuid:
            self.links.append(('/dev/disk/by-uuid/' + fsuuid, kname))
            self.blkid.append((kname, {'UUID': fsuuid, 'TYPE': fstype, 'LABEL': label}))
        return d

    def part(self, disk, number, start_mib, size, ptype, dname=None, bootable=False,
             fstype=None, fsuuid=None, label=None, mounts=None, extra_dname=None):
        k = disk.kname + str(number)
        puuid = uid(self.name + k + 'part')
        gpt = disk.attrs['pttype'] == 'gpt'
        p = disk.add(Dev(k, 'part', size, partuuid=puuid,
                         parttype=ptype.lower() if gpt else '0x' + ptype.lower(),
                         partflags=None if gpt or not bootable else '0x80',
                         pttype=disk.attrs['pttype'], start=start_mib * 2048,
                         fstype=fstype, uuid=fsuuid, label=label,
                         mountpoints=mounts or [None]))
        label_kind, parts = self.tables.setdefault(disk.kname, (disk.attrs['pttype'], []))
        parts.append((number, start_mib * 2048, size // 512, ptype, bootable))
        serial = disk.attrs['serial']
        self.links.append(('/dev/disk/by-id/virtio-%s-part%d' % (serial, number), k))
        self.links.append(('/dev/disk/by-partuuid/' + puuid, k))
        if dname:
            self.links.append(('/dev/disk/by-dname/%s-part%d' % (dname, number), k))
        if extra_dname:
            self.links.append(('/dev/disk/by-dname/' + extra_dname, k))
        if fsuuid:
            self.links.append(('/dev/disk/by-uuid/' + fsuuid, k))
        self.blkid.append((k, {'UUID': fsuuid, 'TYPE': fstype, 'LABEL': label,
                               'PARTUUID': puuid}))
        return p

    def raid(self, kname, name, level, members, spares, size, fstype=None, fsuuid=None,
             mounts=None):
        mduuid = uid(self.name + name)
        md = Dev(kname, level, size, fstype=fstype, uuid=fsuuid,
                 mountpoints=mounts or [None])
        for m in members + spares:
            m.add(md)
            m.attrs.update(fstype='linux_raid_member', label=self.name + ':' + name,
                           uuid=mduuid)
        colon = ':'.join(mduuid.replace('-', '')[i:i + 8] for i in range(0, 32, 8))
        lines = ['MD_LEVEL=' + level, 'MD_DEVICES=%d' % len(members), 'MD_METADATA=1.2',
                 'MD_UUID=' + colon, 'MD_DEVNAME=%s:%s' % (self.name, name),
                 'MD_NAME=%s:%s' % (self.name, name)]
        for i, m in enumerate(members):
            lines += ['MD_DEVICE_dev_%s_ROLE=%d' % (m.kname, i),
                      'MD_DEVICE_dev_%s_DEV=/dev/%s' % (m.kname, m.kname)]
        for m in spares:
            lines += ['MD_DEVICE_dev_%s_ROLE=spare' % m.kname,
                      'MD_DEVICE_dev_%s_DEV=/dev/%s' % (m.kname, m.kname)]
        lines += ['SYSFS_LEVEL=' + level, 'SYSFS_RAID_DISKS=%d' % len(members),
                  'SYSFS_ARRAY_STATE=clean', 'SYSFS_DEGRADED=0', 'SYSFS_SYNC_ACTION=idle']
        lines += ['SYSFS_MEMBER_%s=%d in_sync' % (m.kname, i) for i, m in enumerate(members)]
        lines += ['SYSFS_MEMBER_%s=none spare' % m.kname for m in spares]
        self.md[kname] = '\n'.join(lines) + '\n'
        self.links += [('/dev/disk/by-id/md-uuid-' + colon, kname),
                       ('/dev/disk/by-id/md-name-%s:%s' % (self.name, name), kname),
                       ('/dev/md/%s:%s' % (self.name, name), kname),
                       ('/dev/disk/by-dname/' + name, kname)]
        return md

    def write(self):
        out = self.name
        shutil.rmtree(out, ignore_errors=True)
        for sub in ['vmtest/sfdisk', 'vmtest/md', 'vmtest/bcache']:
            os.makedirs(os.path.join(out, sub))

        def w(rel, text):
            with open(os.path.join(out, rel), 'w') as f:
                f.write(text)

        # lsblk's tree: a device under each of its parents, as lsblk prints it.
        w('vmtest/lsblk.json', json.dumps(
            {'blockdevices': [d.row() for d in self.disks]}, indent=3) + '\n')
        for k, (label, parts) in self.tables.items():
            t = {'label': label, 'id': uid(self.name + k).upper(), 'device': '/dev/' + k,
                 'unit': 'sectors', 'sectorsize': 512, 'partitions': []}
            if label == 'gpt':
                t.update(firstlba=34, lastlba=20971486)
            for (n, start, size, ptype, boot) in parts:
                e = {'node': '/dev/%s%d' % (k, n), 'start': start, 'size': size,
                     'type': ptype if label == 'gpt' else ptype.lower()}
                if label == 'gpt':
                    e['uuid'] = uid(self.name + k + str(n) + 'part').upper()
                if boot:
                    e['bootable'] = True
                t['partitions'].append(e)
            w('vmtest/sfdisk/%s.json' % k, json.dumps({'partitiontable': t}, indent=3) + '\n')
        w('vmtest/links.txt', ''.join('%s\t../../%s\n' % (p, t) if p.count('/') == 4
                                      else '%s\t../%s\n' % (p, t) for p, t in self.links))
        fs = [{'target': '/sys', 'source': 'sysfs', 'fstype': 'sysfs',
               'options': 'rw,nosuid,nodev,noexec,relatime', 'maj:min': '0:19'},
              {'target': '/proc', 'source': 'proc', 'fstype': 'proc',
               'options': 'rw,nosuid,nodev,noexec,relatime', 'maj:min': '0:20'}]
        for (t, s, ty, o) in self.mounts:
            fs.append({'target': t, 'source': s, 'fstype': ty, 'options': o,
                       'maj:min': '0:0'})
        w('vmtest/findmnt.json', json.dumps({'filesystems': fs}, indent=3) + '\n')
        w('vmtest/swapon.txt', 'NAME TYPE SIZE USED PRIO\n' + ''.join(
            '%s %s %d 0 -%d\n' % (n, t, s, i + 2) for i, (n, t, s) in enumerate(self.swaps)))
        w('proc-swaps', 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n' + ''.join(
            '%-40s%s\t\t%d\t\t0\t\t-%d\n' % (n, t, s // 1024, i + 2)
            for i, (n, t, s) in enumerate(self.swaps)))
        for k, text in self.md.items():
            w('vmtest/md/%s.export' % k, text)
        w('vmtest/mdstat', 'Personalities : [raid0] [raid1] [raid6] [raid5] [raid4]\n')

        def report(kind, rows):
            return json.dumps({'report': [{kind: rows}]}, indent=2) + '\n'
        w('vmtest/pvs.json', report('pv', self.pvs))
        w('vmtest/vgs.json', report('vg', self.vgs))
        w('vmtest/lvs.json', report('lv', self.lvs))
        w('vmtest/dmsetup.txt', ''.join(l + '\n' for l in self.dm) or 'No devices found\n')
        w('vmtest/crypttab', '# <target name>\t<source device>\t\t<key file>\t<options>\n'
          + ''.join(l + '\n' for l in self.crypttab))
        w('fstab', '# /etc/fstab: static file system information.\n' + ''.join(
            l + '\n' for l in self.fstab))
        w('blkid.out', ''.join(
            'DEVNAME=/dev/%s\n%s\n' % (k, ''.join('%s=%s\n' % (t, v) for t, v in tags.items()
                                                  if v))
            for k, tags in self.blkid))
        names = sorted(p.split('/')[-1] for p, _ in self.links
                       if p.startswith('/dev/disk/by-dname/'))
        w('ls_dname', ''.join(n + '\n' for n in names))


def lvmoverraid():
    f = Fixture('lvmoverraid')
    vda = f.disk('vda', 'disk-a', pttype='gpt', dname='main_disk')
    f.part(vda, 1, 1, 1 * M, GPT_BIOS, dname='main_disk')
    root = uid('lvmoverraid root')
    f.part(vda, 2, 2, 4 * G, GPT_LINUX, dname='main_disk', fstype='ext4', fsuuid=root,
           mounts=['/'])
    disks = [f.disk(k, s, dname=n) for k, s, n in
             [('vdb', 'disk-b', 'disk-2'), ('vdc', 'disk-c', 'disk-1'),
              ('vdd', 'disk-d', 'disk-3'), ('vde', 'disk-e', 'disk-4')]]
    md0 = f.raid('md127', 'md0', 'raid1', disks[0:2], [], 10 * G - 8 * M)
    md1 = f.raid('md126', 'md1', 'raid1', disks[2:4], [], 10 * G - 8 * M)
    home = uid('lvmoverraid home')
    lvuuid = 'LVM-' + uid('vg0').replace('-', '') + uid('lv-0').replace('-', '')
    lv = Dev('dm-0', 'lvm', 3 * G, name='vg0-lv--0', path='/dev/mapper/vg0-lv--0',
             fstype='ext4', uuid=home, mountpoints=['/home'])
    for md in (md0, md1):
        md.attrs.update(fstype='LVM2_member', uuid=uid('pv' + md.kname))
        md.add(lv)
    f.links += [('/dev/disk/by-uuid/' + root, 'vda2'), ('/dev/disk/by-uuid/' + home, 'dm-0'),
                ('/dev/disk/by-id/dm-name-vg0-lv--0', 'dm-0'),
                ('/dev/disk/by-id/dm-uuid-' + lvuuid, 'dm-0'),
                ('/dev/mapper/vg0-lv--0', 'dm-0'), ('/dev/disk/by-dname/vg0-lv--0', 'dm-0')]
    f.pvs = [{'pv_name': '/dev/md126', 'vg_name': 'vg0', 'pv_size': '10728505344',
              'pv_uuid': uid('pv1')},
             {'pv_name': '/dev/md127', 'vg_name': 'vg0', 'pv_size': '10728505344',
              'pv_uuid': uid('pv0')}]
    f.vgs = [{'vg_name': 'vg0', 'vg_uuid': uid('vg0'), 'pv_count': '2', 'lv_count': '1',
              'vg_size': '21449670656', 'vg_free': '18228445184',
              'vg_extent_size': '4194304'}]
    f.lvs = [{'lv_name': 'lv-0', 'vg_name': 'vg0', 'lv_size': '3221225472',
              'lv_path': '/dev/vg0/lv-0', 'lv_dm_path': '/dev/mapper/vg0-lv--0',
              'lv_uuid': uid('lv-0'), 'lv_active': 'active'}]
    f.dm = ['vg0-lv--0|%s|dm-0|md126,md127|1' % lvuuid]
    f.mounts = [('/', '/dev/vda2', 'ext4', 'rw,relatime'),
                ('/home', '/dev/mapper/vg0-lv--0', 'ext4', 'rw,relatime')]
    f.fstab = ['# / was on /dev/vda2 during curtin installation',
               '/dev/disk/by-uuid/%s / ext4 defaults 0 1' % root,
               '# /home was on /dev/vg0/lv-0 during curtin installation',
               '/dev/disk/by-id/dm-uuid-%s /home ext4 defaults 0 1' % lvuuid,
               '/swap.img\tnone\tswap\tsw\t0\t0']
    f.swaps = [('/swap.img', 'file', 1388310528)]
    f.write()


def allindata():
    f = Fixture('allindata')
    parts = {}
    vda = f.disk('vda', 'disk-a', pttype='gpt', dname='main_disk')
    f.part(vda, 1, 1, 1 * M, GPT_BIOS, dname='main_disk')
    for n in range(2, 6):
        parts['vda%d' % n] = f.part(vda, n, 2 + (n - 2) * 1024, 1 * G, GPT_LINUX,
                                    dname='main_disk')
    root = uid('allindata root')
    f.part(vda, 6, 2 + 4 * 1024, 3 * G, GPT_LINUX, dname='main_disk', fstype='ext4',
           fsuuid=root, mounts=['/'])
    for k, s, n in [('vdb', 'disk-b', 'second_disk'), ('vdc', 'disk-c', 'third_disk'),
                    ('vdd', 'disk-d', 'fourth_disk')]:
        d = f.disk(k, s, pttype='gpt', dname=n)
        for i in range(1, 5):
            parts['%s%d' % (k, i)] = f.part(d, i, 1 + (i - 1) * 1024, 1 * G, GPT_LINUX,
                                            dname=n)
    p = parts
    mds = [f.raid('md127', 'md0', 'raid5', [p['vda2'], p['vdb1'], p['vdc1']], [p['vdd1']],
                  2 * G - 8 * M),
           f.raid('md126', 'md1', 'raid6', [p['vda3'], p['vdb2'], p['vdc2'], p['vdd2']],
                  [p['vda4']], 2 * G - 8 * M),
           f.raid('md125', 'md2', 'raid1', [p['vda5'], p['vdb3']], [p['vdc3'], p['vdb4']],
                  1 * G - 4 * M),
           f.raid('md124', 'md3', 'raid0', [p['vdc4'], p['vdd3']], [], 2 * G - 8 * M)]
    vg_size = 7486832640
    lv3_size = vg_size - 2 * G
    lvs = []
    for i, (name, size, fstype, mp) in enumerate(
            [('lv1', 1 * G, 'ext3', '/srv/data'), ('lv2', 1 * G, 'ext4', '/srv/backup'),
             ('lv3', lv3_size, 'crypto_LUKS', None)]):
        fsu = uid('allindata ' + name)
        lv = Dev('dm-%d' % i, 'lvm', size, name='vg1-' + name, path='/dev/mapper/vg1-' + name,
                 fstype=fstype, uuid=fsu, mountpoints=[mp])
        lvu = 'LVM-' + uid('vg1').replace('-', '') + uid(name).replace('-', '')
        for md in mds:
            md.add(lv)
        lvs.append((lv, lvu, fsu))
        f.links += [('/dev/disk/by-uuid/' + fsu, lv.kname),
                    ('/dev/disk/by-id/dm-name-vg1-' + name, lv.kname),
                    ('/dev/disk/by-id/dm-uuid-' + lvu, lv.kname),
                    ('/dev/mapper/vg1-' + name, lv.kname),
                    ('/dev/disk/by-dname/vg1-' + name, lv.kname)]
        f.lvs.append({'lv_name': name, 'vg_name': 'vg1', 'lv_size': str(size),
                      'lv_path': '/dev/vg1/' + name, 'lv_dm_path': '/dev/mapper/vg1-' + name,
                      'lv_uuid': uid(name), 'lv_active': 'active'})
        f.dm.append('vg1-%s|%s|dm-%d|md124,md125,md126,md127|%d'
                    % (name, lvu, i, 0 if mp is None else 1))
    for md in mds:
        md.attrs.update(fstype='LVM2_member', uuid=uid('pv' + md.kname))
        f.pvs.append({'pv_name': '/dev/' + md.kname, 'vg_name': 'vg1',
                      'pv_size': str(md.size), 'pv_uuid': uid('pv' + md.kname)})
    f.vgs = [{'vg_name': 'vg1', 'vg_uuid': uid('vg1'), 'pv_count': '4', 'lv_count': '3',
              'vg_size': str(vg_size), 'vg_free': '0', 'vg_extent_size': '4194304'}]
    # dmcrypt0 (a passphrase, no key file) is in crypttab but stays closed at boot: nothing
    # mounts it (curtin's own test opens it by hand in a collect script).
    luks = lvs[2][2]
    f.crypttab = ['dmcrypt0 UUID=%s none luks' % luks]
    f.mounts = [('/', '/dev/vda6', 'ext4', 'rw,relatime'),
                ('/srv/data', '/dev/mapper/vg1-lv1', 'ext3', 'rw,relatime'),
                ('/srv/backup', '/dev/mapper/vg1-lv2', 'ext4', 'rw,relatime')]
    f.fstab = ['/dev/disk/by-uuid/%s / ext4 defaults 0 1' % root,
               '/dev/disk/by-id/dm-uuid-%s /srv/data ext3 defaults 0 1' % lvs[0][1],
               '/dev/disk/by-id/dm-uuid-%s /srv/backup ext4 defaults 0 1' % lvs[1][1],
               '/swap.img\tnone\tswap\tsw\t0\t0']
    f.swaps = [('/swap.img', 'file', 1388310528)]
    f.write()


def basic():
    f = Fixture('basic')
    dn = 'main_disk_with_in---valid--dname'
    vda = f.disk('vda', 'disk-a', pttype='dos', dname=dn)
    root, home, swap = uid('basic root'), uid('basic home'), uid('basic swap')
    f.part(vda, 1, 1, 4 * G, '83', dname=dn, bootable=True, fstype='ext4', fsuuid=root,
           label='cloudimg-rootfs', mounts=['/'])
    f.part(vda, 2, 1 + 4096, 1 * G, '83', dname=dn, fstype='ext4', fsuuid=home,
           mounts=['/home'])
    f.part(vda, 3, 1 + 5120, 1 * G, '83', dname=dn, fstype='swap', fsuuid=swap,
           mounts=['[SWAP]'], extra_dname='swap')
    fat = '1A2B-3C4D'
    f.disk('vdb', 'disk-b', dname='sparedisk', fstype='vfat', fsuuid=fat)
    btrfs = uid('basic btrfs')
    f.disk('vdc', 'disk-c', dname='btrfs_volume', fstype='btrfs', fsuuid=btrfs,
           mounts=['/btrfs'])
    vdd = f.disk('vdd', 'disk-d', pttype='gpt', dname='pnum_disk')
    f.part(vdd, 1, 1, 1 * G, GPT_LINUX, dname='pnum_disk')
    f.part(vdd, 2, 1025, 8 * M, GPT_PREP, dname='pnum_disk', extra_dname='prep')
    f.part(vdd, 10, 1033, 1 * G, GPT_LINUX, dname='pnum_disk')
    f.mounts = [('/', '/dev/vda1', 'ext4', 'rw,relatime'),
                ('/home', '/dev/vda2', 'ext4', 'rw,relatime'),
                ('/btrfs', '/dev/vdc', 'btrfs',
                 'rw,noatime,space_cache=v2,subvolid=5,subvol=/')]
    f.fstab = ['# / was on /dev/vda1 during curtin installation',
               '/dev/disk/by-uuid/%s / ext4 defaults 0 1' % root,
               '# /home was on /dev/vda2 during curtin installation',
               '/dev/disk/by-uuid/%s /home ext4 defaults 0 1' % home,
               '# /btrfs was on /dev/vdc during curtin installation',
               '/dev/disk/by-uuid/%s /btrfs btrfs defaults,noatime 0 1' % btrfs,
               '/dev/disk/by-uuid/%s none swap sw 0 0' % swap,
               '/btrfs/btrfsswap.img\tnone\tswap\tsw\t0\t0']
    f.swaps = [('/dev/vda3', 'partition', 1073737728),
               ('/btrfs/btrfsswap.img', 'file', 1073737728)]
    f.write()


if __name__ == '__main__':
    lvmoverraid()
    allindata()
    basic()
