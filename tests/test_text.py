"""Text mode (link_fast/text/): draws, a regex-based differential reference, agreement with
token mode on real data, files (JSONL, zstd, gzip, .txt), errors and the CLI."""

from __future__ import annotations

import errno
import gzip
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import reference
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from link_fast import Stats, Substituter
from link_fast.cli import main as cli_main
from link_fast.draws import WEIGHT_SCALE, below, draw, pick
from link_fast.errors import InputError, VocabError
from link_fast.text import TextError, TextSubstituter, substitute_files
from link_fast.vocab import Entry, Vocab

U64 = st.integers(0, (1 << 64) - 1)


# -- the draws ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(U64, st.integers(1, 5), U64, U64, st.integers(1, (1 << 32) - 1))
def test_draws_equal_the_reference(base, domain, doc, cand, n):
    h = draw(base, domain, doc, cand)
    assert h == reference.draw(base, domain, doc, cand)
    assert below(h, n) == reference.below(h, n)


@settings(max_examples=200, deadline=None)
@given(U64, st.lists(st.integers(1, WEIGHT_SCALE), min_size=1, max_size=5))
def test_pick_equals_the_reference(h, weights):
    pairs = list(enumerate(weights))
    assert pick(h, pairs) == reference.pick(h, pairs)


# -- a small synthetic vocabulary ----------------------------------------------------------------

WORDS = ["cat", "dog", "ice", "ice cream", "cream", "über", "naïve", "café", "ab", "x y z", "Cat", "CAT", "e\u0301t"]
# (source, {lang: [translations]}); forms " w" and "w" both compiled unless listed in MISSING
TRANSLATIONS = {
    "cat": {0: ["Katze"], 1: ["chat", "minou"]},
    "Cat": {0: ["Katze"], 1: ["Chat", "Minou"]},
    "CAT": {0: ["KATZE"]},
    "dog": {0: ["Hund", "Köter", "Wauwau"], 1: ["chien"]},
    "ice": {1: ["glace"]},
    "ice cream": {0: ["Eiscreme"], 1: ["crème glacée"]},
    "cream": {0: ["Sahne"]},
    "über": {1: ["sur"]},
    "naïve": {0: ["naiv"], 1: ["naïf"]},
    "café": {0: ["Kaffee"]},
    "ab": {0: ["von"]},
    "x y z": {1: ["xyz"]},
    "e\u0301t": {0: ["et"]},
}
MISSING = {" ab", "café"}  # forms the "compiler" dropped: text mode falls back to the other form


def synthetic_vocab() -> Vocab:
    entries, token = [], 10
    for source, per_lang in TRANSLATIONS.items():
        for spaced in (True, False):
            text = (" " if spaced else "") + source
            if text in MISSING:
                continue
            translations = {}
            for lang, words in per_lang.items():
                translations[lang] = [((1000 + i,), (" " if spaced else "") + w) for i, w in enumerate(words)]
            entries.append(Entry((token,), text, translations))
            token += 1
    flags = np.zeros(2000, dtype=np.uint8)
    return Vocab.from_entries(flags, entries, ["de", "fr"])


WORD_CLASS = (
    "".join(re.escape(chr(c)) for c in range(0x2FF) if unicodedata.category(chr(c))[0] in "LNM") + "\u0300-\u036f"
)
JOINER_CLASS = re.escape("_./:=(@\\'\u2019")  # DESIGN §3's joiners


class RegexReference:
    """Text mode restated with a regex alternation (longest first) and tests/reference.py's draws."""

    def __init__(
        self, languages, *, ratio, portion, seed, weights, ratio_basis="candidates", lang_scope="word", stream_key=""
    ):
        self.languages = languages
        self.forms: dict[str, dict[bool, dict[int, list[str]]]] = {}
        for source, per_lang in TRANSLATIONS.items():
            for spaced in (True, False):
                if ((" " if spaced else "") + source) in MISSING:
                    continue
                options = {l: list(ws) for l, ws in per_lang.items() if weights.get(l)}
                if options:
                    self.forms.setdefault(source, {})[spaced] = options
        alternation = "|".join(re.escape(w) for w in sorted(self.forms, key=len, reverse=True))
        # no word character on either side, nor joiners and then one on the right, nor joiners or
        # none and then a backtick (DESIGN §3)
        self.pattern = re.compile(
            f"(?<![{WORD_CLASS}])(?:{alternation})(?![{WORD_CLASS}])(?![{JOINER_CLASS}]+[{WORD_CLASS}])"
            f"(?![{JOINER_CLASS}]*`)"
        )
        self.joined_left = re.compile(f"(?:[{WORD_CLASS}][{JOINER_CLASS}]+|`[{JOINER_CLASS}]*)\\Z")
        self.words = re.compile(f"[{WORD_CLASS}]+")
        self.weights, self.ratio, self.portion = weights, ratio, portion
        self.ratio_basis, self.lang_scope = ratio_basis, lang_scope
        self.base = reference.stream_base(seed, stream_key)  # the oracle's, not link_fast's

    def matches(self, text):
        """Leftmost-longest: the regex's leftmost match, unless a word and joiners, or a backtick
        and joiners, end the text before it (the lookbehind that would say so has no fixed width):
        then none starts there."""
        found, position = [], 0
        while match := self.pattern.search(text, position):
            if self.joined_left.search(text, 0, match.start()):
                position = match.start() + 1
            else:
                found.append(match)
                position = match.end()
        return found

    def apply(self, text, doc):
        matches = self.matches(text)
        words = len(self.words.findall(text))
        out, pos, subs = [], 0, []
        if not reference.chance(reference.draw(self.base, 1, doc, 0), self.portion):
            return text, subs, len(matches)
        p = self.ratio
        if self.ratio_basis == "words" and matches:
            p = min(1.0, self.ratio * words / len(matches))
        doc_lang = None
        if self.lang_scope == "document":
            doc_lang = reference.pick(reference.draw(self.base, 2, doc, 0), sorted(self.weights.items()))
        for m, match in enumerate(matches):
            if not reference.chance(reference.draw(self.base, 3, doc, m), p):
                continue
            forms = self.forms[match.group()]
            spaced = match.start() > 0 and text[match.start() - 1] == " "
            options = forms.get(spaced) or forms.get(not spaced)
            if doc_lang is not None:
                if doc_lang not in options:
                    continue
                lang = doc_lang
            else:
                lang = reference.pick(
                    reference.draw(self.base, 4, doc, m),
                    [(l, w) for l, w in sorted(self.weights.items()) if l in options],
                )
            chosen = options[lang][reference.below(reference.draw(self.base, 5, doc, m), len(options[lang]))]
            out.append(text[pos : match.start()])
            out.append(chosen)
            subs.append((match.group(), chosen, self.languages[lang]))
            pos = match.end()
        out.append(text[pos:])
        return "".join(out), subs, len(matches)


PIECES = WORDS + [" ", " ", " ", "  ", "\n", ",", ".", "(", "-", "s", "x", "9", "\u0301", "ß", "_", "cats", "dogs"]
PIECES += [".", "_", "/", ":", "=", "@", "\\", "://", "._"]  # joiners (DESIGN §3), more often and in runs
PIECES += ["'", "\u2019", "'s", "n't", "`", "``", ":`", "`_"]  # apostrophes and backticks (DESIGN §3)


@pytest.fixture(scope="module")
def vocab():
    return synthetic_vocab()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.integers(0, 1000),
    st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    st.sampled_from([0.5, 1.0]),
    st.sampled_from(["candidates", "words"]),
    st.sampled_from(["word", "document"]),
    st.sampled_from([{"de": 1.0, "fr": 1.0}, {"de": 0.7, "fr": 0.3}, {"fr": 1.0}, {"de": 1.0}]),
    st.integers(0, 3),
)
def test_text_mode_equals_the_regex_reference(vocab, text, doc, ratio, portion, basis, scope, languages, seed):
    sub = TextSubstituter(
        vocab,
        ratio=ratio,
        portion=portion,
        seed=seed,
        languages=languages,
        ratio_basis=basis,
        lang_scope=scope,
        stream_key="k",
    )
    weights = reference.integer_weights(list(vocab.languages), languages)
    ref = RegexReference(
        vocab.languages,
        ratio=ratio,
        portion=portion,
        seed=seed,
        weights=weights,
        ratio_basis=basis,
        lang_scope=scope,
        stream_key="k",
    )
    result = sub.apply(text, doc)
    expected, subs, candidates = ref.apply(text, doc)
    assert result.text == expected
    assert [(s.source, s.translation, s.language) for s in result.substitutions] == subs
    assert result.stats.candidates == candidates
    for s in result.substitutions:  # offsets are in the output text
        assert result.text[s.start : s.end] == s.translation


def test_examples(vocab):
    sub = TextSubstituter(vocab, ratio=1.0, languages={"de": 1.0})
    assert sub.apply("The cat and the dog.").text in {f"The Katze and the {d}." for d in ("Hund", "Köter", "Wauwau")}
    assert sub.apply("concatenate cats CAT").text == "concatenate cats KATZE"
    assert sub.apply("ice cream, icecream").text == "Eiscreme, icecream"
    assert sub.apply("cafés café").text == "cafés Kaffee"  # only " café" was compiled: used after '(' too
    assert sub.apply("ab (ab) ab").text == "von (von) von"  # only "ab" was compiled
    assert sub.apply("ab(ab) cat.dog, cat.").text == "ab(ab) cat.dog, Katze."  # joined (DESIGN §3)
    assert sub.apply("e\u0301t e\u0301t\u0301").text == "et e\u0301t\u0301"  # a mark continues the word
    r = sub.apply("")
    assert r.text == "" and r.stats.documents == 1 and r.stats.candidates == 0
    results, stats = sub.apply_batch(["cat", "dog dog", "no"], first_doc=5)
    assert [len(r.substitutions) for r in results] == [1, 2, 0]
    assert stats.documents == 3 and stats.candidates == 3 and stats.words == 4
    assert stats.total_substitutions == 3 and stats.substitutions == {"de": 3, "fr": 0}


def test_batches_do_not_change_the_output(vocab):
    sub = TextSubstituter(vocab, ratio=0.5, seed=3, stream_key="s")
    rng = random.Random(0)
    docs = ["".join(rng.choice(PIECES) for _ in range(30)) for _ in range(50)]
    whole, stats = sub.apply_batch(docs)
    parts = sub.apply_batch(docs[:17])[0] + sub.apply_batch(docs[17:], first_doc=17)[0]
    assert [r.text for r in whole] == [r.text for r in parts]
    assert [sub.apply(d, i).text for i, d in enumerate(docs)] == [r.text for r in whole]


def test_bad_options_are_refused(vocab):
    for kwargs in (
        {"ratio": 1.5},
        {"portion": -1},
        {"ratio_basis": "x"},
        {"lang_scope": "x"},
        {"seed": -1},
        {"languages": {"xx": 1.0}},
        {"languages": {"de": 0.0}},
    ):
        with pytest.raises(InputError):
            TextSubstituter(vocab, **kwargs)
    sub = TextSubstituter(vocab)
    with pytest.raises(InputError):
        sub.apply(b"bytes")
    with pytest.raises(InputError):
        sub.apply("text", -1)


# -- real data: agreement with token mode ----------------------------------------------------------


def _categorize(
    tok, text_out: str, want: list[int], got: list[int], text_candidates: int, token_candidates: int
) -> str:
    """Why the re-tokenized text-mode output differs from token mode's output for one document."""
    if tok.decode(want) == text_out:
        return "same text, tokenized differently (translation not context-free in this context)"
    k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
    context = tok.decode(want[max(0, k - 2) : k])
    kind = (
        "text mode found more candidates"
        if text_candidates > token_candidates
        else "token mode found more candidates"
        if text_candidates < token_candidates
        else "same candidate count"
    )
    return f"{kind}; first difference after {context[-12:]!r}"


def test_agreement_with_token_mode(tekken_vocab, tekken, pydoc_documents, capsys):
    options = dict(ratio=1.0, portion=1.0, seed=7, stream_key="pydoc")
    text_sub = TextSubstituter(tekken_vocab, **options, tokenizer=tekken)
    token_sub = Substituter(tekken_vocab, **options)
    ids = tekken.encode_batch(pydoc_documents)
    tokens = np.array([t for doc in ids for t in doc], dtype=np.uint32)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(doc) for doc in ids])
    token_res = token_sub.apply(tokens, offsets)
    text_res = [text_sub.apply(doc, d) for d, doc in enumerate(pydoc_documents)]  # per-document stats
    text_stats = sum((r.stats for r in text_res), Stats.zero(tekken_vocab.languages, unit="characters"))
    agree, categories, examples = 0, Counter(), {}
    for d, res in enumerate(text_res):
        want = token_res.tokens[token_res.offsets[d] : token_res.offsets[d + 1]].tolist()
        got = tekken.encode(res.text)
        if got == want:
            agree += 1
            continue
        single = token_sub.apply(np.asarray(ids[d], dtype=np.uint32), np.array([0, len(ids[d])]), first_doc=d)
        category = _categorize(tekken, res.text, want, got, res.stats.candidates, single.stats.candidates)
        categories[category] += 1
        examples.setdefault(category, d)
    share = agree / len(pydoc_documents)
    with capsys.disabled():
        print(
            f"\ntext mode vs token mode (Tekken, pydoc, ratio 1): {agree}/{len(pydoc_documents)} documents "
            f"identical after re-tokenizing ({share:.1%}); candidates {text_stats.candidates:,} (text) vs "
            f"{token_res.stats.candidates:,} (tokens)"
        )
        for category, n in categories.most_common():
            print(f"  {n:4d}  {category}")
    assert share >= 0.95


# -- files ---------------------------------------------------------------------------------------


def _jsonl(records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def _records(n=60):
    rng = random.Random(1)
    return [{"id": i, "text": "".join(rng.choice(PIECES) for _ in range(25)), "meta": {"x": [i]}} for i in range(n)]


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_round_trip(vocab, tmp_path, suffix):
    records = _records()
    raw = _jsonl(records)
    src = tmp_path / f"corpus{suffix}"
    src.write_bytes(
        zstandard.ZstdCompressor().compress(raw)
        if suffix.endswith(".zst")
        else gzip.compress(raw)
        if suffix.endswith(".gz")
        else raw
    )
    out = tmp_path / f"out{suffix}"
    result = substitute_files(vocab, [src], out, ratio=0.5, seed=2, substitutions_field="link")
    lines = [json.loads(l) for l in _read(out).splitlines()]
    sub = TextSubstituter(vocab, ratio=0.5, seed=2, stream_key="corpus")
    assert len(lines) == len(records)
    for i, (record, line) in enumerate(zip(records, lines)):
        expected = sub.apply(record["text"], i)
        assert line["text"] == expected.text
        assert line["id"] == record["id"] and line["meta"] == record["meta"]
        assert line["link"] == [s.to_dict() for s in expected.substitutions]
    stats = result[str(out)]["stats"]
    assert stats["documents"] == len(records) and stats["total_substitutions"] > 0
    assert json.loads(Path(f"{out}.link.json").read_text())["stats"] == stats


C0_CONTROLS = "".join(map(chr, range(0x20)))  # U+0000..U+001F: what a JSON string must escape


@pytest.mark.parametrize("wide", ["", "é", "Ω", "😀"])  # the text's str kind: ASCII, Latin-1, UCS-2, UCS-4
def test_every_control_character_comes_out_as_json_dumps_writes_it(vocab, tmp_path, wide):
    """A .jsonl text holding every C0 control (\\b, \\f, \\r and U+001F among them), around and
    between substitutions: the line comes out valid JSON, byte for byte the line
    ``json.dumps(..., ensure_ascii=False)`` writes for the rewritten record."""
    texts = [
        f"{wide}cat{C0_CONTROLS}dog",
        "".join(f"{c}cat{c}" for c in C0_CONTROLS) + wide,
        f"{C0_CONTROLS}{wide}{C0_CONTROLS[::-1]} the dog\r\n",
    ]
    records = [{"id": i, "text": text, "meta": C0_CONTROLS} for i, text in enumerate(texts)]
    src = tmp_path / "controls.jsonl"
    src.write_bytes(_jsonl(records))
    out = tmp_path / "out.jsonl"
    substitute_files(vocab, [src], out, ratio=1.0, languages={"de": 1.0})
    sub = TextSubstituter(vocab, ratio=1.0, languages={"de": 1.0}, stream_key="controls")
    lines = out.read_bytes().split(b"\n")
    assert lines.pop() == b"" and len(lines) == len(records)
    for i, (record, line) in enumerate(zip(records, lines)):
        rewritten = sub.apply(record["text"], i)
        assert rewritten.substitutions  # the text is written by the substituter, not copied
        assert line.decode("utf-8") == json.dumps(dict(record, text=rewritten.text), ensure_ascii=False)
        assert json.loads(line)["text"] == rewritten.text


def test_workers_give_the_same_bytes(vocab, tmp_path):
    src = tmp_path / "c.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(_jsonl(_records(500))))
    vocab_path = tmp_path / "v.lfv"
    vocab.save(vocab_path)
    substitute_files(vocab_path, [src], tmp_path / "one.jsonl.zst", ratio=0.4, lines_per_chunk=7)
    substitute_files(vocab_path, [src], tmp_path / "two.jsonl.zst", ratio=0.4, workers=2, lines_per_chunk=50)
    assert _read(tmp_path / "one.jsonl.zst") == _read(tmp_path / "two.jsonl.zst")


def test_txt_one_document_per_line(vocab, tmp_path):
    src = tmp_path / "plain.txt"
    src.write_text("the cat\n\ndog and CAT\n", encoding="utf-8")
    substitute_files(vocab, [src], tmp_path / "out", ratio=1.0, languages={"de": 1.0})
    out = (tmp_path / "out" / "plain.txt").read_text(encoding="utf-8").split("\n")
    assert out[0] == "the Katze" and out[1] == "" and out[2].endswith("and KATZE") and out[3] == ""


def test_truncated_zstd_is_an_error_and_leaves_no_output(vocab, tmp_path):
    data = zstandard.ZstdCompressor().compress(_jsonl(_records(300)))
    src = tmp_path / "t.jsonl.zst"
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    with pytest.raises(TextError, match="truncated zstd"):
        substitute_files(vocab, [src], out, ratio=0.5)
    assert not any(out.iterdir()) if out.exists() else True


def test_a_full_disk_at_the_record_leaves_the_earlier_output_and_record(vocab, tmp_path, monkeypatch):
    """The record is written last but complete before anything is replaced: when its write
    fails (here its fsync, as on a full disk), the folder still holds the earlier run's output
    and record, and no temporary."""
    src = tmp_path / "c.jsonl"
    src.write_bytes(_jsonl(_records(40)))
    out = tmp_path / "out" / "c.jsonl"
    substitute_files(vocab, [src], out, ratio=0.0)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    fsync = os.fsync

    def full_disk(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rpartition("/")[2].startswith(".c.jsonl.link.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(TextError) as caught:
        substitute_files(vocab, [src], out, ratio=1.0)
    assert str(caught.value) == f"{out}.link.json: cannot write: No space left on device"
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_a_full_disk_at_the_output_names_it(vocab, tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("the cat and the dog\n" * 20_000, encoding="utf-8")  # 400 kB out, over the limit
    script = (
        "import resource, signal, sys; sys.path.insert(0, sys.argv[1]);"
        "from test_text import synthetic_vocab; from link_fast.text import substitute_files;"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16));"
        "substitute_files(synthetic_vocab(), [sys.argv[2]], sys.argv[3], ratio=0.5)"
    )
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent), str(src), str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == (
        f"link_fast.text.files.TextError: {out}: cannot write: File too large"
    ), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_a_vocabulary_rewritten_during_a_text_run_commits_nothing(vocab, tmp_path, monkeypatch):
    from test_runner import rewrite_translations_in_place

    import link_fast.text.run as run

    vocab_path = vocab.save(tmp_path / "v.lfv")
    src = tmp_path / "c.jsonl"
    src.write_bytes(_jsonl(_records(40)))
    rewrite_chunk, done = run.rewrite_chunk, []

    def rewriting(*args):
        if not done:
            rewrite_translations_in_place(vocab_path, 1000)
            done.append(True)
        return rewrite_chunk(*args)

    monkeypatch.setattr(run, "rewrite_chunk", rewriting)
    with pytest.raises(VocabError, match="v.lfv: changed on disk while in use"):
        substitute_files(vocab_path, [src], tmp_path / "out", ratio=1.0, lines_per_chunk=10)
    assert done and not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("kind", ["fifo", "directory", "missing"])
def test_an_input_that_is_no_regular_file_is_named_for_what_it_is(vocab, tmp_path, kind):
    src = tmp_path / "in.jsonl"
    if kind == "fifo":
        os.mkfifo(src)
    elif kind == "directory":
        src.mkdir()
    problem = {
        "fifo": "not a regular file (a pipe, socket or device)",
        "directory": "is a directory, not a text file",
        "missing": "no such file",
    }[kind]
    with pytest.raises(TextError) as caught:
        substitute_files(vocab, [src], tmp_path / "out", ratio=1.0)
    assert str(caught.value) == f"{src}: {problem}"


def test_empty_input(vocab, tmp_path):
    for name in ("e.jsonl", "e.jsonl.zst", "e.txt"):
        src = tmp_path / name
        src.write_bytes(zstandard.ZstdCompressor().compress(b"") if name.endswith(".zst") else b"")
        out = tmp_path / f"out-{name}"
        result = substitute_files(vocab, [src], out, ratio=0.5)
        assert _read(out) == b"" and result[str(out)]["stats"]["documents"] == 0


def test_bad_lines_fail_or_skip(vocab, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b'{"text": "cat"}\n{"text": "dog"\n{"other": 1}\n{"text": 3}\n\n{"text": "dog"}\n')
    out = tmp_path / "out.jsonl"
    with pytest.raises(TextError, match=r"bad.jsonl:2: malformed JSON"):
        substitute_files(vocab, [src], out, ratio=1.0)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    messages = []
    result = substitute_files(vocab, [src], out, ratio=1.0, on_error="skip", log=messages.append)
    record = result[str(out)]
    assert record["skipped_lines"] == 3 and [s["line"] for s in record["skipped"]] == [2, 3, 4]
    assert "no text field 'text'" in record["skipped"][1]["problem"]
    assert len(out.read_bytes().splitlines()) == 2 and record["stats"]["documents"] == 2
    assert any("bad.jsonl:3" in m for m in messages)


def test_cli(vocab, tmp_path, capsys):
    vocab_path = tmp_path / "v.lfv"
    vocab.save(vocab_path)
    src = tmp_path / "in.jsonl"
    src.write_bytes(_jsonl([{"text": "the cat"}, {"content": "x"}]))
    out = tmp_path / "o.jsonl"
    assert (
        cli_main(["text", "--vocab", str(vocab_path), "--ratio", "1", "--languages", "de", str(src), "-o", str(out)])
        == 2
    )
    assert "in.jsonl:2: no text field 'text'" in capsys.readouterr().err
    assert not out.exists()

    def run(*options: str, output) -> int:
        return cli_main(
            [
                "text",
                "--vocab",
                str(vocab_path),
                "--ratio",
                "1",
                "--languages",
                "de",
                *options,
                str(src),
                "-o",
                str(output),
            ]
        )

    assert run("--on-error", "skip", output=out) == 0
    assert json.loads(out.read_text())["text"] == "the Katze"
    assert "docs/s" in capsys.readouterr().err
    two = tmp_path / "two.jsonl"
    assert run("--on-error", "skip", "--workers", "2", output=two) == 0
    assert two.read_bytes() == out.read_bytes()


@pytest.mark.slow
def test_throughput_on_pydoc(tekken_vocab, pydoc_documents, tmp_path, capsys):
    import time

    src = tmp_path / "pydoc.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(_jsonl({"text": d} for d in pydoc_documents)))
    started = time.perf_counter()
    sub = TextSubstituter(tekken_vocab, ratio=0.3, stream_key="pydoc")  # the file's stream key
    built = time.perf_counter() - started
    started = time.perf_counter()
    records = substitute_files(tekken_vocab, [src], tmp_path / "out.jsonl.zst", ratio=0.3)
    seconds = time.perf_counter() - started  # substitute_files builds its own automaton: included
    size = sum(len(d.encode()) for d in pydoc_documents)
    started = time.perf_counter()
    results, stats = sub.apply_batch(pydoc_documents)
    pure = time.perf_counter() - started
    # what was timed did the work: the file run wrote what the in-memory run computed, and
    # about 30% of the candidates were replaced
    written = zstandard.ZstdDecompressor().decompressobj().decompress((tmp_path / "out.jsonl.zst").read_bytes())
    assert [json.loads(line)["text"] for line in written.decode().splitlines()] == [r.text for r in results]
    assert next(iter(records.values()))["stats"] == stats.to_dict()
    assert stats.documents == len(pydoc_documents) and stats.candidates > 1000
    assert 0.27 < stats.total_substitutions / stats.candidates < 0.33
    with capsys.disabled():
        print(
            f"\ntext mode on pydoc (Tekken de+fr vocabulary, {len(pydoc_documents)} docs, {size / 1e6:.2f} MB): "
            f"automaton built in {built:.1f} s; apply {len(pydoc_documents) / pure:,.0f} docs/s, "
            f"{size / pure / 1e6:.2f} MB/s; files (.jsonl.zst, 1 worker, building included) "
            f"{len(pydoc_documents) / seconds:,.0f} docs/s, "
            f"{size / seconds / 1e6:.2f} MB/s"
        )
