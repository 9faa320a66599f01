#!/usr/bin/env bash
# Screenshot an HTML report in headless Chromium (Debian package `chromium`), to look at it
# the way a reader will: figures legible, axes labelled, legends with the laws, tables aligned.
#   docs/screenshot-report.sh demo-output/report/report.html docs/demo-report.png [WIDTH] [HEIGHT]
# tests/test_report_browser.py renders a report the same way and fails on a broken or blank
# figure; this script is for looking.
set -euo pipefail
html=$(readlink -f "$1"); out=$(readlink -f "${2:-report.png}")
width=${3:-1280}; height=${4:-4000}
command -v chromium >/dev/null || { echo "chromium is not installed: apt-get install -y chromium" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No network here: keep Chromium from trying (background networking, updates, sync).
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$out" "file://$html" >/dev/null 2>&1
echo "$out"
