"""Build the Cython extensions (the kernel, text mode's matcher, the SIGBUS catcher of mapped
files). Compiler directives are set here, once, for every extension.

LINK_FAST_DEBUG=1 turns bounds and wraparound checks back on and compiles with -O0 -g,
for chasing a crash; the default build is the fast one. The debug build keeps its C source in
build/cython-debug: cythonize regenerates a C file by timestamps alone, so a shared one would
keep the other build's directives. scripts/test_debug_build.sh runs the tests against it.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("LINK_FAST_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]

extensions = [
    Extension(
        "link_fast._kernel",
        ["link_fast/_kernel.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        depends=["csrc/link_fast.h", "link_fast/_kernel.pxd"],
    ),
    Extension(
        "link_fast._text",
        ["link_fast/_text.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        depends=["csrc/link_fast.h", "link_fast/_text.pxd"],
    ),
    Extension("link_fast._mapped", ["link_fast/_mapped.pyx"], extra_compile_args=compile_args),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, build_dir="build/cython-debug" if DEBUG else None)
)
