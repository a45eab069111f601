#!/usr/bin/env bash
# The throughput harness in one command (as root): builds the release
# binaries, then runs raw veth, our overlay (the dataplane alone with static
# routes, and the full node) and the alternatives in network namespaces, and
# prints/writes the report. The alternatives come from
# benches/harness/install-alternatives.sh; any that is missing is skipped,
# with the reason in the report. Arguments go to the harness (e.g.
# --seconds 10 --nodes 2,3 --paths sealed,wireguard-go --out target/harness);
# see --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p mycelium-dataplane --bin mycelium-dataplane -p mycelium-control --bin myceliumd \
    -p mycelium-benches --bin harness
exec target/release/harness --dataplane target/release/mycelium-dataplane --myceliumd target/release/myceliumd "$@"
