"""compile_vocab on a real tokenizer (Tekken) with small dictionaries written by the tests."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from link_fast import Substituter, Vocab
from link_fast.compiler import apply_case, compile_vocab, source_cases
from link_fast.errors import DictionaryError, InputError, TokenizerError, VocabError
from link_fast.tokenizer import load_tokenizer

pytest.importorskip("mistral_common")
DATA = resources.files("mistral_common") / "data"


@pytest.fixture(scope="module")
def tekken():
    return load_tokenizer(DATA / "tekken_240911.json")


@pytest.fixture(scope="module")
def sentencepiece():
    return load_tokenizer(DATA / "tokenizer.model.v1")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def keys_by_text(vocab):
    return {vocab.key_text(k): k for k in range(vocab.n_keys)}


def test_source_cases_follow_the_source_spelling():
    assert source_cases("cat", ("lower", "title", "upper")) == [
        ("lower", "cat", True),
        ("title", "Cat", False),
        ("upper", "CAT", False),
    ]
    assert source_cases("Easter", ("lower", "title", "upper")) == [
        ("title", "Easter", True),
        ("upper", "EASTER", False),
    ]
    assert source_cases("US", ("lower", "title", "upper")) == [("exact", "US", True)]
    assert source_cases("ice cream", ("lower",)) == [("lower", "ice cream", True)]
    assert apply_case("chat noir", "title") == "Chat noir" and apply_case("straße", "upper") == "STRASSE"


def test_forms_cases_spacings_and_phrases(tmp_path, tekken):
    de = write(tmp_path, "de.txt", "cat\tKatze\nice cream\tEis\nus\tuns\nUS\tUSA\nEaster\tOstern\n")
    vocab = compile_vocab(tekken, {"de": de})
    keys = keys_by_text(vocab)
    expected = {
        " cat": " Katze",
        "cat": "Katze",
        " Cat": " Katze",
        " CAT": " KATZE",
        " ice cream": " Eis",
        "Ice cream": "Eis",
        " ICE CREAM": " EIS",
        " us": " uns",
        " Us": " Uns",
        " US": " USA",  # the source spelled US owns the form, not the UPPER of "us"
        " Easter": " Ostern",
        " EASTER": " OSTERN",
    }
    for form, translation in expected.items():
        assert form in keys, form
        assert [t for _, t in vocab.translations(keys[form], 0)] == [translation]
        assert vocab.key_tokens(keys[form]) == tuple(tekken.encode("a" + form)[1:]) if form.startswith(" ") else True
    assert " easter" not in keys  # a Title-case source has no lower-case form
    report = vocab.meta["report"]["languages"]["de"]
    assert report["sources"] == 5 and report["phrases"] >= 6 and report["keys"] == len(keys)
    assert vocab.meta["tokenizer"]["fingerprint"] == tekken.fingerprint


def test_compiled_vocab_substitutes_real_text(tmp_path, tekken):
    de = write(tmp_path, "de.txt", "cat\tKatze\nice cream\tEis\n")
    fr = write(tmp_path, "fr.txt", "cat\tchat\n")
    vocab = compile_vocab(tekken, {"de": de, "fr": fr})
    text = "The cat ate ice cream.\nCat food, CATS and a cat's toy; concatenate (cat)\n(cat"
    tokens = np.array(tekken.encode(text), dtype=np.uint32)
    res = Substituter(vocab, ratio=1.0, languages={"de": 1}).apply(tokens, np.array([0, len(tokens)]))
    assert (
        tekken.decode(res.tokens) == "The Katze ate Eis.\nKatze food, CATS and a cat's toy; concatenate (Katze)\n(cat"
    )
    # "cat's": an apostrophe with a word character past it joins the word (DESIGN §3)
    # ' (cat' is ' (' + 'cat', a bare form after a token that never fuses with a word;
    # '(cat' after a newline is '(c' + 'at': not the form, left alone


def test_sentencepiece_compiles_and_matches(tmp_path, sentencepiece):
    de = write(tmp_path, "de.txt", "cat\tKatze\nhouse\tHaus\n")
    vocab = compile_vocab(sentencepiece, {"de": de})
    text = "A cat in the house.\ncat"
    tokens = np.array(sentencepiece.encode(text), dtype=np.uint16)
    res = Substituter(vocab, ratio=1.0).apply(tokens, np.array([0, len(tokens)]))
    assert sentencepiece.decode(res.tokens) == " A Katze in the Haus.\nKatze"


def test_save_load_and_fingerprint_checks(tmp_path, tekken, sentencepiece):
    de = write(tmp_path, "de.txt", "cat\tKatze\n")
    path = compile_vocab(tekken, {"de": de}).save(tmp_path / "v.lfv")
    assert Vocab.load(path, tokenizer=tekken).n_keys > 0
    with pytest.raises(VocabError, match="compiled for tekken_240911.json .* not for tokenizer.model.v1"):
        Vocab.load(path, tokenizer=sentencepiece)
    raw = bytearray(path.read_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    (tmp_path / "version.lfv").write_bytes(raw)
    with pytest.raises(VocabError, match="version 99"):
        Vocab.load(tmp_path / "version.lfv")
    (tmp_path / "short.lfv").write_bytes(path.read_bytes()[:-200])
    with pytest.raises(VocabError, match="truncated"):
        Vocab.load(tmp_path / "short.lfv")
    (tmp_path / "junk.lfv").write_bytes(b"not a vocabulary at all, but long enough")
    with pytest.raises(VocabError, match="bad magic"):
        Vocab.load(tmp_path / "junk.lfv")
    with pytest.raises(VocabError, match="no such file"):
        Vocab.load(tmp_path / "missing.lfv")


def test_bad_inputs(tmp_path, tekken):
    with pytest.raises(TokenizerError, match="tok.json: JSON of unknown shape"):
        compile_vocab(write(tmp_path, "tok.json", '{"hello": 1}'), {"de": write(tmp_path, "de.txt", "cat\tKatze\n")})
    with pytest.raises(DictionaryError, match=r"bad\.txt:2: line has no translation"):
        compile_vocab(tekken, {"de": write(tmp_path, "bad.txt", "cat\tKatze\nlonely\n")})
    with pytest.raises(DictionaryError, match="no usable word pairs"):
        compile_vocab(tekken, {"de": write(tmp_path, "empty.txt", "# nothing\n\n")})
    with pytest.raises(InputError, match="cases"):
        compile_vocab(tekken, {"de": write(tmp_path, "de.txt", "cat\tKatze\n")}, cases=("sideways",))
    with pytest.raises(InputError, match="at least one dictionary"):
        compile_vocab(tekken, {})


# DESIGN §3, restated here rather than imported from the compiler: the contexts a form is
# encoded in (after a word when spaced, at a line start when bare, a full stop after it) ...
DESIGN_CONTEXTS = {"space": ("a", "."), "bare": ("\n", ".")}


def design_forms(source, wanted):
    """... and the case variants a source word takes, as (case, surface, natural): an
    all-lowercase source gets lower, Title and UPPER; a Title-case one Title and UPPER; any
    other spelling only itself ("exact")."""
    if source == source.lower():
        natural, cases = "lower", ("lower", "title", "upper")
    elif source[:1].isupper() and source[1:] == source[1:].lower():
        natural, cases = "title", ("title", "upper")
    else:
        return [("exact", source, True)]
    return [(case, design_case(source, case), case == natural) for case in cases if case in wanted]


def design_case(text, case):
    """A translation written in a form: Title capitalises its first letter, UPPER upper-cases
    it, lower (and exact) keep the dictionary's spelling."""
    return {"title": text[:1].upper() + text[1:], "upper": text.upper()}.get(case, text)


def test_design_forms_restatement_agrees_with_the_documented_examples():
    assert [f[1] for f in design_forms("cat", ("lower", "title", "upper"))] == ["cat", "Cat", "CAT"]
    assert [f[1] for f in design_forms("Easter", ("lower", "title", "upper"))] == ["Easter", "EASTER"]
    assert design_forms("US", ("lower", "title", "upper")) == [("exact", "US", True)]
    assert design_forms("iPhone", ("lower",)) == [("exact", "iPhone", True)]
    assert design_forms("Easter", ("lower",)) == []
    assert design_case("Hund", "lower") == "Hund" and design_case("chat noir", "title") == "Chat noir"


def expected_table(tokenizer, lexicons, cases=("lower", "title", "upper"), spacings=("space", "bare")):
    """The compiled table restated in plain Python from DESIGN §3: {key ids: {lang: [(ids, text)]}}."""

    def ids(spacing, surface):
        prefix, suffix = DESIGN_CONTEXTS[spacing]
        text = (" " if spacing == "space" else "") + surface
        before, after = tokenizer.encode(prefix), tokenizer.encode(prefix + suffix)[len(tokenizer.encode(prefix)) :]
        full = tokenizer.encode(prefix + text + suffix)
        if (
            full[: len(before)] != before
            or full[len(full) - len(after) :] != after
            or len(full) <= len(before) + len(after)
        ):
            return None
        return tuple(full[len(before) : len(full) - len(after)])

    claims = {}  # key -> list of (natural, lang, [(ids, text)])
    for lang, lexicon in enumerate(lexicons):
        for source, translations in lexicon.entries.items():
            for case, surface, natural in design_forms(source, cases):
                for spacing in spacings:
                    key = ids(spacing, surface)
                    pad = " " if spacing == "space" else ""
                    emitted = [(ids(spacing, design_case(t, case)), pad + design_case(t, case)) for t in translations]
                    emitted = [e for e in emitted if e[0] is not None]
                    if key is not None and emitted:
                        claims.setdefault(key, []).append((natural, lang, emitted))
    table = {}
    for key, found in claims.items():
        natural_langs = {lang for natural, lang, _ in found if natural}  # claims compete within a language
        for natural, lang, emitted in found:
            if natural or lang not in natural_langs:
                merged = table.setdefault(key, {}).setdefault(lang, [])
                merged.extend(e for e in emitted if e not in merged)
    return table


@pytest.mark.parametrize("workers", [1, 2])
def test_compiled_table_equals_plain_python_restatement(tmp_path, tekken, workers, monkeypatch):
    from link_fast import compiler
    from link_fast.demo import DEMO_LANGUAGES
    from link_fast.lexicon import load_lexicon

    monkeypatch.setattr(compiler, "PARALLEL_MIN_FORMS", 10)  # exercise the forked encoders too
    extra = write(
        tmp_path,
        "extra.txt",
        "cat\tKatze\ncat\tMieze\ncat\tkatze\nkitty\tKatze\nus\tuns\nUS\tUSA\nus\twir\nGrapes\tTrauben\n",
    )
    lexicons = [
        load_lexicon(DEMO_LANGUAGES["de"], "de"),
        load_lexicon(DEMO_LANGUAGES["fr"], "fr"),
        load_lexicon(extra, "xx"),
    ]
    # file order and the dictionaries' own entries: what the restatement builds
    vocab = compile_vocab(
        tekken,
        {lex.lang: lex for lex in lexicons},
        workers=workers,
        translation_weights="uniform",
        function_words="dictionary",
    )
    got = {
        vocab.key_tokens(k): {l: vocab.translations(k, l) for l in range(3) if vocab.translations(k, l)}
        for k in range(vocab.n_keys)
    }
    assert got == expected_table(tekken, lexicons)


# -- progress, per-language sizes, the bench's compile row (issue 13, part 2) ------------------


def test_progress_lines_go_where_asked(tmp_path, tekken, capsys):
    de = write(tmp_path, "de.txt", "cat\tKatze\ndog\tHund\n")
    lines: list[str] = []
    compile_vocab(tekken, {"de": de}, progress=lines.append)
    assert lines[0].startswith("loading de dictionary") and lines[-1].startswith("compiled ")
    assert any(line.startswith("encoding ") for line in lines)
    assert capsys.readouterr().err == ""
    compile_vocab(tekken, {"de": de}, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(lines) and all(line.startswith("[") and "s] " in line for line in err)
    assert [line.split("] ", 1)[1].split(" in ")[0] for line in err] == [line.split(" in ")[0] for line in lines]
    compile_vocab(tekken, {"de": de}, progress=False)
    compile_vocab(tekken, {"de": de})  # the default: lines only on a terminal, and pytest's stderr is none
    assert capsys.readouterr().err == ""


def test_encoding_progress_counts_every_form(tmp_path, tekken, monkeypatch):
    import link_fast.compiler as compiler

    monkeypatch.setattr(compiler, "ENCODE_CHUNK", 7)
    words = "".join(f"{a}{b}ing\t{a}{b}ung\n" for a in "bcdfg" for b in "aeiou")
    lines: list[str] = []
    compile_vocab(tekken, {"de": write(tmp_path, "de.txt", words)}, progress=lines.append, workers=1)
    encoded = [line for line in lines if line.startswith("encoded ")]
    assert 2 <= len(encoded) <= 4  # a line a quarter, none at the end
    counts = [int(line.split()[1].replace(",", "")) for line in encoded]
    assert counts == sorted(counts) and all(c % 7 == 0 for c in counts)


def test_info_reports_the_file_size_of_each_language(tmp_path, tekken, capsys):
    from link_fast.cli import main
    from link_fast.vocab import language_bytes

    de = write(tmp_path, "de.txt", "cat\tKatze\ndog\tHund\nhouse\tHaus\nice cream\tEis\n")
    fr = write(tmp_path, "fr.txt", "cat\tchat\n")
    path = compile_vocab(tekken, {"de": de, "fr": fr}, progress=False).save(tmp_path / "v.lfv")
    vocab = Vocab.load(path)
    per_language, shared = language_bytes(vocab.tables, 2)
    assert per_language[0] > 2 * per_language[1] > 0  # de has four words, fr one
    # the file is the 24-byte prefix, the JSON header, then the tables, each padded to 64 bytes
    header = 24 + int.from_bytes(path.read_bytes()[16:24], "little")
    padding = 64 * len(vocab.tables)
    tables = path.stat().st_size - header
    assert tables - padding < sum(per_language) + shared <= tables
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"de {per_language[0] / 1e6:,.1f}, fr {per_language[1] / 1e6:,.1f}" in out


def test_bench_compile_row_measures_a_fresh_process(tekken):
    from link_fast import bench
    from link_fast.demo import DEMO_LANGUAGES

    row = bench.compile_row(tekken.path, DEMO_LANGUAGES)
    vocab = row.pop("vocab")
    assert vocab.n_keys == row["keys"] == compile_vocab(tekken, DEMO_LANGUAGES, progress=False).n_keys
    assert row["forms"] > row["keys"] > 0 and row["seconds"] > row["encode_seconds"] > 0
    assert row["ratio"] == pytest.approx(row["seconds"] / row["encode_seconds"])
    assert 30 < row["peak_rss_mb"] < 2000 and row["size"] > 0
    assert "x the tokenizer's batch encoding" in bench.format_compile_row(row)


def test_nothing_kept_is_an_input_error_not_a_crash(tekken):
    from link_fast.lexicon import Lexicon

    # a source without translations keeps no record: no key at all, said as such
    with pytest.raises(InputError, match="no dictionary word has a context-free encoding"):
        compile_vocab(tekken, {"de": Lexicon("de", "de.txt", {"house": []})}, progress=False)
