//! What a storage check looks at: which aspect of which config entry. Derivation
//! (`super::derive`) names them, the probe (`super::probe`) evaluates them.

/// What a partition's type must be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PartType {
    /// One of these types (GPT GUIDs or MBR hex codes, upper case).
    Type(Vec<String>),
    /// The MBR boot indicator set.
    Bootable,
    /// A logical partition (number 5 and up).
    Logical,
}

/// Which aspect of which entry a check looks at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum What {
    DiskSerial {
        id: String,
    },
    DiskPath {
        id: String,
    },
    Ptable {
        id: String,
        label: &'static str,
    },
    /// `/dev/disk/by-dname/<link>` names the entry's device.
    Dname {
        id: String,
        link: String,
    },
    PartNumber {
        id: String,
    },
    PartSize {
        id: String,
    },
    PartType {
        id: String,
        want: PartType,
    },
    PartById {
        id: String,
    },
    FsType {
        id: String,
    },
    FsLabel {
        id: String,
    },
    FsUuid {
        id: String,
    },
    Fstab {
        id: String,
    },
    FstabSpec {
        id: String,
    },
    Mounted {
        id: String,
    },
    SwapInUse {
        id: String,
    },
    RaidLevel {
        id: String,
    },
    RaidMembers {
        id: String,
    },
    RaidSpares {
        id: String,
    },
    RaidName {
        id: String,
    },
    RaidActive {
        id: String,
    },
    VgPvs {
        id: String,
    },
    LvSize {
        id: String,
    },
    Crypttab {
        id: String,
    },
    CryptLuks {
        id: String,
    },
    CryptOpen {
        id: String,
    },
    BcacheBacking {
        id: String,
    },
    BcacheCache {
        id: String,
    },
    BcacheMode {
        id: String,
    },
}
