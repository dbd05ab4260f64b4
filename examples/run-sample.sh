#!/usr/bin/env bash
# The main job until `sealtrail serve` lands: seal a sample day of practice
# events into a ledger, then audit it offline the way an auditor would.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/sealtrail
work=${1:-./sample}
mkdir -p "$work"
[ -f "$work/keys/signing.key" ] || "$bin" keygen --out "$work/keys" --name clinic.example/sealtrail

echo "== import (one sample line is invalid on purpose: it is rejected, reported and still recorded)"
"$bin" import --data "$work/data" --key "$work/keys/signing.key" examples/events.ndjson || [ $? -eq 1 ]

echo "== the latest signed checkpoint"
"$bin" checkpoint --data "$work/data"

echo "== offline verification with only the public key"
"$bin" verify --data "$work/data" --vkey "$work/keys/signing.vkey"

echo "== an inclusion proof for event ehr-0001, checked offline"
"$bin" proof --data "$work/data" --id ehr-0001 > "$work/proof.json"
"$bin" verify-proof --vkey "$work/keys/signing.vkey" "$work/proof.json"
