//! Every environment variable `vmtest run` reads, as a table after its `--help` (the
//! variables clap reads for an option, `env = ...`, are also shown beside it). A test
//! checks that each variable the harness's source reads appears here.

/// Shown after `vmtest run --help` and `vmtest console --help`.
pub const ENV_HELP: &str = "\
Environment (curtin's vmtest names; booleans are true unless empty, 0 or false):
  CURTIN_VMTEST_TOPDIR          all test data; absent or empty [default: $TMPDIR/vmtest-DATE-TIME-RANDOM]
  CURTIN_VMTEST_LOG             progress log with timestamps [default: TOPDIR.log]
  CURTIN_VMTEST_KEEP_DATA_PASS  what a passed test keeps: boot,collect,disks,install,logs | all | none [default: none]
  CURTIN_VMTEST_KEEP_DATA_FAIL  what a failed test keeps [default: all]
  CURTIN_VMTEST_IMAGE_SYNC      build a fresh image per release first, then prune to IMAGES_TO_KEEP [default: false]
  CURTIN_VMTEST_BRIDGE          networking; only `user` [default: user]
  CURTIN_VMTEST_INSTALL_TIMEOUT install phase limit (s, or 1h, 30m); a test's timeouts win [default: 3000]
  CURTIN_VMTEST_BOOT_TIMEOUT    boot phase limit; a test's timeouts win [default: 300]
  CURTIN_VMTEST_VMRAM           guest memory in MiB (or 2G); beats a test's memory_mib [default: 2048]
  CURTIN_VMTEST_NR_CPUS         guest vCPUs; beats a test's cpus [default: 1]
  CURTIN_VMTEST_PARALLEL        tests at once: 0 serial, -1 one per core, N [default: 0]
  CURTIN_VMTEST_REUSE_TOPDIR    no VMs: check the kept collect/ in TOPDIR again [default: false]
  CURTIN_VMTEST_APT_PROXY, apt_proxy  apt proxy for the install guest, the first set wins; empty: none
                                [default: the host's Acquire::HTTP::Proxy]
  CURTIN_VMTEST_EXTRA_CONFIG    a YAML file handed to curtin after each test's config (it wins)
  VMTEST_DERIVE_CHECKS          checks derived from each test's storage and network configs, as
                                --no-derive-checks turns off [default: true]
  VMTEST_OUTBOUND               what guests may reach beyond the harness's ports: internet, host:PORT,
                                ADDR[/PREFIX][:PORT], comma-separated; a test's outbound: adds [default: nothing]
  VMTEST_SERIAL_LOG_CAP         most a serial log holds (e.g. 16M); past it the first half, a marker line
                                and the newest output are kept [default: 64M]
  IMAGE_DIR                     image store [default: /srv/images]
  IMAGES_TO_KEEP                images kept per release when syncing [default: 1]
  VMTEST_IMAGE_STEP_TIMEOUT     limit in seconds per image build step when syncing
  CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT  seconds an image look-up or sync waits for curtin's image sync
                                to release IMAGE_DIR; negative: for ever [default: for ever]
  TMPDIR                        where the default TOPDIR goes [default: /tmp]
  CURTIN_SRC                    a curtin tree, as --curtin
  VMTEST_TESTS_DIR              the test configs, as --tests-dir
  VMTEST_VMM                    as --vmm: auto, builtin or qemu [default: auto]
  VMTEST_QEMU                   the qemu binary [default: qemu-system-x86_64]
  VMTEST_QEMU_ACCEL             kvm or tcg for qemu [default: kvm when it is real]
  VMTEST_QEMU_BOOT              qemu's boot phase: firmware (installed grub) or direct (the
                                install's handoff, as the builtin boots) [default: firmware]
  VMTEST_LOG_LEVEL              tracing filter for the harness's own logs [default: warn]
  GITHUB_ACTIONS                `true`: config errors and failed checks also as ::error annotations,
                                failed tests' serial tails in ::group:: blocks
  GITHUB_WORKSPACE              annotation paths are made relative to it

Exit codes: 0 all passed, 1 a test failed, 2 usage or config error,
3 infrastructure (qemu missing, image unusable, TOPDIR refused; wins over 1),
128+N told to end by signal N (SIGTERM, SIGINT, SIGHUP): VMs stopped, results written.";
