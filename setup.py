"""Build the _nfct extension modules against the system's libnetfilter_conntrack and libmnl."""
import shutil
import subprocess
import sys

from setuptools import Extension, setup

LIBS = ("libnetfilter_conntrack", "libmnl")
DEBIAN_PACKAGES = "libnetfilter-conntrack-dev libmnl-dev pkg-config"
MODULES = ("constants", "flags", "socket", "filter", "format", "flow", "dump", "query", "progname", "evfilter",
           "evloop", "events", "request", "write", "modify", "fastparse", "spec", "load")


def pkg_config(*args):
    if shutil.which("pkg-config") is None:
        sys.exit(f"pynfct: pkg-config is missing; on Debian/Ubuntu: apt-get install {DEBIAN_PACKAGES}")
    try:
        out = subprocess.run(["pkg-config", *args, *LIBS], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        sys.exit(f"pynfct: {e.stderr.strip()}\n"
                 f"pynfct: the C libraries are missing; on Debian/Ubuntu: apt-get install {DEBIAN_PACKAGES}")
    return out.stdout.split()


def extensions():
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    from Cython.Build import cythonize
    exts = [Extension(f"_nfct.{m}", [f"_nfct/{m}.pyx"],
                      extra_compile_args=cflags + ["-O2", "-Wno-unused-function"],
                      extra_link_args=libs + ["-pthread"])
            for m in MODULES]
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


setup(ext_modules=extensions())
