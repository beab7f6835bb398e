#!/usr/bin/env bash
# PDF briefs (`sitewatch brief --pdf`): WeasyPrint needs the Pango library; the PDF test also
# uses poppler's pdftoppm and pdfimages. Debian/Ubuntu; run from the repository root with the
# project's virtual environment in .venv (as the README's set-up makes it).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils
"${VENV:-.venv}/bin/pip" install -e '.[pdf]'
