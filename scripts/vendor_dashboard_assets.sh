#!/usr/bin/env bash
# Copies the dashboard's charting library, uPlot (MIT, https://github.com/leeoniya/uPlot), from its
# npm package into clients/tunix_rt/dashboard/static/vendor/, so the dashboard serves it itself and
# works offline with no CDN. The copied files are committed; rerun this after changing the version.
#
#     bash scripts/vendor_dashboard_assets.sh
set -euo pipefail

UPLOT_VERSION=1.6.32
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/clients/tunix_rt/dashboard/static/vendor"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

(cd "$scratch" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && tar xzf "uplot-$UPLOT_VERSION.tgz")
mkdir -p "$target"
cp "$scratch/package/dist/uPlot.iife.min.js" "$target/uPlot.iife.min.js"
cp "$scratch/package/dist/uPlot.min.css" "$target/uPlot.min.css"
cp "$scratch/package/LICENSE" "$target/uPlot.LICENSE"
echo "uplot $UPLOT_VERSION" > "$target/VERSION"
echo "vendored uPlot $UPLOT_VERSION into $target"
