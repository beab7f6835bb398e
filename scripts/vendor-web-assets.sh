#!/usr/bin/env bash
# Vendor the web view's JavaScript libraries from their npm packages (with their licences)
# into src/sitewatch/web/static/vendor/.  The files are committed: installing sitewatch needs
# neither npm nor a network, and the page loads nothing from a CDN.  Run this only to
# upgrade; npm checks each package's integrity hash from the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
LEAFLET=1.9.4            # BSD-2-Clause
GEOMAN=2.20.2            # @geoman-io/leaflet-geoman-free, MIT
dest=src/sitewatch/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "leaflet@$LEAFLET" "@geoman-io/leaflet-geoman-free@$GEOMAN" >/dev/null)
mkdir -p "$tmp/l" "$tmp/g"
tar xzf "$tmp/leaflet-$LEAFLET.tgz" -C "$tmp/l"
tar xzf "$tmp/geoman-io-leaflet-geoman-free-$GEOMAN.tgz" -C "$tmp/g"
rm -rf "$dest/leaflet" "$dest/leaflet-geoman"
mkdir -p "$dest/leaflet/images" "$dest/leaflet-geoman"
cp "$tmp/l/package/dist/leaflet.js" "$tmp/l/package/dist/leaflet.css" "$tmp/l/package/LICENSE" \
   "$dest/leaflet/"
cp "$tmp/l/package/dist/images/"*.png "$dest/leaflet/images/"
cp "$tmp/g/package/dist/leaflet-geoman.js" "$tmp/g/package/dist/leaflet-geoman.css" \
   "$tmp/g/package/LICENSE" "$dest/leaflet-geoman/"
printf 'leaflet %s (npm, BSD-2-Clause)\n@geoman-io/leaflet-geoman-free %s (npm, MIT)\n' \
  "$LEAFLET" "$GEOMAN" > "$dest/VERSIONS.txt"
echo "vendored into $dest:"; cat "$dest/VERSIONS.txt"
