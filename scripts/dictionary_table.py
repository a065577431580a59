"""Print how link_fast reads each FreeDict English->X dictionary, as a Markdown table.

    python scripts/dictionary_table.py [DIR]

DIR holds freedict-eng-CODE.{index,dict.dz} (default .fixtures/freedict, where
scripts/fetch_fixtures.sh puts them). Each dictionary is loaded and curated as a compile with
the default options keeps it (link_fast.compiler.curate); the table is the one in
docs/DICTIONARIES.md. A dictionary that is missing or fails is a row that
says so, and the exit status is then 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from link_fast.compiler import curate
from link_fast.errors import DictionaryError
from link_fast.lexicon import DROP_REASONS, FREEDICT_LANGUAGES, CleaningOptions, load_lexicon

HEADER = (
    "| dictionary | index lines | sources kept | phrases | translations kept / read | dropped (translations by reason; "
    "headword_mismatch and truncated_headword in index lines) |"
)


def row(directory: Path, code: str) -> tuple[str, bool]:
    index = directory / f"freedict-eng-{code}.index"
    if not index.is_file():
        return f"| eng-{code} | missing: run scripts/fetch_fixtures.sh | | | | |", False
    try:
        report = curate(load_lexicon(index, code, CleaningOptions(max_translations=0)), code).report
    except DictionaryError as exc:
        return f"| eng-{code} | error: {exc.problem} | | | | |", False
    reasons = (*DROP_REASONS, "headword_mismatch", "truncated_headword")
    dropped = ", ".join(
        f"{reason} {report[f'dropped_{reason}']:,}" for reason in reasons if report[f"dropped_{reason}"]
    )
    return (
        f"| eng-{code} | {report['lines']:,} | {report['sources']:,} | {report['phrases']:,} "
        f"| {report['pairs_kept']:,} / {report['pairs_read']:,} | {dropped or 'none'} |"
    ), True


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else Path(".fixtures/freedict")
    print(HEADER)
    print("|---|--:|--:|--:|--:|---|")
    ok = True
    for code in FREEDICT_LANGUAGES:
        line, good = row(directory, code)
        print(line, flush=True)
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
