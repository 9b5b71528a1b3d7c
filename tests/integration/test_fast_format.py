"""The plain TCP/UDP entries pynfct formats itself (without the library) against conntrack.

Counters on, timestamps off: the case the fast formatter handles with counters, which the shared
fixtures (timestamps on) never reach.
"""
import pytest

from differential import assert_same, run_both

TRAFFIC = r"""
import socket
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam, socket.SOCK_DGRAM); srv.bind((host, 20500))
    for port in range(31500, 31506):
        c = socket.socket(fam, socket.SOCK_DGRAM); c.bind((host, port))
        for _ in range(port - 31499):
            c.sendto(b"x" * (port % 97 + 1), (host, 20500))
            data, peer = srv.recvfrom(100)
            if port % 2:
                srv.sendto(data, peer)
        c.close()
    l = socket.socket(fam, socket.SOCK_STREAM); l.bind((host, 20501)); l.listen()
    for port in range(31510, 31513):
        c = socket.socket(fam, socket.SOCK_STREAM); c.bind((host, port)); c.connect((host, 20501))
        s, _ = l.accept(); c.sendall(b"y" * port); s.recv(100000); s.close(); c.close()
"""


@pytest.fixture(scope="module")
def counted_ns():
    from conftest import require_netns_env
    from netns import NetNS
    require_netns_env(need_nft=True)
    with NetNS() as ns:
        ns.nft("table inet t {\n chain c {\n  type filter hook output priority 0;\n  ct state new accept\n }\n}\n")
        ns.sh("echo 1 > /proc/sys/net/netfilter/nf_conntrack_acct; "
              "echo 0 > /proc/sys/net/netfilter/nf_conntrack_timestamp")
        ns.python(TRAFFIC)
        yield ns


@pytest.mark.parametrize("fmt", [[], ["-o", "extended"], ["-o", "id"], ["-o", "extended,id"], ["-o", "xml"],
                                 ["-o", "xml,extended,id"], ["-p", "udp"], ["-p", "tcp", "-o", "xml"]],
                         ids=lambda a: " ".join(a) or "default")
def test_counted_entries(counted_ns, fmt):
    ct, py = run_both(counted_ns, ["-L", *fmt])
    assert ct.stdout.count(b"packets=") >= 10 or b"<packets>" in ct.stdout
    assert_same(ct, py)
