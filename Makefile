# vmtest: OS-installer testing on a built-in KVM microVM.
# `make test` is what CI runs (.ci/run); `make vmtest-deps vmtest` is the main job.

CARGO ?= cargo
VMTEST = target/release/vmtest
# Last-resort bound on a whole test run; every VM-booting test has its own, far smaller one.
TEST_TIMEOUT ?= 3600

.PHONY: all build deps test lint check bench-boot bench-blk fuzz linux-kernel test-linux test-linux-distro test-images test-images-builtin images doctor vmtest-deps vmtest vmtest-e2e vmtest-ci-curtin vmtest-curtin curtin-src-given vmtest-builtin

all: build

build:
	$(CARGO) build --release --workspace

deps:
	scripts/install-deps.sh test

## The test suite: installs what it needs, then every crate's tests (unit, probe boots on
## the builtin VMM, the same probe under qemu, CLI bad-input checks, ACPI via iasl), vmm
## built without libslirp refusing NICs, the Linux test (test-linux: builds the kernel
## once per machine), then the main job end to end through qemu (vmtest-e2e).
test: deps
	timeout --kill-after=60 $(TEST_TIMEOUT) $(CARGO) test --workspace --no-fail-fast
	$(CARGO) test -p vmm --no-default-features --test without_usernet
	$(MAKE) test-linux
	$(MAKE) vmtest-e2e
	$(MAKE) vmtest-ci-curtin

## fmt, clippy (with the workspace lints: every unsafe block has a true SAFETY comment),
## vmm built without libslirp, and cargo-deny: licenses, bans and sources offline;
## advisories when the RustSec database can be fetched from GitHub, else against a copy
## on disk, else skipped with a loud notice (DENY_ADVISORIES=require makes that an error).
lint:
	scripts/install-deps.sh lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p vmm --no-default-features --all-targets -- -D warnings
	scripts/deny.sh

check: lint test

## Side-by-side boot times: builtin vs qemu microvm vs qemu pc (same probe, medians).
bench-boot: deps
	$(CARGO) bench -p harness --bench boot

## virtio-blk request path vs pread/pwrite, side by side (goal >= 80% of raw).
bench-blk: deps
	$(CARGO) bench -p devices --bench virtio_blk

## Every guest-facing parser under cargo-fuzz for a bounded time each (FUZZ_SECONDS per
## target); fails on any crash, timeout, OOM or leak.
FUZZ_SECONDS ?= 60
fuzz: deps
	fuzz/run.sh $(FUZZ_SECONDS)

## The vmtest kernel: Debian's linux-source built with scripts/linux-kernel.config
## (tinyconfig + fragment, everything built in), cached outside the clone by source version
## and config hash (/var/cache/vmtest/linux as root, else ~/.cache/vmtest/linux;
## VMTEST_CACHE_DIR overrides): built once per machine, reused after. Safe to run
## concurrently; a failed build caches nothing.
linux-kernel:
	scripts/install-deps.sh linux-kernel
	timeout --kill-after=60 7200 scripts/linux-kernel.sh

## Linux's own drivers on the builtin VMM and the same kernel and disks under qemu microvm
## (TCG), side by side: devices found through ACPI, disks, partitions, a read-write and a
## read-only root, DHCP, both vCPUs, the panic through pvpanic (vmm/tests/linux_kernel).
## About 5 minutes where KVM is emulated, seconds elsewhere.
test-linux: linux-kernel
	VMTEST_LINUX_KERNEL_DIR=$$(scripts/linux-kernel.sh --print-dir) timeout --kill-after=60 2400 \
		$(CARGO) test -p vmm --test linux_kernel -- --ignored --nocapture

## Opt-in: Debian's own cloud kernel + a busybox initramfs to user space on the builtin
## VMM. Seconds on a real KVM host; where KVM is emulated (PVM) no user space runs, and the
## test reports how far the kernel got (see the README).
test-linux-distro:
	scripts/install-deps.sh linux
	scripts/linux-guest.sh target/linux-guest
	LINUX_GUEST_DIR=$(CURDIR)/target/linux-guest timeout --kill-after=60 3600 \
		$(CARGO) test --release -p vmm --test linux -- --ignored --nocapture

## The ephemeral install image (as root): built from Debian packages into IMAGE_DIR
## (default /srv/images) if the store has no usable one (CURTIN_VMTEST_IMAGE_SYNC=1 rebuilds).
images: deps
	$(CARGO) run --release -p harness --bin vmtest -- images sync --release bookworm --arch amd64

## Opt-in, slow here: boot the image under qemu TCG (pc with the squashfs disk, pc with
## the HTTP download, microvm finding virtio-mmio through ACPI) with a NoCloud seed.
test-images: images
	$(CARGO) test -p images --test boot_qemu -- --ignored --test-threads=1 --nocapture

## Opt-in, very slow where KVM is emulated: the same boot on the builtin VMM.
test-images-builtin: images
	$(CARGO) test --release -p images --test boot_builtin -- --ignored --nocapture

## The main job's prerequisites: packages, the release binary, an install image.
vmtest-deps:
	scripts/install-deps.sh vmtest
	$(CARGO) build --release -p harness
	$(VMTEST) images sync --release bookworm --arch amd64

## The main job: the default test set (examples/tests). VMTEST_ARGS e.g.
## `--vmm qemu --junit vmtest.xml`; VMTEST_TESTS names, globs or regexes.
VMTEST_TESTS ?=
VMTEST_ARGS ?=
vmtest: build
	$(VMTEST) run $(VMTEST_ARGS) $(VMTEST_TESTS)

## End to end, in CI: the default test set (examples/tests: basic, basic_lvm, basic_4k,
## basic_uefi, network_basic, network_advanced) through the qemu backend with the script
## installer and a real image (built first if the store has none: ~4 min), two at a time;
## then a real kernel panic ending its phase at once. About 15 min under TCG here. Everything is kept under
## E2E_TOPDIR (logs and collect/ of every test, everything of a failed one) with JUnit
## beside it.
E2E_TOPDIR = target/vmtest-e2e
vmtest-e2e: vmtest-deps
	rm -rf $(E2E_TOPDIR) $(E2E_TOPDIR).xml
	env -u CURTIN_SRC CURTIN_VMTEST_TOPDIR=$(CURDIR)/$(E2E_TOPDIR) CURTIN_VMTEST_PARALLEL=2 \
		CURTIN_VMTEST_KEEP_DATA_PASS=logs,collect \
		timeout --kill-after=60 3600 $(VMTEST) --vmm qemu run --junit $(E2E_TOPDIR).xml $(VMTEST_TESTS)
	timeout --kill-after=60 600 $(CARGO) test -p harness --test e2e_qemu \
		real_kernel_panic -- --ignored --nocapture

## The curtin tree curtin's own installs run from: CURTIN_SRC, else ../shared/curtin beside
## this checkout where it exists (CI has it there).
CURTIN_SRC ?= $(wildcard $(abspath $(CURDIR)/../shared/curtin))

## In CI (part of `make test`): curtin itself installs the storage catalog's CI selection
## through qemu, two at a time (see harness/README.md, "Curtin in CI"): configs from
## examples/tests-curtin by name, and curtin's own examples/tests configs by path, run as
## they are and verified by the checks derived from their storage config alone (their
## boot phase gets 900 s, as ours have, instead of the 300 s default: a loaded 2-core
## host has taken 340 s). The order is the queue's: the longest start first, so both VM
## slots stay busy. Without a
## curtin tree this FAILS, naming the fix: a curtin test that did not run is not a pass.
## VMTEST_NO_CURTIN=1 is the explicit opt-out: the target then says loudly that the
## curtin installs did not run, and succeeds.
CURTIN_EXAMPLES = $(CURTIN_SRC)/examples/tests
CURTIN_CI_TESTS ?= $(CURTIN_EXAMPLES)/raid5boot.yaml fs_battery $(CURTIN_EXAMPLES)/lvmoverraid.yaml uefi_basic
CURTIN_CI_TOPDIR = target/vmtest-ci-curtin
vmtest-ci-curtin:
	@if [ -z "$(CURTIN_SRC)" ]; then \
		if [ "$(VMTEST_NO_CURTIN)" = 1 ]; then \
			echo "vmtest-ci-curtin: NOT RUN: the curtin installs ($(notdir $(CURTIN_CI_TESTS))) did not run: no curtin tree (VMTEST_NO_CURTIN=1 opts out); they are not passed" >&2; \
			exit 0; \
		fi; \
		echo "vmtest-ci-curtin: FAILED: no curtin tree, so the curtin installs ($(notdir $(CURTIN_CI_TESTS))) cannot run: set CURTIN_SRC=DIR (a curtin checkout) or put one at ../shared/curtin; VMTEST_NO_CURTIN=1 skips them explicitly" >&2; \
		exit 2; \
	fi
	$(MAKE) vmtest-deps
	rm -rf $(CURTIN_CI_TOPDIR) $(CURTIN_CI_TOPDIR).xml
	CURTIN_VMTEST_TOPDIR=$(CURDIR)/$(CURTIN_CI_TOPDIR) CURTIN_VMTEST_PARALLEL=2 \
		CURTIN_VMTEST_KEEP_DATA_PASS=logs,collect CURTIN_VMTEST_BOOT_TIMEOUT=900 \
		timeout --kill-after=60 3600 $(VMTEST) --vmm qemu run --tests-dir examples/tests-curtin \
		--curtin $(CURTIN_SRC) --junit $(CURTIN_CI_TOPDIR).xml $(CURTIN_CI_TESTS)

## Opt-in, slow under TCG: curtin itself (CURTIN_SRC=/path/to/curtin, a source tree)
## installs basic, basic_lvm, a RAID1 root and curtin's raid5boot booted from its handoff
## through qemu (harness/tests/e2e_curtin.rs),
## then every config in examples/tests-curtin, one VM at a time (see harness/README.md,
## "Running curtin itself").
CURTIN_TOPDIR = target/vmtest-curtin
vmtest-curtin: curtin-src-given vmtest-deps
	CURTIN_SRC=$(abspath $(CURTIN_SRC)) timeout --kill-after=60 4800 \
		$(CARGO) test -p harness --test e2e_curtin -- --ignored --test-threads=1 --nocapture
	rm -rf $(CURTIN_TOPDIR) $(CURTIN_TOPDIR).xml
	CURTIN_VMTEST_TOPDIR=$(CURDIR)/$(CURTIN_TOPDIR) CURTIN_VMTEST_PARALLEL=1 \
		CURTIN_VMTEST_KEEP_DATA_PASS=logs,collect \
		timeout --kill-after=60 7200 $(VMTEST) --vmm qemu run --tests-dir examples/tests-curtin \
		--curtin $(abspath $(CURTIN_SRC)) --junit $(CURTIN_TOPDIR).xml

curtin-src-given:
	@test -n "$(CURTIN_SRC)" || { echo "vmtest-curtin: set CURTIN_SRC to a curtin source tree (make vmtest-curtin CURTIN_SRC=DIR)" >&2; exit 2; }

## Opt-in: basic on the builtin VMM (does not finish where KVM is emulated; see
## harness/README.md).
vmtest-builtin: build
	$(VMTEST) --vmm builtin run basic

doctor: build
	$(VMTEST) doctor
