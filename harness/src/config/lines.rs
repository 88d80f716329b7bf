//! Where in the test file an entry was written: the line of a storage-config item, a
//! network interface or an `expect:` item, found in the parsed document (every node
//! keeps its position). Failed checks carry it, so a CI annotation points at the entry
//! that implied the check.

use super::TestConfig;
use crate::yaml::Node;

/// The sections of a network config v2 that name interfaces by key.
const V2_SECTIONS: [&str; 5] = ["ethernets", "bonds", "bridges", "vlans", "wifis"];

impl TestConfig {
    /// The line of the storage-config entry with this `id`.
    pub fn storage_item_line(&self, id: &str) -> Option<usize> {
        let items = self.doc.get("storage")?.get("config")?.as_seq()?;
        entry_named(items, "id", id)
    }

    /// The line where the network config defines interface `name` (v1: the `config:`
    /// entry with that `name`; v2: its key under `ethernets`, `bonds`, ...).
    pub fn interface_line(&self, name: &str) -> Option<usize> {
        let mut net = self.doc.get("network")?;
        // curtin also accepts the whole config nested once more under `network:`.
        if let Some(inner) = net.get("network") {
            net = inner;
        }
        if let Some(items) = net.get("config").and_then(Node::as_seq) {
            return entry_named(items, "name", name);
        }
        V2_SECTIONS.iter().find_map(|s| {
            net.get(s)
                .and_then(|sec| sec.entry(name))
                .map(|(k, _)| k.mark.line)
        })
    }

    /// The line of the `index`-th item of `vmtest: {expect: [...]}`.
    pub fn expect_line(&self, index: usize) -> Option<usize> {
        let items = self.doc.get("vmtest")?.get("expect")?.as_seq()?;
        items.get(index).map(|n| n.mark.line)
    }
}

/// The line of the mapping in `items` whose `key` is the string `value` (the last one,
/// as later entries win where the harness reads them).
fn entry_named(items: &[Node], key: &str, value: &str) -> Option<usize> {
    items
        .iter()
        .rev()
        .find(|n| n.get(key).and_then(Node::as_str) == Some(value))
        .map(|n| n.mark.line)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> TestConfig {
        TestConfig::parse("t", Path::new("t.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lines_of_storage_items_interfaces_and_expectations() {
        let t = parse(concat!(
            "vmtest:\n",
            "  expect:\n",
            "    - file_exists: [fstab]\n",
            "    - swaps_in_use: 1\n",
            "storage:\n",
            "  version: 1\n",
            "  config:\n",
            "    - id: sda\n",
            "      type: disk\n",
            "      serial: a\n",
            "      ptable: gpt\n",
            "    - {id: sda1, type: partition, device: sda, size: 3G}\n",
            "network:\n",
            "  version: 1\n",
            "  config:\n",
            "    - type: physical\n",
            "      name: eth0\n",
            "      mac_address: \"52:54:00:12:34:00\"\n",
        ));
        assert_eq!(t.storage_item_line("sda"), Some(8));
        assert_eq!(t.storage_item_line("sda1"), Some(12));
        assert_eq!(t.storage_item_line("nope"), None);
        assert_eq!(t.interface_line("eth0"), Some(16));
        assert_eq!(t.expect_line(1), Some(4));
        assert_eq!(t.expect_line(2), None);
        let v2 = parse(concat!(
            "network:\n",
            "  version: 2\n",
            "  ethernets:\n",
            "    eth0:\n",
            "      match: {macaddress: \"52:54:00:12:34:00\"}\n",
            "  bonds:\n",
            "    bond0:\n",
            "      interfaces: [eth0]\n",
        ));
        assert_eq!(v2.interface_line("eth0"), Some(4));
        assert_eq!(v2.interface_line("bond0"), Some(7));
    }
}
