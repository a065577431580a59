"""The review loop's reports: `link-fast lookup` and `link-fast pairs` (link_fast/review.py).

The pairs' expected counts and shares are checked against a brute-force sum written from
docs/DESIGN.md §5 over the Python reference matcher's candidates, and against real draws."""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from link_fast.cli import main
from link_fast.draws import WEIGHT_SCALE
from link_fast.review import corpus_texts, count_pairs, lookup
from link_fast.sampling import Sampling
from link_fast.text import TextSubstituter, count_words
from link_fast.vocab import Entry, Vocab

# source form -> {language index: [(translation, weight)]}; each form is compiled spaced and bare
FORMS = {
    "the": {0: [("der", 3), ("die", 1)], 1: [("le", 1), ("la", 1)]},
    "The": {0: [("Der", 3), ("Die", 1)], 1: [("Le", 1), ("La", 1)]},
    "THE": {0: [("DER", 3), ("DIE", 1)], 1: [("LE", 1), ("LA", 1)]},
    "house": {0: [("Haus", 2), ("Gebäude", 1)], 1: [("maison", 1)]},
    "House": {0: [("Haus", 2), ("Gebäude", 1)], 1: [("Maison", 1)]},
    "ice": {1: [("glace", 1)]},
    "ice cream": {0: [("Eis", 1)], 1: [("crème glacée", 1)]},
    "Ice cream": {0: [("Eis", 1)], 1: [("Crème glacée", 1)]},
    "us": {0: [("uns", 1)]},
    "US": {0: [("USA", 1)]},
    "Easter": {0: [("Ostern", 1)]},
    "EASTER": {0: [("OSTERN", 1)]},
}
BARE_MISSING = {"ice cream"}  # a form the "compiler" dropped: only the spaced one exists
LANGUAGES = ["deu", "fr"]
DOCUMENTS = [
    "The house and the ice cream. THE HOUSE is where the ice is.",
    "US and us: Easter, EASTER. Ice cream for the house, the house, the house.",
    "",
    "Nothing here at all.",
    "the the the house ice",
]


def synthetic_vocab() -> Vocab:
    entries, token = [], 10
    for source, per_lang in FORMS.items():
        for lead in (" ", ""):
            if not lead and source in BARE_MISSING:
                continue
            translations = {
                lang: [((1000 + i,), lead + text, weight) for i, (text, weight) in enumerate(options)]
                for lang, options in per_lang.items()
            }
            entries.append(Entry((token,), lead + source, translations))
            token += 1
    return Vocab.from_entries(np.zeros(2000, dtype=np.uint8), entries, LANGUAGES)


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return synthetic_vocab().save(tmp_path_factory.mktemp("review") / "v.lfv")


@pytest.fixture(scope="module")
def vocab(vocab_path):
    return Vocab.load(vocab_path)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(DOCUMENTS)), encoding="utf-8")
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- lookup --------------------------------------------------------------------------------------


def test_lookup_prints_every_form_with_the_shares_of_each_language(capsys, vocab_path):
    code, out, _ = cli(capsys, "lookup", vocab_path, "the")
    assert code == 0
    assert out.splitlines() == [
        "the [spaced, bare]",
        "  deu  der 0.75  die 0.25",
        "  fr   le 0.50  la 0.50",
        "The [spaced, bare]",
        "  deu  Der 0.75  Die 0.25",
        "  fr   Le 0.50  La 0.50",
        "THE [spaced, bare]",
        "  deu  DER 0.75  DIE 0.25",
        "  fr   LE 0.50  LA 0.50",
    ]


def test_lookup_finds_phrases_forms_missing_a_spacing_and_filters_languages_by_code(capsys, vocab_path):
    code, out, _ = cli(capsys, "lookup", vocab_path, "ICE", "--lang", "de")  # de: the code of "deu"
    assert code == 0
    assert out.splitlines() == [
        "phrases with ICE: 1",
        "ice cream [spaced]",
        "  deu  Eis 1.00",
    ]
    code, out, _ = cli(capsys, "lookup", vocab_path, "Ice Cream", "--lang", "fr,deu", "--phrases", "0")
    assert code == 0
    assert out.splitlines() == [
        "ice cream [spaced]",
        "  deu  Eis 1.00",
        "  fr   crème glacée 1.00",
        "Ice cream [spaced, bare]",
        "  deu  Eis 1.00",
        "  fr   Crème glacée 1.00",
    ]


def test_lookup_of_a_missing_word_says_so_and_exits_1(capsys, vocab_path):
    code, out, _ = cli(capsys, "lookup", vocab_path, "dog")
    assert (code, out) == (1, f"dog: not in {vocab_path}\n")
    code, out, _ = cli(capsys, "lookup", vocab_path, "easter", "--lang", "fr")
    assert (code, out) == (1, f"easter: not in {vocab_path} in fr\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["the", "--lang", "es"], "'es' is not a language of the vocabulary (it has deu, fr)"),
        (["  "], "the word to look up is empty"),
        (["the", "--phrases", "-1"], "the number of phrases shown must be >= 0"),
    ],
)
def test_lookup_refuses_bad_requests_in_one_line(capsys, vocab_path, args, message):
    code, out, err = cli(capsys, "lookup", vocab_path, *args)
    assert code == 2 and not out
    assert err.count("\n") == 1 and message in err


def test_lookup_escapes_what_a_terminal_would_act_on(capsys, vocab_path):
    # a vocabulary's texts are refused with control characters when loaded; the word asked for is not
    code, out, _ = cli(capsys, "lookup", vocab_path, "x\x1b]0;pwned\x07")
    assert code == 1
    assert out == f"x\\u001b]0;pwned\\u0007: not in {vocab_path}\n"


def test_lookup_from_python(vocab):
    result = lookup(vocab, "house", ["fr"])
    assert [(f.text, f.spacings, f.translations) for f in result.forms] == [
        ("house", ("spaced", "bare"), [("fr", [("maison", 1.0)])]),
        ("House", ("spaced", "bare"), [("fr", [("Maison", 1.0)])]),
    ]


# -- pairs ---------------------------------------------------------------------------------------


def brute_force(vocab: Vocab, sampling: Sampling) -> tuple[dict, dict, int]:
    """Per (language, source, translation) as the vocabulary spells them, casefolded: the
    expected count and the summed P(language) x P(translation), over the Python reference
    matcher's candidates (docs/DESIGN.md §5); and the number of candidates."""
    reference = TextSubstituter(vocab, sampling, native=False)
    in_play = {lang: weight for lang, weight in (sampling.languages or dict.fromkeys(LANGUAGES, 1.0)).items() if weight}
    top = max(in_play.values())
    integer = {lang: max(1, round(w / top * WEIGHT_SCALE)) for lang, w in in_play.items()}
    counts, draws, candidates = defaultdict(float), defaultdict(float), 0
    for text in DOCUMENTS:
        matches = reference.matches(text)
        candidates += len(matches)
        if sampling.ratio_basis == "words" and matches:
            replaced = sampling.portion * min(1.0, sampling.ratio * count_words(text) / len(matches))
        else:
            replaced = sampling.portion * sampling.ratio
        for _, _, key in matches:
            langs = [(l, lang) for l, lang in enumerate(LANGUAGES) if lang in integer and vocab.translations(key, l)]
            total = sum(integer[lang] for _, lang in langs)
            for l, lang in langs:
                options = vocab.translations(key, l)
                weights = vocab.translation_weights(key, l)
                for (_, translation), weight in zip(options, weights):
                    p = integer[lang] / total * weight / sum(weights)
                    slot = (lang, vocab.key_text(key).strip().casefold(), translation.strip().casefold())
                    counts[slot] += replaced * p
                    draws[slot] += p
    return counts, draws, candidates


def folded(rows) -> tuple[dict, dict]:
    counts, shares = defaultdict(float), defaultdict(float)
    for row in rows:
        slot = (row.lang, row.source.casefold(), row.translation.casefold())
        counts[slot] += row.expected
        shares[slot] += row.share
    return counts, shares


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(ratio=0.3),
        Sampling(ratio=0.5, portion=0.8, languages={"deu": 3.0, "fr": 1.0}),
        Sampling(ratio=0.1, languages={"fr": 1.0}, ratio_basis="words"),
    ],
    ids=["default", "weighted", "words"],
)
def test_expected_counts_and_shares_equal_a_brute_force_sum(vocab, corpus, sampling):
    report = count_pairs(vocab, corpus_texts([str(corpus)]), sampling)
    counts, draws, candidates = brute_force(vocab, sampling)
    got_counts, got_shares = folded(report.rows)
    assert set(got_counts) == set(counts)
    for slot in counts:
        assert got_counts[slot] == pytest.approx(counts[slot], rel=1e-9)
        assert got_shares[slot] == pytest.approx(counts[slot] / sum(counts.values()), rel=1e-9)
        if sampling.ratio_basis == "candidates":  # the share is then sum P(l) P(t) / candidates
            assert got_shares[slot] == pytest.approx(draws[slot] / candidates, rel=1e-9)
    assert report.candidates == candidates and report.documents == len(DOCUMENTS)
    assert report.expected == pytest.approx(sum(counts.values()))
    expected = [row.expected for row in report.rows]
    assert expected == sorted(expected, reverse=True)
    assert report.rows[-1].cumulative == pytest.approx(1.0)
    assert [row.cumulative for row in report.rows] == pytest.approx(np.cumsum([row.share for row in report.rows]))


def test_case_forms_of_one_pair_are_one_row_spelled_as_the_dictionary(vocab, corpus):
    report = count_pairs(vocab, corpus_texts([str(corpus)]), Sampling(ratio=0.3))
    pairs = Counter((row.lang, row.source, row.translation) for row in report.rows)
    assert max(pairs.values()) == 1
    # "The", "THE" and "the" draw from one dictionary pair each; so do "house" and "House"
    assert {("deu", "the", "der"), ("deu", "the", "die"), ("fr", "the", "le"), ("fr", "the", "la")} <= set(pairs)
    assert not {p for p in pairs if p[1] in ("The", "THE") or p[2] in ("Der", "DER", "Le", "LE")}
    assert ("fr", "house", "maison") in pairs and ("fr", "house", "Maison") not in pairs
    # a phrase met only in Title case is shown in the lower-case form compiled beside it
    assert ("deu", "ice cream", "Eis") in pairs
    # an abbreviation keeps its own spelling; a Title-case source its own; UPPER is taken back to it
    assert ("deu", "US", "USA") in pairs and ("deu", "us", "uns") in pairs
    assert ("deu", "Easter", "Ostern") in pairs and ("deu", "Easter", "OSTERN") not in pairs


def test_real_draws_follow_the_expected_shares(vocab):
    """At ratio 1 every candidate is replaced: over 400 documents, each pair's share of the
    substitutions text mode makes is its expected share (within 4.5 standard deviations)."""
    texts = DOCUMENTS * 80
    report = count_pairs(vocab, iter(texts), Sampling(ratio=1.0))
    sub = TextSubstituter(vocab, Sampling(ratio=1.0, seed=7))
    seen = Counter()
    for doc, text in enumerate(texts):
        for s in sub.apply(text, doc).substitutions:
            seen[(s.language, s.source.casefold(), s.translation.casefold())] += 1
    total = sum(seen.values())
    assert total == report.candidates
    expected_counts, _ = folded(report.rows)
    for slot, count in expected_counts.items():
        p = count / total
        assert abs(seen[slot] - count) <= 4.5 * np.sqrt(total * p * (1 - p)) + 1, slot


def test_pairs_cli_table_tsv_top_and_summary(capsys, vocab_path, corpus, tmp_path):
    code, out, err = cli(capsys, "pairs", "--vocab", vocab_path, corpus, "--top", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["lang", "source", "translation", "expected", "share", "cumulative"]
    assert len(lines) == 4
    assert "5 documents" in err and "substitutions expected per run (ratio 0.3, portion 1" in err
    assert "pairs, the first" in err and "make half of them" in err
    code, out, _ = cli(capsys, "pairs", "--vocab", vocab_path, corpus, "--format", "tsv", "--top", "0", "-q")
    assert code == 0
    header, *rows = out.splitlines()
    assert header == "#lang\tsource\ttranslation\texpected\tshare\tcumulative"
    report = count_pairs(Vocab.load(vocab_path), corpus_texts([str(corpus)]), Sampling(ratio=0.3))
    assert len(rows) == len(report.rows)
    first = rows[0].split("\t")
    top = report.rows[0]
    assert first[:3] == [top.lang, top.source, top.translation]
    assert float(first[3]) == pytest.approx(top.expected, abs=1e-3)
    assert float(first[4]) == pytest.approx(top.share, abs=1e-6)
    assert all("\x1b" not in row for row in rows)


def test_pairs_reads_text_files_as_link_fast_text_does(capsys, vocab_path, tmp_path):
    import gzip

    (tmp_path / "a.txt").write_text("the house\nthe\n", encoding="utf-8")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"body": "US and us"}) + "\n\n")
    code, out, err = cli(
        capsys, "pairs", "--vocab", vocab_path, tmp_path / "a.txt", tmp_path / "b.jsonl.gz", "--field", "body"
    )
    assert code == 0 and "3 documents, 6 words, 5 candidates" in err


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", b'{"text": "the"}\n{"text": \n', "bad.jsonl:2: malformed JSON"),
        ("bad.jsonl", b'{"text": "the"}\n{"body": "x"}\n', "bad.jsonl:2: no text in field 'text'"),
        ("bad.txt", b"the\n\xff\xfe\n", "bad.txt:2: not UTF-8"),
        ("bad.csv", b"the\n", "bad.csv: unknown text format"),
    ],
)
def test_pairs_refuses_bad_corpus_lines_naming_file_and_line(capsys, vocab_path, tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    code, out, err = cli(capsys, "pairs", "--vocab", vocab_path, tmp_path / name)
    assert code == 2 and not out
    assert err.count("\n") == 1 and message in err


def test_pairs_refuses_bad_options(capsys, vocab_path, corpus):
    code, _, err = cli(capsys, "pairs", "--vocab", vocab_path, corpus, "--languages", "es=1")
    assert code == 2 and "'es' is not in the vocabulary" in err
    code, _, err = cli(capsys, "pairs", "--vocab", vocab_path, corpus, "--top", "-2")
    assert code == 2 and "the number of pairs shown must be >= 0" in err


def test_pairs_at_ratio_zero_still_ranks_the_pairs(vocab, corpus):
    zero = count_pairs(vocab, corpus_texts([str(corpus)]), Sampling(ratio=0.0))
    some = count_pairs(vocab, corpus_texts([str(corpus)]), Sampling(ratio=0.3))
    assert zero.expected == 0.0 and all(row.expected == 0.0 for row in zero.rows)
    assert [(r.lang, r.source, r.translation, round(r.share, 12)) for r in zero.rows] == [
        (r.lang, r.source, r.translation, round(r.share, 12)) for r in some.rows
    ]


def test_pairs_tsv_makes_a_deny_list_that_removes_those_pairs(capsys, tmp_path):
    """The review loop end to end: the most frequent pair of a corpus, denied, is gone."""
    pytest.importorskip("mistral_common")
    tekken_path = importlib.resources.files("mistral_common") / "data" / "tekken_240911.json"
    (tmp_path / "de.txt").write_text("cat\tKatze\ncat\tMieze\ncat\tKater\nhouse\tHaus\n", encoding="utf-8")
    (tmp_path / "corpus.txt").write_text("cat house cat\ncat\n", encoding="utf-8")
    base = ["compile", "--tokenizer", tekken_path, "--dict", f"de={tmp_path / 'de.txt'}", "--no-default-deny", "-q"]
    assert cli(capsys, *base, "-o", tmp_path / "a.lfv")[0] == 0
    code, tsv, _ = cli(
        capsys, "pairs", "--vocab", tmp_path / "a.lfv", tmp_path / "corpus.txt", "--format", "tsv", "--top", "1", "-q"
    )
    assert code == 0
    (tmp_path / "deny.tsv").write_text("".join("\t".join(x.split("\t")[:3]) + "\n" for x in tsv.splitlines()))
    lang, source, translation = tsv.splitlines()[1].split("\t")[:3]
    assert (lang, source) == ("de", "cat")
    assert cli(capsys, *base, "--deny", tmp_path / "deny.tsv", "-o", tmp_path / "b.lfv")[0] == 0
    code, out, _ = cli(capsys, "lookup", tmp_path / "b.lfv", "cat")
    assert code == 0 and f" {translation} " not in out + " " and out.count("de ") == 3
    code, out, _ = cli(capsys, "lookup", tmp_path / "a.lfv", "cat")
    assert f"{translation} " in out
