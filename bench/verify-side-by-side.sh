#!/usr/bin/env bash
# The verifier crate's bench (crates/sealtrail-verify/benches/verify.rs) at two
# commits, side by side on the same ledger, alternating, three runs each: on a
# shared machine only the ratio between the two is evidence.
#
#   bench/verify-side-by-side.sh OLD_REV NEW_REV DATA_DIR VKEY_FILE
#
# DATA_DIR: a data directory written by sealtrail, e.g. by
#   SEALTRAIL_BENCH_LEDGER=/tmp/vb SEALTRAIL_BENCH_EVENTS=300000 \
#     cargo test --test verifier_crate make_bench_ledger -- --ignored
set -euo pipefail
old=$1 new=$2 data=$3 vkey=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$(git rev-parse --show-toplevel)
for rev in "$old" "$new"; do
    mkdir -p "$work/$rev"
    git -C "$root" archive "$rev" crates/sealtrail-verify | tar -x -C "$work/$rev"
    crate="$work/$rev/crates/sealtrail-verify"
    # Stand alone, outside the workspace.
    printf '\n[workspace]\n' >> "$crate/Cargo.toml"
    (cd "$crate" && CARGO_TARGET_DIR="$work/target-$rev" cargo bench --no-run --bench verify 2>&1 | tail -1)
    find "$work/target-$rev/release/deps" -maxdepth 1 -type f -name 'verify-*' ! -name '*.d' -exec cp {} "$work/bench-$rev" \;
done
export SEALTRAIL_VERIFY_BENCH_DIR=$data SEALTRAIL_VERIFY_BENCH_VKEY=$vkey
uptime
for i in 1 2 3; do
    for rev in "$old" "$new"; do
        echo "== run $i $rev"
        "$work/bench-$rev" | grep -E "raw sha256|per entry"
    done
done
uptime
