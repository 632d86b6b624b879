#!/usr/bin/env bash
# Refresh the vendored chart library from the npm registry (the only time a network is used):
# installs exactly what package-lock.json pins into a temporary directory and copies the
# browser build and its licence here. Run it after changing the pin in package.json with
# `npm install --package-lock-only` to update the lock first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
dist="$work/node_modules/uplot/dist"
cp "$dist/uPlot.iife.min.js" "$dist/uPlot.min.css" "$here/"
cp "$work/node_modules/uplot/LICENSE" "$here/LICENSE.uplot"
echo "uPlot $(node -p "require('$work/node_modules/uplot/package.json').version") vendored in $here"
