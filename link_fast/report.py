"""``link-fast report``: one self-contained HTML page about the outputs of an ``apply`` run.

Everything on the page comes from the records ``NAME.link.json`` of the output directory
(options, vocabulary, statistics per shard), the shards' indexes (the growth of each document,
input tokens to output tokens) and a sample of documents per shard aligned with their input
(``link_fast.inspect.ShardPair``): the most substituted words and the highlighted examples.
Charts are drawn by matplotlib (the ``report`` extra) as inline SVG; the page loads nothing
from the network. The same outputs and options give the same page, byte for byte.
"""

from __future__ import annotations

import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FileError, LinkFastError
from .highlight import to_html
from .inspect import Document, ShardPair, read_record
from .io import overwritten, read_files, refuse_link, write_atomic
from .shards import LINK_RECORD_SUFFIX

TOP_WORDS = 40
EXAMPLES = 3
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


def summarize(path: Path, record: dict, samples: int, seed: int, cache: dict) -> ShardSummary:
    """Growth per document and ``samples`` documents (seeded) of one output; ``cache`` keeps
    the vocabulary and tokenizer from one output to the next."""
    name = path.name[: -len(LINK_RECORD_SUFFIX)]
    pair = ShardPair(path, cache=cache)
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


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise LinkFastError(
            "link-fast report draws its charts with matplotlib: pip install 'link_fast[report]'"
        ) from None
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


def examples(shards: list[ShardSummary], languages: list[str]) -> str:
    """The sampled documents with the most substitutions, highlighted."""
    ranked = sorted(
        ((len(d.substitutions), shard.name, d) for shard in shards for d in shard.documents),
        key=lambda item: (-item[0], item[1], item[2].index),
    )[:EXAMPLES]
    out = []
    for count, name, document in ranked:
        out.append(
            f'<section class="example"><h3>{html.escape(name)}, document {document.index}: '
            f"{document.size_before:,} \u2192 {document.size_after:,} tokens, {count} substitutions</h3>"
            f'<div class="pair"><div><h4>before</h4><p>{to_html(document.before, languages)}</p></div>'
            f"<div><h4>after</h4><p>{to_html(document.after, languages)}</p></div></div></section>"
        )
    return "".join(out) or "<p>No sampled document has a substitution.</p>"


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.7em; overflow-x: auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5em; }
.pair p { white-space: pre-wrap; }
mark { background: none; font-weight: 600; border-bottom: 2px solid; }
mark sub { font-weight: normal; font-size: 70%; color: #777; }
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


def render(output_dir, shards: list[ShardSummary]) -> str:
    pyplot = _matplotlib()
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
        "<h2>Options and vocabulary</h2>",
        f'<p>Vocabulary fingerprint: <code id="fingerprint">{html.escape(", ".join(fingerprints))}</code></p>',
        _options(records),
        "<h2>Substitutions per language</h2>",
        _table("languages", ["language", "substitutions"], lang_rows, ["language", "substitutions"]),
        f'<figure id="languages-chart">{language_chart(totals, pyplot)}</figure>',
        "<h2>Token growth per document</h2>",
        _growth_text(all_growth),
        f'<figure id="growth-chart">{growth_chart(all_growth, pyplot)}</figure>' if len(all_growth) else "",
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


def write_report(output_dir, output, *, samples: int = 200, seed: int = 0) -> Path:
    """Write the report of the outputs in ``output_dir`` to ``output``; its path."""
    if samples < 0:
        raise LinkFastError(f"--samples must be >= 0, got {samples}")
    _matplotlib()  # before the work: a missing extra is said at once
    refuse_link(output)
    cache: dict = {}
    shards = [summarize(path, record, samples, seed, cache) for path, record in find_records(output_dir)]
    output = Path(output)
    replaced = overwritten(output, read_files(p for shard in shards for p in shard.read))
    if replaced is not None:
        raise FileError(output, f"the report would overwrite {replaced}, which it reads")
    page = render(output_dir, shards)
    try:
        write_atomic(output, page.encode("utf-8"))
    except OSError as exc:
        raise FileError(output, f"cannot write: {exc.strerror or exc}") from None
    return output
