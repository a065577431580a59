"""The translation-quality benchmark: ``python benches/quality.py [options]``.

What it does, in order (docs/QUALITY.md says why and how to label):

1. **Corpus**: a fixed English corpus from the real material of ``scripts/fetch_fixtures.sh``:
   every entry of Ambrose Bierce's *The Devil's Dictionary* (general prose, public domain) and
   as many words again of the Python documentation's reST sources (technical text: prose,
   code, identifiers, URLs), paragraphs taken in a fixed pseudo-random order.
2. **Vocabulary**: FreeDict eng-{deu,fra,spa,ita,por,nld,rus,jpn} compiled for Mistral's Tekken
   with the options given after ``--`` (none: the defaults), one vocabulary for all eight.
3. **Substitutions**: text mode with Tekken's boundaries, ratio 0.3, seed 0, each language
   alone; every substitution kept with its context.
4. **Sample**: per language, 150 substitutions drawn at random with a fixed seed (never
   re-drawn); each is looked up in ``benches/quality_labels.tsv`` by (language, source,
   translation, context). Unlabelled ones are written to ``OUT/to_label.tsv`` to be labelled
   and appended to the labels file.
5. **Table**: per language, the labelled shares (right sense in context, wrong sense, bad)
   and whole-corpus automatic measures; also written to ``OUT/quality.json``.

Run it with another checkout's package on ``PYTHONPATH`` to measure that version: the corpus,
the sample seed and the measures are this file's.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.resources
import json
import os
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "benches" / "quality_labels.tsv"
FUNCTION_WORDS = REPO / "link_fast" / "data" / "function_words" / "en.txt"
LANGUAGES = {"de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "ru": "rus", "ja": "jpn"}
SAMPLE_SIZE = 150
RATIO = 0.3
SEED = 0
STREAM_KEY = "quality"
CONTEXT_WORDS = 8
LABEL_COLUMNS = ("lang", "source", "translation", "context", "label", "note")
# right: the translation means what the English word means here; wrong: a real translation of
# the word, in another sense; bad:<class>: not a translation of this word at all, or broken.
BAD_CLASSES = (
    "not_translation",
    "homograph",
    "notation",
    "odd_chars",
    "glued",
    "truncated",
    "definition",
    "identifier",
    "other",
)
# a word glued to one of these and another word character is part of code, a URL or a path
_GLUE = "_./:=(@\\"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SCRIPTS = {
    "ru": ("CYRILLIC",),
    "ja": ("CJK", "HIRAGANA", "KATAKANA"),
}


# ---------------------------------------------------------------------------------------------
# 1. Corpus


def _b64(text: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for ch in text:
        value = value * 64 + alphabet.index(ch)
    return value


def devil_documents(fixtures: Path) -> list[str]:
    """Every entry of The Devil's Dictionary, its wrapped lines joined into paragraphs."""
    root = fixtures / "text" / "devil"
    data = gzip.open(root / "devil.dict.dz").read()
    documents = []
    for line in (root / "devil.index").read_text(encoding="utf-8").splitlines():
        head, offset, length = line.split("\t")
        if head.startswith("00"):
            continue
        entry = data[_b64(offset) : _b64(offset) + _b64(length)].decode("utf-8")
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", entry) if p.strip()]
        documents.append("\n\n".join(paragraphs))
    return documents


_NOT_PROSE = re.compile(r"^(?:[ \t]|>>>|\.\. |[=\-~^*+#]{4,}$)", re.MULTILINE)


def pydoc_documents(fixtures: Path, words: int) -> list[str]:
    """Text paragraphs of the Python documentation (no code block, directive or table: text
    with inline code and references, as technical writing has) in a fixed pseudo-random
    order, up to ``words``."""
    root = fixtures / "text" / "pydoc"
    paragraphs = []
    for path in sorted(root.rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        for number, paragraph in enumerate(re.split(r"\n[ \t]*\n", text)):
            paragraph = paragraph.strip("\n")
            if len(paragraph) >= 80 and not _NOT_PROSE.search(paragraph):
                order = hashlib.blake2b(f"{path.relative_to(root)}:{number}".encode(), digest_size=8).digest()
                paragraphs.append((order, paragraph))
    paragraphs.sort()
    documents, total = [], 0
    for _, paragraph in paragraphs:
        if total >= words:
            break
        documents.append(paragraph)
        total += len(_WORD.findall(paragraph))
    return documents


def build_corpus(fixtures: Path) -> list[tuple[str, str]]:
    """(genre, text) documents: the whole Devil's Dictionary, then as many words of pydoc."""
    prose = devil_documents(fixtures)
    words = sum(len(_WORD.findall(text)) for text in prose)
    return [("prose", text) for text in prose] + [("technical", text) for text in pydoc_documents(fixtures, words)]


# ---------------------------------------------------------------------------------------------
# 2-3. Vocabulary and substitutions


def tekken_path() -> Path:
    return Path(str(importlib.resources.files("mistral_common") / "data" / "tekken_240911.json"))


def compile_vocab(fixtures: Path, out: Path, options: list[str]) -> tuple[Path, float]:
    vocab = out / "quality.lfv"
    env = dict(os.environ, LINK_FAST_FREEDICT_DIR=str(fixtures / "freedict"))
    command = [sys.executable, "-m", "link_fast.cli", "compile", "--tokenizer", str(tekken_path()), "-o", str(vocab)]
    for lang, code in LANGUAGES.items():
        command += ["--dict", f"{lang}=freedict:{code}"]
    started = time.perf_counter()
    subprocess.run(command + options, check=True, env=env)
    return vocab, time.perf_counter() - started


def substitutions(vocab_path: Path, corpus: list[tuple[str, str]], lang: str) -> tuple[list[dict], int]:
    """Every substitution text mode makes in ``corpus`` with ``lang`` alone, with its place in
    the input; and the number of candidates."""
    import link_fast
    from link_fast.text.substituter import TextSubstituter
    from link_fast.tokenizer import load_tokenizer

    vocab = link_fast.Vocab.load(vocab_path)
    tokenizer = load_tokenizer(str(tekken_path()))
    sub = TextSubstituter(
        vocab, tokenizer=tokenizer, ratio=RATIO, seed=SEED, stream_key=STREAM_KEY, languages={lang: 1}
    )
    found, candidates = [], 0
    for doc, (genre, text) in enumerate(corpus):
        result = sub.apply(text, doc)
        candidates += len(sub.matches(text))
        shift = 0
        for s in result.substitutions:
            start = s.start - shift
            end = start + len(s.source)
            shift += len(s.translation) - len(s.source)
            found.append(
                {
                    "doc": doc,
                    "genre": genre,
                    "start": start,
                    "end": end,
                    "source": text[start:end],
                    "translation": s.translation,
                }
            )
    return found, candidates


def context(text: str, start: int, end: int) -> str:
    """The substituted word between ⟦ ⟧ with CONTEXT_WORDS words either side, on one line."""
    left = text[:start].split()[-CONTEXT_WORDS:]
    right = text[end:].split()[:CONTEXT_WORDS]
    # the word itself may be glued to its neighbours (no space): keep those characters
    head = re.search(r"\S*$", text[:start]).group()  # type: ignore[union-attr]
    tail = re.match(r"\S*", text[end:]).group()  # type: ignore[union-attr]
    if head:
        left = left[:-1]
    if tail:
        right = right[1:]
    middle = f"{head}⟦{text[start:end]}⟧{tail}"
    return " ".join([*left, middle, *right])


# ---------------------------------------------------------------------------------------------
# 4. Sample and labels


def read_labels() -> dict[tuple[str, str, str, str], tuple[str, str]]:
    labels = {}
    if LABELS.exists():
        lines = LABELS.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[1:], 2):
            fields = line.split("\t")
            if len(fields) != len(LABEL_COLUMNS):
                raise SystemExit(f"{LABELS}:{number}: {len(fields)} fields, {len(LABEL_COLUMNS)} expected")
            labels[tuple(fields[:4])] = (fields[4], fields[5])
    return labels


def write_tsv(path: Path, rows: list[tuple[str, ...]]) -> None:
    """A tab-separated table with LABEL_COLUMNS' header; fields hold no tab or line break."""
    lines = ["\t".join(LABEL_COLUMNS)]
    lines += ["\t".join(" ".join(field.split()) for field in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_label(label: str) -> None:
    if label in ("right", "wrong"):
        return
    if label.startswith("bad:") and label[4:] in BAD_CLASSES:
        return
    raise SystemExit(f"{LABELS}: unknown label {label!r} (right, wrong, bad:CLASS with CLASS in {BAD_CLASSES})")


def draw_sample(found: list[dict], lang: str, round_name: str = "") -> list[dict]:
    """SAMPLE_SIZE substitutions at random, with a seed fixed per language (and per held-out
    round): never re-drawn."""
    rng = random.Random(f"link-fast quality sample {lang}{round_name}")
    if len(found) <= SAMPLE_SIZE:
        return list(found)
    return [found[i] for i in sorted(rng.sample(range(len(found)), SAMPLE_SIZE))]


# ---------------------------------------------------------------------------------------------
# 5. Automatic measures


def function_words() -> frozenset[str]:
    words = set()
    for line in FUNCTION_WORDS.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(word.casefold())
    return frozenset(words)


class Measures:
    """Whole-corpus measures of one language's substitutions, from wordfreq and the text."""

    def __init__(self, lang: str):
        import wordfreq

        self.lang = lang
        self.table = wordfreq.get_frequency_dict(lang)
        self.wordfreq = wordfreq

    def frequency(self, word: str) -> float:
        found = self.table.get(word.casefold())
        if found is not None or self.lang == "ja":
            return found or 0.0
        return self.wordfreq.word_frequency(word, self.lang)

    def odd_characters(self, translation: str) -> bool:
        """Characters a writer of the language does not type: NFKC compatibility forms
        (ligatures), U+2010/U+2011 hyphens, combining accents (stress marks) in Russian, or a
        letter outside the language's script."""
        if unicodedata.normalize("NFKC", translation) != translation:
            return True
        if "\u2010" in translation or "\u2011" in translation:
            return True
        decomposed = unicodedata.normalize("NFD", translation)
        if self.lang == "ru" and any(ch in decomposed for ch in "\u0300\u0301"):
            return True
        scripts = _SCRIPTS.get(self.lang, ("LATIN",))
        for ch in translation:
            if ch.isalpha() and not any(unicodedata.name(ch, "").startswith(s) for s in scripts):
                if self.lang == "ja" and unicodedata.name(ch, "").startswith(("FULLWIDTH", "HALFWIDTH")):
                    continue
                return True
        return False

    @staticmethod
    def notation(translation: str) -> bool:
        """Dictionary notation: slash alternatives, affix or combining forms, clitics, ellipses."""
        return (
            "/" in translation
            or translation[:1] in "-‐'’"
            or translation[-1:] in "-‐'’"
            or any(ch in translation for ch in "…~|")
        )

    def unknown(self, translation: str) -> bool:
        """No word of the translation is known to wordfreq in the language (Japanese: the
        whole translation, since splitting it would need MeCab)."""
        if self.lang == "ja":
            return self.table.get(translation) is None
        words = self.wordfreq.tokenize(translation, self.lang)
        return not any(self.frequency(w) > 0 for w in words)

    def glued(self, source: str, translation: str) -> bool:
        """Words run together: a lower-to-upper case step inside one word (``LaHaya``), or an
        unknown word that two known words make (``porlaizquierda``), for a source of several
        words or a translation no word list knows."""
        if self.lang == "ja" or " " in translation:
            return False
        if re.search(r"[a-zà-ÿ][A-ZÀ-Þ]", translation):
            return True
        if self.frequency(translation) > 0:
            return False
        word = translation.casefold()
        for cut in range(2, len(word) - 1):
            if (
                self.wordfreq.zipf_frequency(word[:cut], self.lang) >= 3.5
                and self.wordfreq.zipf_frequency(word[cut:], self.lang) >= 3.5
            ):
                return True
        return False


def in_identifier(text: str, start: int, end: int) -> bool:
    """The word is glued, on either side, to one of ``_ . / : = ( @ \\`` and another word
    character: ``lwn.net``, ``foo_bar``, ``f(x)``."""

    def word_char(ch: str) -> bool:
        return ch.isalnum() or unicodedata.category(ch).startswith("M")

    after = text[end : end + 2]
    before = text[max(0, start - 2) : start]
    if len(after) == 2 and after[0] in _GLUE and word_char(after[1]):
        return True
    return len(before) == 2 and before[1] in _GLUE and before[1] != "(" and word_char(before[0])


def pair_shares(lang: str, found: list[dict]) -> list[tuple]:
    """(lang, source, translation, count, share, cumulative share) of every pair made, most
    frequent first; source and translation casefolded (the case forms of one pair together)."""
    pairs = Counter((s["source"].casefold(), s["translation"].casefold()) for s in found)
    rows, total, running = [], len(found) or 1, 0
    for (source, translation), count in pairs.most_common():
        running += count
        rows.append((lang, source, translation, count, f"{count / total:.4f}", f"{running / total:.4f}"))
    return rows


def measure(lang: str, found: list[dict], corpus: list[tuple[str, str]], candidates: int, words: int) -> dict:
    m = Measures(lang)
    fw = function_words()
    counts: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for s in found:
        t, source = s["translation"], s["source"]
        text = corpus[s["doc"]][1]
        pairs[(source.casefold(), t.casefold())] += 1
        counts["odd_chars"] += m.odd_characters(t)
        counts["notation"] += m.notation(t)
        counts["glued"] += m.glued(source, t)
        counts["unknown"] += m.unknown(t)
        counts["in_identifier"] += in_identifier(text, s["start"], s["end"])
        counts["function_word_source"] += source.casefold() in fw
    n = len(found) or 1
    top = sum(c for _, c in pairs.most_common(10))
    return {
        "substitutions": len(found),
        "candidates": candidates,
        "per_1000_words": 1000 * len(found) / words,
        "distinct_pairs": len(pairs),
        "top10_pairs_share": top / n,
        **{name: counts[name] / n for name in ("odd_chars", "notation", "glued", "unknown", "in_identifier")},
        "function_word_source": counts["function_word_source"] / n,
    }


# ---------------------------------------------------------------------------------------------
# The run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get("LINK_FAST_FIXTURES", REPO / ".fixtures")))
    parser.add_argument("--out", type=Path, default=None, help="working folder (default FIXTURES/quality/NAME)")
    parser.add_argument("--name", default="current", help="a name for this configuration in the table and folder")
    parser.add_argument("--vocab", type=Path, default=None, help="a vocabulary compiled already (skips compiling)")
    parser.add_argument(
        "--held-out",
        default="",
        metavar="ROUND",
        help="draw the sample of a held-out round of this name instead of the benchmark's (docs/QUALITY.md)",
    )
    parser.add_argument("compile_options", nargs="*", help="after --: options for link-fast compile")
    args = parser.parse_args(argv)
    fixtures = args.fixtures.resolve()
    out = (args.out or fixtures / "quality" / args.name).resolve()
    out.mkdir(parents=True, exist_ok=True)

    corpus = build_corpus(fixtures)
    words = sum(len(_WORD.findall(text)) for _, text in corpus)
    print(f"corpus: {len(corpus)} documents, {words:,} words", file=sys.stderr)
    vocab, compile_s = (args.vocab, 0.0) if args.vocab else compile_vocab(fixtures, out, args.compile_options)
    labels = read_labels()
    results, to_label, pair_rows = {}, [], []
    for lang in LANGUAGES:
        found, candidates = substitutions(vocab, corpus, lang)
        row = measure(lang, found, corpus, candidates, words)
        pair_rows += pair_shares(lang, found)
        sample = draw_sample(found, lang, args.held_out)
        tally: Counter[str] = Counter()
        for s in sample:
            key = (lang, s["source"], s["translation"], context(corpus[s["doc"]][1], s["start"], s["end"]))
            key = tuple(" ".join(field.split()) for field in key)
            if key in labels:
                label = labels[key][0]
                check_label(label)
                tally[label.split(":")[0]] += 1
                if label.startswith("bad:"):
                    tally[label] += 1
            else:
                tally["unlabelled"] += 1
                to_label.append((*key, "", ""))
        labelled = len(sample) - tally["unlabelled"]
        row.update(
            sample=len(sample),
            labelled=labelled,
            **{k: tally[k] / labelled if labelled else None for k in ("right", "wrong", "bad")},
            bad_classes={k[4:]: v for k, v in tally.items() if k.startswith("bad:")},
        )
        results[lang] = row
        print(f"{lang}: {len(found):,} substitutions, {labelled}/{len(sample)} of the sample labelled", file=sys.stderr)
    write_tsv(out / "to_label.tsv", list(dict.fromkeys(to_label)))
    lines = ["lang\tsource\ttranslation\tcount\tshare\tcumulative"] + ["\t".join(map(str, r)) for r in pair_rows]
    (out / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "name": args.name,
        "words": words,
        "documents": len(corpus),
        "compile_s": compile_s,
        "languages": results,
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    print_table(summary)
    if to_label:
        print(f"\n{len(to_label)} sampled substitutions not labelled yet: {out / 'to_label.tsv'}", file=sys.stderr)
    return 0


def print_table(summary: dict) -> None:
    langs = list(summary["languages"])
    rows = [
        ("right sense in context", "right", "%"),
        ("wrong sense", "wrong", "%"),
        ("bad", "bad", "%"),
        ("labelled / sample", None, "n"),
        ("substitutions per 1,000 words", "per_1000_words", "f"),
        ("function-word sources", "function_word_source", "%"),
        ("odd characters", "odd_chars", "%"),
        ("notation", "notation", "%"),
        ("glued words", "glued", "%"),
        ("unknown to the language", "unknown", "%"),
        ("inside identifiers", "in_identifier", "%"),
        ("top 10 pairs' share", "top10_pairs_share", "%"),
    ]
    print(f"\n{summary['name']}: {summary['documents']} documents, {summary['words']:,} words, ratio {RATIO}\n")
    print("| | " + " | ".join(langs) + " |")
    print("|---|" + "--:|" * len(langs))
    for title, key, kind in rows:
        cells = []
        for lang in langs:
            r = summary["languages"][lang]
            if kind == "n":
                cells.append(f"{r['labelled']}/{r['sample']}")
            elif r.get(key) is None:
                cells.append("–")
            elif kind == "%":
                cells.append(f"{100 * r[key]:.0f}%" if key in ("right", "wrong", "bad") else f"{100 * r[key]:.1f}%")
            else:
                cells.append(f"{r[key]:.1f}")
        print(f"| {title} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
