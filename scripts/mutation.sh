#!/usr/bin/env bash
# Mutation testing of the pure-Python layer with mutmut (pip install -e '.[mutation]').
#
#   scripts/mutation.sh [MODULE ...]     MODULE: sampling substituter runner shards text lexicon compiler
#                                        (default: all of them, one after the other)
#
# mutmut rewrites the sources it mutates, so it runs in a copy of the repository, never in the
# working tree: $LINK_FAST_MUTATION_DIR (default /tmp/link_fast_mutation), refreshed from this
# checkout on every run (without .git, build outputs or the fetched data; .fixtures is linked).
# Each module runs against its own fast subset of the tests (the TESTS table below); hypothesis
# runs derandomized and without shrinking there, so that a killed mutant dies quickly and the
# same mutants die on every run. Scores land in $LINK_FAST_MUTATION_DIR/scores.tsv and the
# survivors in survivors-MODULE.txt; to see one: cd $LINK_FAST_MUTATION_DIR/repo, rename
# mutants-MODULE to mutants, `mutmut show NAME`. LINK_FAST_MUTATION_SAMPLE=N tests every N-th
# mutant only. docs/TESTING.md records the latest scores.
set -euo pipefail -f  # -f: mutant-name globs go to mutmut as they are

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${LINK_FAST_MUTATION_DIR:-/tmp/link_fast_mutation}
REPO_REAL=$(cd "$ROOT" && pwd -P)
WORK_REAL=$(mkdir -p "$WORK" && cd "$WORK" && pwd -P)
case "$WORK_REAL/" in "$REPO_REAL"/*)  # the copy would copy itself, or replace the checkout
    echo "mutation.sh: LINK_FAST_MUTATION_DIR must lie outside the repository" >&2
    exit 2 ;;
esac
case "$REPO_REAL/" in "$WORK_REAL/repo"/*)
    echo "mutation.sh: the repository lies inside LINK_FAST_MUTATION_DIR/repo, which is replaced" >&2
    exit 2 ;;
esac

# module, its source, the tests that run against its mutants: one row each, in the default order
declare -A SOURCES=() TESTS=()
ALL=()
while read -r module source tests; do
    SOURCES[$module]=$source TESTS[$module]=$tests ALL+=("$module")
done <<'TABLE'
sampling    link_fast/sampling.py     tests/test_kernel.py tests/test_survivors.py
substituter link_fast/substituter.py  tests/test_kernel.py tests/test_survivors.py
runner      link_fast/runner          tests/test_runner.py tests/test_outputs.py tests/test_survivors.py
shards      link_fast/shards          tests/test_shards.py tests/test_survivors.py
text        link_fast/text            tests/test_text.py tests/test_text_bad_input.py tests/test_survivors.py
lexicon     link_fast/lexicon.py      tests/test_lexicon.py
compiler    link_fast/compiler.py     tests/test_compiler.py tests/test_vocab.py
TABLE
if [ $# -gt 0 ]; then MODULES=("$@"); else MODULES=("${ALL[@]}"); fi

refresh_copy() {
    rm -rf "$WORK/repo"
    mkdir -p "$WORK/repo"
    (cd "$ROOT" && tar --exclude=./.git --exclude=./.fixtures --exclude=./build --exclude=./mutants \
        --exclude=./.hypothesis --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache \
        -cf - .) | (cd "$WORK/repo" && tar xf -)
    ln -sfn "$ROOT/.fixtures" "$WORK/repo/.fixtures"
    # derandomized, no shrinking: a failing example is reported as found
    cat >>"$WORK/repo/tests/conftest.py" <<'EOF'


from hypothesis import Phase as _Phase, settings as _settings  # noqa: E402  (added by scripts/mutation.sh)

_settings.register_profile("mutation", derandomize=True, deadline=None, phases=[_Phase.explicit, _Phase.generate])
_settings.load_profile("mutation")

# The runner's worker processes are spawned: spawn re-runs __main__ by its path, here mutmut's
# script, which refuses to start twice. Without the path they import only what they need.
import __main__ as _main  # noqa: E402

if "mutmut" in str(getattr(_main, "__file__", "")):
    del _main.__file__
EOF
}

write_site() {  # for the runner's spawned worker processes, see below
    mkdir -p "$WORK/site"
    cat >"$WORK/site/sitecustomize.py" <<'EOF'
# Added by scripts/mutation.sh. mutmut's module sets the 'fork' start method when imported,
# and its trampolines import it while collecting which tests reach which function; in a
# worker the runner spawned, the start method is already set and that import would fail.
import multiprocessing

_set_start_method = multiprocessing.set_start_method


def _lenient(method, force=False):
    try:
        _set_start_method(method, force)
    except RuntimeError:  # already set: the spawned worker keeps its own
        pass


multiprocessing.set_start_method = _lenient

# While mutmut collects which tests reach which function, a Python process that a test starts
# (the CLI, a pool worker) cannot report to it: such a process runs the code unmutated.
# With a mutant under test, it runs the mutant, so that tests through the CLI kill it too.
import os
import sys

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and not any("mutmut" in a for a in sys.orig_argv[:2]):
    os.environ["MUTANT_UNDER_TEST"] = ""
EOF
}

write_config() {  # $1: the module; mutate its files, copy the rest of the package unchanged
    local target=${SOURCES[$1]} file
    {
        echo "[mutmut]"
        echo "paths_to_mutate=link_fast/"
        echo "also_copy="
        echo "    csrc/"
        echo "    scripts/"
        echo "do_not_mutate="
        (cd "$WORK/repo" && find link_fast -name '*.py' | sort) | while read -r file; do
            case $file in "$target" | "$target"/*) ;; *) echo "    $file" ;; esac
        done
        echo "tests_dir="
        echo "    -m"
        echo "    not slow"  # the fast subset: the tests of tens of seconds stay out
        for file in ${TESTS[$1]}; do
            if [ ! -e "$WORK/repo/$file" ]; then  # a renamed test file would weaken the score unseen
                echo "mutation.sh: $file is missing" >&2
                exit 2
            fi
            echo "    $file"
        done
    } >"$WORK/repo/setup.cfg"
}

score() {  # $1: the module; one line of scores.tsv, survivors listed in survivors-$1.txt
    (cd "$WORK/repo" && python - "$1" "${SOURCES[$1]}" "$WORK") <<'EOF'
import json, sys
from collections import Counter
from pathlib import Path
from mutmut.__main__ import status_by_exit_code

module, target, work = sys.argv[1:]
counts, survivors = Counter(), []
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    source = str(meta.relative_to("mutants"))[: -len(".meta")]
    if source != target and not source.startswith(target + "/"):
        continue
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        status = status_by_exit_code.get(code, "suspicious")
        counts[status] += 1
        if status in ("survived", "no tests", "suspicious"):
            survivors.append(f"{name}\t{status}")
tested = sum(counts.values()) - counts["not checked"] - counts["skipped"]
killed = counts["killed"] + counts["timeout"]
rate = 100.0 * killed / tested if tested else 0.0
Path(work, f"survivors-{module}.txt").write_text("".join(s + "\n" for s in survivors))
line = (f"{module}\t{tested}\t{counts['killed']}\t{counts['timeout']}\t{counts['survived']}"
        f"\t{counts['no tests']}\t{rate:.1f}%")
with open(Path(work, "scores.tsv"), "a") as f:
    f.write(line + "\n")
print(line)
EOF
}

selection() {  # $1: the module; mutmut's mutant names: a glob, or every N-th name with a sample
    local name=${SOURCES[$1]%.py}
    if [ "${LINK_FAST_MUTATION_SAMPLE:-1}" -le 1 ]; then
        echo "${name//\//.}*"
        return
    fi
    (cd "$WORK/repo" && python - "${SOURCES[$1]}" "$LINK_FAST_MUTATION_SAMPLE") <<'EOF'
import io, sys
from pathlib import Path
from mutmut.__main__ import write_all_mutants_to_file

target, every = Path(sys.argv[1]), int(sys.argv[2])
names = []
for path in sorted([target] if target.is_file() else target.rglob("*.py")):
    module = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
    found, _ = write_all_mutants_to_file(out=io.StringIO(), source=path.read_text(), filename=str(path))
    names += [f"{module}.{n}" for n in found]
print(" ".join(sorted(names)[::every]))
EOF
}

refresh_copy
write_site
export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
printf 'module\tmutants\tkilled\ttimeout\tsurvived\tno_tests\tscore\n' >"$WORK/scores.tsv"
export LINK_FAST_FIXTURES=$ROOT/.fixtures
status=0
for module in "${MODULES[@]}"; do
    [ -n "${SOURCES[$module]:-}" ] || { echo "mutation.sh: unknown module $module" >&2; exit 2; }
    write_config "$module"
    rm -rf "$WORK/repo/mutants"
    if (cd "$WORK/repo" && nice mutmut run $(selection "$module") >"$WORK/mutmut-$module.log" 2>&1); then
        score "$module"
        rm -rf "$WORK/repo/mutants-$module"
        mv "$WORK/repo/mutants" "$WORK/repo/mutants-$module"  # `mutmut show` reads ./mutants: move it back
    else
        echo "mutation.sh: mutmut failed on $module, see $WORK/mutmut-$module.log" >&2
        printf '%s\tfailed\n' "$module" >>"$WORK/scores.tsv"
        status=1
    fi
done
column -t "$WORK/scores.tsv"
exit $status
