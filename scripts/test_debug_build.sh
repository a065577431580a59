#!/usr/bin/env bash
# Run the test suite against a debug build of the extensions, the kernel and text mode's
# matcher (bounds and wraparound checks on, -O0 -g: see setup.py), then put the optimised
# build back, also when the tests fail.
#
#   scripts/test_debug_build.sh [PYTEST ARGS...]    (default: the whole suite)
#
# Each build is compiled aside and moved over link_fast/_kernel*.so and _text*.so, each in
# one rename, so a process that has the old one loaded keeps running. Exits with pytest's
# status.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

install_kernel() {  # install_kernel DEBUG: build with LINK_FAST_DEBUG=DEBUG and swap it in
    local out so
    out=$(mktemp -d)
    if ! LINK_FAST_DEBUG=$1 "$PYTHON" setup.py -q build_ext --build-lib "$out" --build-temp "$out/temp" >"$out/log" 2>&1; then
        cat "$out/log" >&2
        rm -rf "$out"
        return 1
    fi
    for so in "$out"/link_fast/_kernel*.so "$out"/link_fast/_text*.so; do
        cp "$so" "link_fast/.$(basename "$so").new"
        mv -f "link_fast/.$(basename "$so").new" "link_fast/$(basename "$so")"
    done
    rm -rf "$out"
}

restore() {
    echo "test_debug_build: restoring the optimised kernel" >&2
    install_kernel 0
}

trap restore EXIT
install_kernel 1
"$PYTHON" -c 'import link_fast._kernel, link_fast._text' # the debug builds import
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
