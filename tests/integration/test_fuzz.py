"""Crafted netlink bytes into the parser and every formatter: nothing may crash."""
import os
import signal
import sys

from differential import _pynfct_env

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz", "mutate_parse.py")
ABI_EXIT = b"ctnetlink kernel ABI is broken"


def test_mutated_messages_do_not_crash(synthetic_ns):
    total = 0
    for seed in range(16):
        r = synthetic_ns.run([sys.executable, SCRIPT, str(seed), "3000"], env=_pynfct_env(), timeout=120)
        assert r.returncode >= 0, (f"seed {seed}: killed by {signal.Signals(-r.returncode).name}:\n"
                                   f"{r.stderr.decode()[-2000:]}")
        # libnetfilter_conntrack exits on attribute lengths the kernel never sends; parse_message checks
        # bytes against the kernel's policy first and refuses those with ValueError (_nfct/policy.pyx).
        assert r.returncode == 0 and ABI_EXIT not in r.stderr, r.stderr.decode()[-2000:]
        total += int(r.stdout.split()[-1]) if r.stdout else 0
    # deep enough to be worth something: most mutations keep lengths valid and reach the formatters
    assert total >= 5000, total
