#!/usr/bin/env bash
# Check that a repaired wheel (scripts/build-wheel.sh) needs nothing from the system at run time:
#
#     bash scripts/check-wheel.sh WHEEL [PYTHON]          (as root; PYTHON: the wheel's, default python3)
#
# 1. installs WHEEL into a fresh venv;
# 2. ldd: every libnetfilter_conntrack, libnfnetlink and libmnl that the installed extension modules (and
#    the libraries bundled with them) load resolves inside the wheel's pynfct.libs/, none in the system;
# 3. runs `pynfct -V`, and `pynfct -L` in a throwaway network namespace holding one entry, in a private
#    mount namespace where every file of the system's libnetfilter-conntrack3, libnfnetlink0 and libmnl0
#    packages is covered by an empty file, so the loader cannot use them. As a control, conntrack (which
#    links them) must fail to start there (so does ip, which links libmnl: nsenter enters the network
#    namespace instead). Nothing outside that mount namespace changes; the network namespace is deleted
#    at the end, pass or fail.
# This is what a host without those packages looks like to the loader; a full chroot without them would
# say the same at much greater cost.
set -euo pipefail

wheel=$(realpath "$1")
py=${2:-python3}
work=$(mktemp -d /tmp/pynfct-wheelcheck.XXXXXX)
ns=pynfct-wheelcheck-$$
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"    # not in a source tree, whose _nfct would shadow the installed one
fail() { echo "check-wheel: $*" >&2; exit 1; }

"$py" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-deps "$wheel" 2>&1 | grep -v '^WARNING: Location' >&2 || true
"$work/venv/bin/python" -c 'import _nfct.flow' || fail "the installed wheel does not import"
site=$("$work/venv/bin/python" -c 'import os, _nfct; print(os.path.dirname(os.path.dirname(_nfct.__file__)))')
libs="$site/pynfct.libs"
[ -d "$libs" ] || fail "$wheel has no pynfct.libs/: not repaired"

# 2. where the loader finds the three libraries, for every module and bundled library
n=0
for so in "$site"/_nfct/*.so "$libs"/*.so*; do
    while read -r name _ path _; do
        case "$name" in
            libnetfilter_conntrack*|libnfnetlink*|libmnl*)
                [ "$(dirname "$(realpath "$path")")" = "$(realpath "$libs")" ] \
                    || fail "$(basename "$so") loads $name from $path, not from the wheel"
                n=$((n + 1)) ;;
        esac
    done < <(env -u LD_LIBRARY_PATH ldd "$so" | grep '=>')
done
[ "$n" -gt 0 ] || fail "ldd found none of the three libraries: nothing was checked"
echo "ldd: $n references to libnetfilter_conntrack/libnfnetlink/libmnl, all in $(basename "$libs")/"

# 3. run it with the system's copies hidden
ip netns add "$ns"
ip netns exec "$ns" conntrack -I -p tcp -s 192.0.2.1 -d 192.0.2.2 --sport 4000 --dport 80 \
    --state ESTABLISHED -t 300 2>/dev/null
hidden=$(dpkg -L libnetfilter-conntrack3 libnfnetlink0 libmnl0 | grep '\.so' | xargs -r realpath | sort -u)
[ -n "$hidden" ] || fail "dpkg lists no library files to hide"
touch "$work/empty"
out=$(env -u LD_LIBRARY_PATH unshare --mount --propagation private -- bash -euc '
    empty=$1 ns=$2 venv=$3; shift 3
    for f in "$@"; do mount --bind "$empty" "$f"; done
    if conntrack -V >/dev/null 2>&1; then echo "control failed: conntrack still starts" >&2; exit 1; fi
    "$venv/bin/pynfct" -V
    nsenter --net="/run/netns/$ns" "$venv/bin/pynfct" -L 2>&1' \
    check "$work/empty" "$ns" "$work/venv" $hidden) || fail "with the system libraries hidden: $out"
echo "with $(echo "$hidden" | wc -l) system library files hidden (conntrack cannot start):"
echo "$out" | sed 's/^/    /'
grep -q 'src=192.0.2.1 dst=192.0.2.2 sport=4000 dport=80' <<<"$out" || fail "pynfct -L did not list the entry"
grep -q '1 flow entries have been shown' <<<"$out" || fail "pynfct -L: no summary line"
echo "check-wheel: $(basename "$wheel") OK"
