#!/usr/bin/env bash
# Puts a harness report (default: target/harness/report.md, as run.sh
# writes it) into benches/README.md, between the harness-report markers,
# replacing the previous one. The summary around it is written by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
report=${1:-target/harness/report.md}
readme=benches/README.md
[ -s "$report" ] || { echo "no report at $report: run benches/harness/run.sh first" >&2; exit 1; }
grep -q '<!-- harness-report:begin -->' "$readme" && grep -q '<!-- harness-report:end -->' "$readme" \
    || { echo "$readme has no harness-report markers" >&2; exit 1; }
awk -v report="$report" '
    /<!-- harness-report:begin -->/ { print; print ""; while ((getline line < report) > 0) print line; print ""; skip = 1; next }
    /<!-- harness-report:end -->/ { skip = 0 }
    !skip { print }
' "$readme" > "$readme.tmp"
mv "$readme.tmp" "$readme"
echo "updated $readme from $report"
