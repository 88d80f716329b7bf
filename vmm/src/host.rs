//! Facts about the host's KVM, for `vmtest doctor`.

/// Placeholder until the guest-speed probe lands.
pub fn kvm_module_is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}
