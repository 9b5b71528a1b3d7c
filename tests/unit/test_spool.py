"""pynfct.cli.load.open_spool: the private file -R - and load(lines) copy their lines into."""
from __future__ import annotations

import errno
import os
import tempfile

import pytest

from pynfct.cli.load import SpoolError, open_spool


def _no_tmpdir(*args, **kwargs):
    raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")


def test_memfd_when_no_temporary_directory(monkeypatch):
    monkeypatch.setattr(tempfile, "TemporaryFile", _no_tmpdir)
    with open_spool("pynfct-test-") as f:
        f.write(b"-I x\n")
        f.flush()
        path = os.readlink(f"/proc/self/fd/{f.fileno()}")
        assert path.startswith("/memfd:pynfct-test-")
        with open(f"/proc/self/fd/{f.fileno()}", "rb") as again:     # how the run reads it
            assert again.read() == b"-I x\n"


def _nothing_works(monkeypatch):
    monkeypatch.setattr(tempfile, "TemporaryFile", _no_tmpdir)

    def no_memfd(*args):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    monkeypatch.setattr(os, "memfd_create", no_memfd)


def test_clear_error_when_nothing_works(monkeypatch):
    _nothing_works(monkeypatch)
    with pytest.raises(SpoolError) as info:
        open_spool("pynfct-test-")
    assert isinstance(info.value, OSError) and not isinstance(info.value, FileNotFoundError)
    assert info.value.errno == errno.EMFILE
    assert "temporary file" in str(info.value) and "No usable temporary directory" in str(info.value)


def test_cli_operation_failed(monkeypatch, capsys):
    """-R - of a pipe or device (here /dev/null on stdin) that cannot be spooled: one line, exit 1."""
    _nothing_works(monkeypatch)
    from pynfct.cli.main import main
    with open(os.devnull, "rb") as null:
        saved = os.dup(0)
        os.dup2(null.fileno(), 0)
        try:
            status = main(["-R", "-"])
        finally:
            os.dup2(saved, 0)
            os.close(saved)
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("pynfct v") and ": Operation failed: cannot make a temporary file" in err
    assert err.count("\n") == 1 and "Traceback" not in err
