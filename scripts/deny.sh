#!/bin/bash
# cargo-deny for `make lint`.
#
# Licenses, bans and sources are checked offline: they need only Cargo.lock and the crates
# cargo has already downloaded. RustSec advisories need the advisory database, a git
# repository on GitHub (github.com/rustsec/advisory-db), which these machines cannot reach.
# So: fetch it; if that fails, check against the copy already on disk (saying how old it
# is); with no copy at all, say loudly that advisories were NOT checked. A skipped check is
# not a pass: DENY_ADVISORIES=require makes it an error (for machines with network access).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "deny: cargo-deny is missing: run scripts/install-deps.sh lint (cargo install cargo-deny --locked)" >&2
    exit 1
fi

cargo deny --offline check bans licenses sources || exit 1

db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
banner() {
    echo "================================================================================" >&2
    printf 'deny: %s\n' "$@" >&2
    echo "================================================================================" >&2
}

fetch_log=$(mktemp)
trap 'rm -f "$fetch_log"' EXIT
if timeout 300 cargo deny fetch db >"$fetch_log" 2>&1; then
    cargo deny --offline check advisories
    exit $?
fi
why=$(grep -m1 -o 'fatal: .*\|Could not resolve host[^"]*' "$fetch_log" || tail -n 1 "$fetch_log")

# Whatever copy an earlier fetch left (cargo-deny keeps it under db_root/advisory-db-*).
db=$(find "$db_root" -mindepth 2 -maxdepth 2 -name .git -printf '%h\n' 2>/dev/null | head -n 1)
if [ -n "$db" ]; then
    age=$(git -C "$db" show -s --format=%cI HEAD 2>/dev/null || echo "an unknown date")
    banner "the RustSec advisory database could not be fetched ($why)." \
        "Advisories are checked against the copy on disk from $age: newer advisories are NOT seen."
    cargo deny --offline check advisories
    exit $?
fi

banner "ADVISORIES NOT CHECKED: the RustSec advisory database could not be fetched" \
    "($why) and no copy is on disk. This is a skipped check, not a pass." \
    "Run \`make lint\` where github.com is reachable (or copy an advisory-db clone to" \
    "$db_root/) to check advisories; DENY_ADVISORIES=require turns this into an error."
if [ "${DENY_ADVISORIES:-}" = require ]; then
    exit 1
fi
exit 0
