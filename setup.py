"""Build the _nfct extension modules against the system's libnetfilter_conntrack and libmnl.

Nothing here runs pkg-config or Cython when the file is imported: reading the metadata (pip's metadata
step, ``python -m build --sdist``) needs neither the C libraries nor a compiler. Both are used by the
build_ext command below, only when the extensions are really built.
"""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LIBS = ("libnetfilter_conntrack", "libmnl")
DEBIAN_PACKAGES = "libnetfilter-conntrack-dev libmnl-dev pkg-config gcc python3-dev"
MODULES = ("constants", "flags", "socket", "filter", "format", "flow", "dump", "query", "progname", "evfilter",
           "evloop", "events", "request", "write", "modify", "fastparse", "spec", "load", "policy")
CYTHON_DIRECTIVES = {"language_level": 3, "boundscheck": False, "wraparound": False}


def pkg_config(*args):
    if shutil.which("pkg-config") is None:
        sys.exit(f"pynfct: pkg-config is missing; on Debian/Ubuntu: apt-get install {DEBIAN_PACKAGES}")
    try:
        out = subprocess.run(["pkg-config", *args, *LIBS], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        sys.exit(f"pynfct: {e.stderr.strip()}\n"
                 f"pynfct: the C libraries are missing; on Debian/Ubuntu: apt-get install {DEBIAN_PACKAGES}")
    return out.stdout.split()


class BuildExt(build_ext):
    """build_ext that asks pkg-config for the libraries' flags and runs Cython first, then compiles the
    modules in parallel (one job per CPU unless -j/--parallel says otherwise)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self):
        cflags, libs = pkg_config("--cflags"), pkg_config("--libs")
        from Cython.Build import cythonize
        for ext in self.extensions:
            # From the .pyx always (setuptools renames .pyx sources to .c when it cannot import Cython).
            ext.sources = [ext.name.replace(".", "/") + ".pyx"]
            ext.extra_compile_args = cflags + ["-O2", "-Wno-unused-function"]
            ext.extra_link_args = libs + ["-pthread"]
        jobs = int(self.parallel) if self.parallel is not True else (os.cpu_count() or 1)
        compiled = cythonize(self.extensions, compiler_directives=CYTHON_DIRECTIVES,
                             nthreads=jobs if jobs > 1 else 0, quiet=True)
        # cythonize returns new Extension objects; setuptools has already set up the ones it holds.
        c_sources = {ext.name: ext.sources for ext in compiled}
        for ext in self.extensions:
            ext.sources = c_sources[ext.name]
        super().run()


setup(ext_modules=[Extension(f"_nfct.{m}", [f"_nfct/{m}.pyx"]) for m in MODULES],
      cmdclass={"build_ext": BuildExt})
