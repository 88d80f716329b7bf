//! What the installed system's collect scripts wrote, as the derived checks parse it:
//! lsblk, sfdisk, findmnt and LVM JSON, blkid and mdadm exports, bcache facts, fstab,
//! crypttab, swaps, dmsetup, the /dev link lists, and the network facts (`ip -j` link,
//! addr and route, `bridge -j`, /proc/net/bonding, resolvectl, resolv.conf). The first
//! byte picks the file, the rest is its text. Whatever the text: no panic, and no parser
//! keeps more entries than MAX_ITEMS or than the text has lines.
#![no_main]

use harness::checks::network::addr::parse_kernel_dst;
use harness::checks::network::facts::{
    BridgePort, Link, RouteFact, parse_addrs, parse_bonding, parse_json, parse_resolv_conf,
    parse_resolvectl_lines,
};
use harness::checks::parse::MAX_ITEMS;
use harness::checks::parse::block::{Blkid, Links, Lsblk, PartTable, partition_number};
use harness::checks::parse::lvm::{DmTable, Lvm};
use harness::checks::parse::md::{Bcache, MdArray};
use harness::checks::parse::mounts::{Crypttab, Findmnt, Fstab, Swaps};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text = text.as_ref();
    let lines = text.lines().count();
    let bounded = |n: usize| assert!(n <= MAX_ITEMS && n <= lines.max(1), "{n} items");
    match which % 16 {
        0 => {
            if let Ok(l) = Lsblk::parse(text) {
                for d in &l.devs {
                    let _ = d.describe();
                    let _ = l.get(&d.kname);
                    let _ = l.holders(&d.kname);
                    if let Some(p) = &d.path {
                        let _ = l.by_path(p);
                    }
                }
            }
        }
        1 => {
            if let Ok(t) = PartTable::parse("vmtest/sfdisk/vda.json", "vda", text) {
                for p in &t.parts {
                    let _ = t.part(p.number);
                    let _ = partition_number("vda", &p.kname);
                }
            }
        }
        2 => {
            for l in [Links::parse(text), Links::parse_ls("/dev/disk/by-id", text)] {
                bounded(l.links.len());
                for (path, target) in &l.links {
                    let _ = l.target(path);
                    let _ = l.names_for("/dev/disk/by-id", target);
                }
                let _ = l.in_dir("/dev/disk/by-uuid");
            }
        }
        3 => {
            let b = Blkid::parse(text);
            bounded(b.devs.len());
            for (dev, tags) in &b.devs {
                for tag in tags.keys() {
                    let _ = b.tag(dev, tag);
                }
            }
        }
        4 => {
            // The three reports, NUL-separated.
            let mut parts = text.splitn(3, '\0');
            let (pvs, vgs, lvs) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if let Ok(l) = Lvm::parse(pvs, vgs, lvs) {
                for lv in &l.lvs {
                    let _ = l.vg(&lv.vg);
                    let _ = l.lv(&lv.vg, &lv.name);
                    let _ = l.pvs_of(&lv.vg);
                }
            }
        }
        5 => {
            let t = DmTable::parse(text);
            bounded(t.devs.len());
            for d in &t.devs {
                let _ = t.by_name(&d.name);
            }
        }
        6 => {
            let a = MdArray::parse("md0", text);
            bounded(a.members.len());
            let _ = (a.active(), a.spares(), a.short_name(), a.describe());
        }
        7 => {
            let b = Bcache::parse("bcache0", text);
            bounded(b.caches.len());
            let _ = b.describe();
        }
        8 => {
            let f = Fstab::parse(text);
            bounded(f.entries.len());
            let _ = f.lines();
            bounded(Crypttab::parse(text).entries.len());
            bounded(Swaps::parse(text).areas.len());
        }
        9 => {
            if let Ok(f) = Findmnt::parse(text) {
                for m in &f.mounts {
                    let _ = (m.device(), m.describe(), f.at(&m.target));
                }
            }
        }
        10 => {
            if let Ok(links) = parse_json::<Vec<Link>>("ip-link.json", "ip -d -j link show", rest) {
                for l in &links {
                    let _ = (l.is_up(), l.kind(), l.summary(), l.data("mode"));
                    let _ = l.port_data("state");
                }
            }
        }
        11 => {
            if let Ok(addrs) = parse_addrs(rest) {
                for a in &addrs {
                    assert!(a.prefix <= if a.local.is_ipv4() { 32 } else { 128 });
                    let _ = a.summary();
                }
            }
        }
        12 => {
            if let Ok(routes) =
                parse_json::<Vec<RouteFact>>("ip-route4.json", "ip -4 -j route show", rest)
            {
                for r in &routes {
                    let _ = r.summary();
                    let _ = parse_kernel_dst(&r.dst, which & 0x10 != 0);
                }
            }
        }
        13 => {
            if let Ok(ports) =
                parse_json::<Vec<BridgePort>>("bridge-link.json", "bridge -d -j link show", rest)
            {
                for p in &ports {
                    let _ = p.summary();
                }
            }
        }
        14 => {
            let b = parse_bonding(text);
            assert!(b.members.len() <= lines);
            let _ = parse_resolvectl_lines(text);
            let (ns, search) = parse_resolv_conf(text);
            assert!(ns.len() <= lines && search.len() <= text.len());
        }
        _ => {
            let _ = parse_kernel_dst(text, which & 0x10 != 0);
            let _ = partition_number(text, rest.first().map_or("", |_| "vda1"));
        }
    }
});
