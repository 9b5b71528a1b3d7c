#!/usr/bin/env bash
# DIR CC "FLAGS": copy this checkout (its working tree, without builds or the venv) to DIR and build the
# whole extension there in place with compiler CC and FLAGS added to compiling and linking. The in-place
# build of the checkout is left alone. Used by scripts/build-asan.sh and scripts/fuzz.sh.
set -euo pipefail
dir=$1 cc=$2 flags=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
rm -rf "$dir"
mkdir -p "$dir"
tar -C "$repo" --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.so' --exclude='./_nfct/*.c' \
    --exclude=__pycache__ --exclude=.git -cf - . | tar -C "$dir" -xf -
(cd "$dir" && CC=$cc LDSHARED="$cc -shared" CFLAGS="$flags" LDFLAGS="$flags" \
    "$py" setup.py -q build_ext --inplace -j 2 >"$dir/build.log" 2>&1) || { tail -30 "$dir/build.log" >&2; exit 1; }
echo "    $(ls "$dir"/_nfct/*.so | wc -l) modules built in $dir with $cc $flags"
