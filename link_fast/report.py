"""``link-fast report``: one self-contained HTML page about the outputs of an ``apply`` run.

Everything on the page comes from the records ``NAME.link.json`` of the output directory
(options, vocabulary, statistics per shard), the shards' indexes (the growth of each document,
input tokens to output tokens) and a sample of documents per shard aligned with their input
(``link_fast.inspect.ShardPair``): the most substituted words and the highlighted examples.
Charts are drawn by matplotlib (the ``report`` extra) as inline SVG; without it the page has
no charts and says so. The page loads nothing from the network, and shows excerpts around the
first substitutions of a document rather than the whole of it. The same outputs and options
give the same page, byte for byte.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FileError, LinkFastError
from .highlight import Piece, to_html
from .inspect import Document, ShardPair, read_record
from .io import overwritten, read_files, refuse_link, write_atomic
from .shards import LINK_RECORD_SUFFIX

TOP_WORDS = 40
EXAMPLES = 3
EXCERPT_SUBSTITUTIONS = 5  # an example shows the text around its first 5 substitutions
EXCERPT_CONTEXT = 200  # characters on each side of each
ELLIPSIS = " \u2026 "
PALETTE = ("#2e7d32", "#00838f", "#8e24aa", "#ef6c00", "#1565c0", "#c62828")


@dataclass
class ShardSummary:
    """One output shard: its record, the growth of each document, its sampled documents."""

    name: str
    record: dict
    growth: np.ndarray | None  # output/input tokens - 1 per non-empty input document; None: input gone
    documents: list[Document] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # every file the summary read: the page may replace none


def find_records(output_dir) -> list[tuple[Path, dict]]:
    """Every ``apply`` record of the directory, by name."""
    folder = Path(output_dir)
    if not folder.is_dir():
        raise FileError(folder, "no such directory")
    found = []
    for path in sorted(folder.glob(f"*{LINK_RECORD_SUFFIX}")):
        path, record = read_record(path)
        if isinstance(record.get("outputs"), list):  # `text` records are left out
            found.append((path, record))
    if not found:
        raise FileError(folder, f"holds no {LINK_RECORD_SUFFIX} record of link-fast apply")
    return found


@dataclass(frozen=True)
class Sources:
    """What ``inspect``'s ``--input``, ``--vocab`` and ``--tokenizer`` give instead of what the
    records name; ``input``: the folder of the inputs, or the input of a folder of one output."""

    input: str | None = None
    vocab: str | None = None
    tokenizer: str | None = None

    def input_of(self, name: str, outputs: int) -> str | None:
        if self.input is None or os.path.isdir(self.input):
            return None if self.input is None else os.path.join(self.input, name)
        if outputs > 1:
            raise FileError(self.input, f"one input for {outputs} outputs: give the folder of the inputs as --input")
        return self.input


def summarize(path: Path, record: dict, samples: int, seed: int, cache: dict, given: Sources, outputs: int = 1):
    """Growth per document and ``samples`` documents (seeded) of one output of ``outputs``;
    ``cache`` keeps the vocabulary and tokenizer from one output to the next."""
    name = path.name[: -len(LINK_RECORD_SUFFIX)]
    pair = ShardPair(path, given.input_of(name, outputs), given.vocab, given.tokenizer, cache=cache)
    try:
        before = np.asarray(pair.before.sizes, dtype=np.int64)
        after = np.asarray(pair.after.sizes, dtype=np.int64)
        nonempty = before > 0
        growth = after[nonempty] / before[nonempty] - 1.0
        rng = np.random.default_rng([seed, len(before)])
        chosen = sorted(rng.choice(pair.count, size=min(samples, pair.count), replace=False).tolist())
        documents = [pair.document(d) for d in chosen]
        shards = [s for s in (pair.before, pair.after, pair.mask) if s is not None]
        read = [str(path), *(p for s in shards for p in s.paths), str(pair.vocab.path), pair.tokenizer.path]
    finally:
        pair.close()
    return ShardSummary(name, record, growth, documents, read)


NO_CHARTS = "no charts: link-fast report draws them with matplotlib (pip install 'link_fast[report]')"


def _matplotlib():
    """pyplot, set up for the page; None without matplotlib (the page has no charts)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "link-fast"  # fixed ids: the same page for the same run
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: smaller, searchable
    matplotlib.rcParams["text.usetex"] = False  # labels are names from records: never TeX (_plain)
    from matplotlib import pyplot

    return pyplot


def _svg(figure, pyplot) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    pyplot.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or doctype


def _plain(text: str) -> str:
    """A label drawn as written: matplotlib reads $...$ as mathtext (a name like $\\x$ would
    even fail to draw); an escaped dollar is drawn as a dollar."""
    return text.replace("$", r"\$")


def language_chart(totals: dict[str, int], pyplot) -> str:
    figure, axes = pyplot.subplots(figsize=(6, 0.5 + 0.45 * len(totals)))
    names = [_plain(name) for name in totals]
    axes.barh(names, list(totals.values()), color=[PALETTE[i % len(PALETTE)] for i in range(len(names))])
    axes.invert_yaxis()
    axes.set_xlabel("substitutions")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return _svg(figure, pyplot)


def growth_chart(growth: np.ndarray, pyplot) -> str:
    figure, axes = pyplot.subplots(figsize=(6, 3))
    axes.hist(100 * growth, bins=40, color=PALETTE[1])
    axes.set_xlabel("token growth per document (%)")
    axes.set_ylabel("documents")
    axes.yaxis.get_major_locator().set_params(integer=True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return _svg(figure, pyplot)


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) else html.escape(str(value))


def _table(table_id: str, header: list[str], rows: list[list], keys: list[str]) -> str:
    """A table whose cells carry ``data-key`` (the column's key, which may hold a language's
    name: escaped like every value) for readers of the page."""
    out = [f'<table id="{table_id}"><thead><tr>']
    out += [f"<th>{html.escape(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(
            f'<td data-key="{html.escape(key)}"{" class=num" if isinstance(v, (int, float)) else ""}>{_fmt(v)}</td>'
            for key, v in zip(keys, row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def shard_table(shards: list[ShardSummary], languages: list[str]) -> str:
    rows = []
    for shard in shards:
        stats = shard.record["stats"]
        tokens_in, tokens_out = int(stats.get("tokens_in", 0)), int(stats.get("tokens_out", 0))
        growth = f"{100 * (tokens_out / tokens_in - 1):+.2f}%" if tokens_in else "-"
        subs = stats.get("substitutions", {})
        rows.append(
            [
                shard.name,
                int(stats.get("documents", 0)),
                int(stats.get("eligible_documents", 0)),
                tokens_in,
                tokens_out,
                growth,
                int(stats.get("total_substitutions", 0)),
                *[int(subs.get(lang, 0)) for lang in languages],
                "yes" if shard.record.get("mask_shard") else "no",
                shard.record.get("seconds", "-"),
            ]
        )
    keys = ["name", "documents", "eligible_documents", "tokens_in", "tokens_out", "growth", "substitutions"]
    keys += [f"substitutions_{lang}" for lang in languages] + ["mask", "seconds"]
    header = ["shard", "documents", "eligible", "tokens in", "tokens out", "growth", "substitutions"]
    header += languages + ["mask", "seconds"]
    return _table("shards", header, rows, keys)


def word_table(shards: list[ShardSummary]) -> tuple[str, int]:
    """The most substituted source words of the sampled documents and their translations."""
    by_source: Counter[str] = Counter()
    translations: dict[str, Counter[str]] = {}
    sampled = 0
    for shard in shards:
        for document in shard.documents:
            sampled += 1
            for source, translation, lang in document.substitutions:
                key = source.lower()
                by_source[key] += 1
                translations.setdefault(key, Counter())[f"{translation} ({lang})"] += 1
    rows = []
    for source, count in sorted(by_source.items(), key=lambda item: (-item[1], item[0]))[:TOP_WORDS]:
        common = sorted(translations[source].items(), key=lambda item: (-item[1], item[0]))
        rows.append([source, count, ", ".join(f"{t} \u00d7{n}" for t, n in common[:6])])
    return _table(
        "words", ["source word", "substitutions", "translations"], rows, ["source", "count", "translations"]
    ), sampled


def excerpt(document: Sequence[Piece], substitutions: int = EXCERPT_SUBSTITUTIONS) -> list[Piece]:
    """The text around the first ``substitutions`` marked words of a document, ``EXCERPT_CONTEXT``
    characters on each side (windows that overlap are one), an ellipsis where text is left out:
    a page of examples stays small whatever the documents' length."""
    starts = list(itertools.accumulate((len(piece.text) for piece in document), initial=0))
    marked = [i for i, piece in enumerate(document) if piece.mark is not None][:substitutions]
    windows: list[list[int]] = []
    for i in marked:
        a, b = max(0, starts[i] - EXCERPT_CONTEXT), min(starts[-1], starts[i + 1] + EXCERPT_CONTEXT)
        if windows and a <= windows[-1][1]:
            windows[-1][1] = b
        else:
            windows.append([a, b])
    out: list[Piece] = []
    for a, b in windows:
        if a > 0:
            out.append(Piece(ELLIPSIS))
        for piece, start in zip(document, starts):
            if start < b and start + len(piece.text) > a:  # a marked word is kept whole
                out.append(piece if piece.mark is not None else Piece(piece.text[max(0, a - start) : b - start]))
    if not windows or windows[-1][1] < starts[-1]:
        out.append(Piece(ELLIPSIS))
    return out


def examples(shards: list[ShardSummary], languages: list[str]) -> str:
    """Excerpts of the sampled documents with the most substitutions, highlighted."""
    ranked = sorted(
        ((len(d.substitutions), shard.name, d) for shard in shards for d in shard.documents),
        key=lambda item: (-item[0], item[1], item[2].index),
    )[:EXAMPLES]
    out = []
    for count, name, document in ranked:
        shown = f", the first {EXCERPT_SUBSTITUTIONS} shown" if count > EXCERPT_SUBSTITUTIONS else ""
        out.append(
            f'<section class="example"><h3>{html.escape(name)}, document {document.index}: '
            f"{document.size_before:,} \u2192 {document.size_after:,} tokens, {count} substitutions{shown}</h3>"
            f'<div class="pair"><div><h4>before</h4><p>{to_html(excerpt(document.before), languages)}</p></div>'
            f"<div><h4>after</h4><p>{to_html(excerpt(document.after), languages)}</p></div></div></section>"
        )
    return "".join(out) or "<p>No sampled document has a substitution.</p>"


# Long words and lines wrap anywhere, and the before/after columns may shrink below their
# content's width (min-width: 0), so that nothing runs off the page at any width; wide tables
# scroll within the page; the columns stack on a narrow screen.
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; display: block; max-width: 100%; overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
td { overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: normal; white-space: nowrap; }
h1, h3, code, p { overflow-wrap: anywhere; }
pre { background: #f6f6f6; padding: 0.7em; white-space: pre-wrap; overflow-wrap: anywhere; }
figure { margin: 1em 0; max-width: 100%; overflow-x: auto; }
.pair { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1.5em; }
.pair > div { min-width: 0; }
.pair p { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; }
.note { background: #fff8e1; padding: 0.5em 0.7em; }
mark { background: none; font-weight: 600; border-bottom: 2px solid; }
mark sub { font-weight: normal; font-size: 70%; color: #777; }
@media (max-width: 50em) { .pair { grid-template-columns: minmax(0, 1fr); } }
""" + "".join(f"mark.lang-{i} {{ color: {c}; }}\n" for i, c in enumerate(PALETTE))


def _options(records: list[dict]) -> str:
    """The options and vocabulary of the run: once, or per distinct set when shards differ."""
    seen: dict[str, list[str]] = {}
    for record in records:
        config = {k: v for k, v in record.get("config", {}).items() if k != "stream_key"}
        shown = {"options": config, "out_dtype": record.get("out_dtype")}  # the mask: in the shard table
        shown["vocabulary"] = record.get("vocab", {})
        shown["vocab_path"] = record.get("vocab_path")
        text = json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=True)
        seen.setdefault(text, []).append(str(record.get("_name")))
    if len(seen) == 1:
        return f'<pre id="options">{html.escape(next(iter(seen)))}</pre>'
    return "".join(
        f"<h3>{html.escape(', '.join(names))}</h3><pre>{html.escape(text)}</pre>" for text, names in seen.items()
    )


def render(output_dir, shards: list[ShardSummary], pyplot=None) -> str:
    """The page; ``pyplot`` draws its charts (None: a page without charts, that says so)."""
    records = [dict(s.record, _name=s.name) for s in shards]
    languages: list[str] = []
    for record in records:
        languages += [lang for lang in record.get("vocab", {}).get("languages", []) if lang not in languages]
    totals = {lang: sum(int(r["stats"].get("substitutions", {}).get(lang, 0)) for r in records) for lang in languages}
    fingerprints = sorted({str(r.get("vocab", {}).get("fingerprint")) for r in records})
    growth = [s.growth for s in shards if s.growth is not None and len(s.growth)]
    all_growth = np.concatenate(growth) if growth else np.zeros(0)
    words, sampled = word_table(shards)
    tokens_in = sum(int(r["stats"].get("tokens_in", 0)) for r in records)
    tokens_out = sum(int(r["stats"].get("tokens_out", 0)) for r in records)
    lang_rows = [[lang, totals[lang]] for lang in languages] + [["all", sum(totals.values())]]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>link-fast report: {html.escape(Path(output_dir).name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>link-fast report: {html.escape(str(output_dir))}</h1>",
        f'<p id="summary">{len(records)} shard(s), {tokens_in:,} tokens in, {tokens_out:,} tokens out, '
        f"{sum(totals.values()):,} substitutions.</p>",
        "" if pyplot is not None else f'<p class="note" id="no-charts">{html.escape(NO_CHARTS)}.</p>',
        "<h2>Options and vocabulary</h2>",
        f'<p>Vocabulary fingerprint: <code id="fingerprint">{html.escape(", ".join(fingerprints))}</code></p>',
        _options(records),
        "<h2>Substitutions per language</h2>",
        _table("languages", ["language", "substitutions"], lang_rows, ["language", "substitutions"]),
        f'<figure id="languages-chart">{language_chart(totals, pyplot)}</figure>' if pyplot is not None else "",
        "<h2>Token growth per document</h2>",
        _growth_text(all_growth),
        f'<figure id="growth-chart">{growth_chart(all_growth, pyplot)}</figure>'
        if len(all_growth) and pyplot is not None
        else "",
        "<h2>Most substituted words</h2>",
        f'<p>In <span id="sampled">{sampled}</span> sampled documents.</p>',
        words,
        "<h2>Examples</h2>",
        examples(shards, languages),
        "<h2>Shards</h2>",
        shard_table(shards, languages),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _growth_text(growth: np.ndarray) -> str:
    if not len(growth):
        return "<p>No document with tokens.</p>"
    q = np.percentile(100 * growth, [50, 90, 99])
    return (
        f'<p id="growth">{len(growth):,} documents: mean {100 * growth.mean():+.2f}%, median {q[0]:+.2f}%, '
        f"90th percentile {q[1]:+.2f}%, 99th {q[2]:+.2f}%, largest {100 * growth.max():+.2f}%.</p>"
    )


def write_report(
    output_dir,
    output,
    *,
    samples: int = 200,
    seed: int = 0,
    input_path=None,
    vocab_path=None,
    tokenizer_path=None,
    say: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of the outputs in ``output_dir`` to ``output``; its path. ``input_path``
    (the folder of the inputs, or the input of a folder of one output), ``vocab_path`` and
    ``tokenizer_path`` replace what the records name; ``say`` is told when the page has no charts."""
    if samples < 0:
        raise LinkFastError(f"--samples must be >= 0, got {samples}")
    refuse_link(output)
    given = Sources(*(None if p is None else os.fspath(p) for p in (input_path, vocab_path, tokenizer_path)))
    cache: dict = {}
    records = find_records(output_dir)
    shards = [summarize(path, record, samples, seed, cache, given, len(records)) for path, record in records]
    output = Path(output)
    replaced = overwritten(output, read_files(p for shard in shards for p in shard.read))
    if replaced is not None:
        raise FileError(output, f"the report would overwrite {replaced}, which it reads")
    pyplot = _matplotlib()
    if pyplot is None and say is not None:
        say(f"{output}: {NO_CHARTS}")
    page = render(output_dir, shards, pyplot)
    try:
        write_atomic(output, page.encode("utf-8"))
    except OSError as exc:
        raise FileError(output, f"cannot write: {exc.strerror or exc}") from None
    return output
