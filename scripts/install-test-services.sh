#!/usr/bin/env bash
# The test suite's real services (docs/testing.md): Debian's PostgreSQL 15 (the store tests'
# server, tests/pg_server.py, and with PostGIS 3 the pgstac of tests/stac_server.py; the
# fixtures start their own clusters under a temporary folder and stop them), and Debian's
# chromium for the web view's browser tests (tests/test_web_browser.py drives it with
# Playwright for Python; fonts so text renders).  The Python side (psycopg, pypgstac,
# stac-fastapi-pgstac, uvicorn, pystac-client) comes with `pip install -e '.[test]'`.
# Idempotent and quiet: apt runs only when a package is missing.  Works as root (CI) or with
# sudo.
set -euo pipefail
packages=(postgresql-15 postgresql-15-postgis-3 chromium fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-test-services: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may create and start a default cluster; the tests use their own.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q .; then
  $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
fi
