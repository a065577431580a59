#!/usr/bin/env bash
# Fetch the real material the acceptance tests (tests/test_real_data.py, tests/test_freedict_all.py)
# run on, into DIR (default .fixtures):
#
#   DIR/freedict/freedict-eng-LANG.{index,dict.dz}   Debian dict-freedict-eng-LANG (GPL), all 30
#                                                   English->X FreeDict dictionaries Debian ships
#   DIR/text/pydoc/**.rst.txt                       Debian python3.11-doc reST sources
#   DIR/text/devil/devil.{index,dict.dz}            Debian dict-devil: Ambrose Bierce's The Devil's
#                                                   Dictionary (1911, public domain), the general
#                                                   prose of the quality benchmark (docs/QUALITY.md)
#
# These are GPL or large: never commit them (.fixtures is git-ignored). Idempotent: a part whose
# target already exists is skipped. Needs apt-get and dpkg-deb (any Debian/Ubuntu machine).
# Then run the tests with:  LINK_FAST_FIXTURES=DIR pytest tests/test_real_data.py
set -euo pipefail

DIR=${1:-.fixtures}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

WORK=$(mktemp -d /tmp/link_fast_fetch.XXXXXX)
# apt-get download drops privileges to the _apt user when run as root: it must be able to
# write into the download directory, or apt warns and falls back to root.
chmod 777 "$WORK"
trap 'rm -rf "$WORK"' EXIT

APT_UPDATED=0

# download_deb NAME: leave NAME_*.deb in $WORK and print its path.
download_deb() {
    local name=$1 deb
    if ! (cd "$WORK" && apt-get download -q "$name" >"$WORK/apt.log" 2>&1); then
        if [ "$APT_UPDATED" -eq 0 ]; then
            echo "apt-get download $name failed; running apt-get update once and retrying" >&2
            apt-get update -q >&2
            APT_UPDATED=1
        fi
        if ! (cd "$WORK" && apt-get download -q "$name" >"$WORK/apt.log" 2>&1); then
            cat "$WORK/apt.log" >&2
            echo "error: apt-get download $name failed" >&2
            return 1
        fi
    fi
    deb=$(ls "$WORK/${name}"_*.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ]; then
        cat "$WORK/apt.log" >&2
        echo "error: apt-get download $name produced no .deb" >&2
        return 1
    fi
    echo "$deb"
}

# extract_deb NAME: extract NAME's .deb into $WORK/NAME and print that directory.
extract_deb() {
    local name=$1 deb out
    deb=$(download_deb "$name")
    out="$WORK/x-$name"
    mkdir -p "$out"
    dpkg-deb -x "$deb" "$out"
    echo "$out"
}

# FreeDict dictionaries: every English->X one Debian ships (keep in step with
# tests/test_freedict_all.py and link_fast.lexicon.FREEDICT_LANGUAGES).
FREEDICT_LANGS="afr ara bul ces cym dan deu ell fin fra gle hin hrv hun ind ita jpn lat lit nld nor
pol por rom rus spa srp swe swh tur"
for lang in $FREEDICT_LANGS; do
    name=freedict-eng-$lang
    target=$DIR/freedict
    if [ -s "$target/$name.index" ] && [ -s "$target/$name.dict.dz" ]; then
        echo "skip   freedict/$name (already there)"
        continue
    fi
    x=$(extract_deb "dict-$name")
    src=$x/usr/share/dictd
    if [ ! -s "$src/$name.index" ] || [ ! -s "$src/$name.dict.dz" ]; then
        echo "error: dict-$name has no usr/share/dictd/$name.{index,dict.dz}" >&2
        exit 1
    fi
    mkdir -p "$target"
    # Copy under temporary names, then rename: an interrupted run leaves no half file behind.
    cp "$src/$name.index" "$target/.$name.index.tmp"
    cp "$src/$name.dict.dz" "$target/.$name.dict.dz.tmp"
    mv "$target/.$name.dict.dz.tmp" "$target/$name.dict.dz"
    mv "$target/.$name.index.tmp" "$target/$name.index"
    echo "fetched freedict/$name ($(du -sh "$target/$name.dict.dz" | cut -f1) data, $(wc -l <"$target/$name.index") index lines)"
    # The extracted package is no longer needed: 30 of them would fill /tmp for nothing.
    rm -rf "$x" "$WORK"/dict-"$name"_*.deb
done

# English prose: the reST sources of the Python documentation
target=$DIR/text/pydoc
if [ -d "$target" ]; then
    echo "skip   text/pydoc (already there)"
else
    x=$(extract_deb python3.11-doc)
    src=$x/usr/share/doc/python3.11/html/_sources
    if [ ! -d "$src" ]; then
        echo "error: python3.11-doc has no usr/share/doc/python3.11/html/_sources" >&2
        exit 1
    fi
    mkdir -p "$DIR/text"
    rm -rf "$DIR/text/.pydoc.tmp"
    mkdir "$DIR/text/.pydoc.tmp"
    # Only the .rst.txt sources, keeping their relative paths.
    (cd "$src" && find . -type f -name '*.rst.txt' -exec cp --parents -t "$DIR/text/.pydoc.tmp" {} +)
    mv "$DIR/text/.pydoc.tmp" "$target"
    echo "fetched text/pydoc ($(find "$target" -name '*.rst.txt' | wc -l) .rst.txt files, $(du -sh "$target" | cut -f1))"
fi

# English general prose: The Devil's Dictionary (public domain), as a dictd database
target=$DIR/text/devil
if [ -s "$target/devil.index" ] && [ -s "$target/devil.dict.dz" ]; then
    echo "skip   text/devil (already there)"
else
    x=$(extract_deb dict-devil)
    src=$x/usr/share/dictd
    if [ ! -s "$src/devil.index" ] || [ ! -s "$src/devil.dict.dz" ]; then
        echo "error: dict-devil has no usr/share/dictd/devil.{index,dict.dz}" >&2
        exit 1
    fi
    mkdir -p "$target"
    cp "$src/devil.dict.dz" "$target/.devil.dict.dz.tmp"
    cp "$src/devil.index" "$target/.devil.index.tmp"
    mv "$target/.devil.dict.dz.tmp" "$target/devil.dict.dz"
    mv "$target/.devil.index.tmp" "$target/devil.index"
    echo "fetched text/devil ($(wc -l <"$target/devil.index") entries)"
fi
