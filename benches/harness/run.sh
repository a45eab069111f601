#!/usr/bin/env bash
# The throughput harness in one command (as root): builds the release
# binaries, then runs raw veth against the sealed overlay in network
# namespaces and prints/writes the report. Arguments go to the harness
# (e.g. --seconds 10 --nodes 2,3 --out target/harness); see --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p mycelium-dataplane --bin mycelium-dataplane -p mycelium-benches --bin harness
exec target/release/harness --dataplane target/release/mycelium-dataplane "$@"
