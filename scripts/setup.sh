#!/usr/bin/env bash
# Install everything pynfct needs on Debian 12 (as root) and build it into .venv in this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# Editable: the extension is built in place, so bin/pynfct and tests run against the same build.
.venv/bin/pip install -q -e '.[test,bench,fuzz]'
# An editable install leaves the Python sources uncompiled; with PYTHONDONTWRITEBYTECODE set (as in CI)
# every CLI start would compile them again (~17 ms). pip compiles a regular install itself.
.venv/bin/python -m compileall -q pynfct _nfct
echo "pynfct installed: $(.venv/bin/pynfct -V)"
