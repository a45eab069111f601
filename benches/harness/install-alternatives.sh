#!/usr/bin/env bash
# Installs the tunnels the harness compares our overlay with (as root):
# Yggdrasil, wireguard-go with wireguard-tools, Nebula (Debian packages) and
# boringtun (the crates.io package boringtun-cli, built by cargo into
# target/alternatives/bin, where the harness looks for it). Not run by CI;
# the harness skips any of them that is missing and says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends iperf3 iputils-ping iproute2 \
    yggdrasil wireguard-go wireguard-tools nebula
# yggdrasil's package enables a system service; the harness runs its own
# instances in namespaces and needs none outside them.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now yggdrasil 2>/dev/null || true
fi
cargo install --locked --root target/alternatives boringtun-cli
for t in yggdrasil wireguard-go wg nebula nebula-cert target/alternatives/bin/boringtun-cli; do
    printf '%-40s %s\n' "$t" "$(command -v "$t" || echo "$t")"
done
