"""``link-fast inspect`` on real shards (Tekken and SentencePiece, FreeDict vocabularies, the
Python documentation), written with and without a mask, and on ``link-fast text`` outputs."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import numpy as np
import pytest
from real_runs import make_run

from link_fast.cli import main
from link_fast.inspect import ShardPair, TextPair

N_DOCS = 40
ANSI = re.compile(r"\033\[[0-9;]*m")


@pytest.fixture(scope="module", params=["tekken", "sp_v1"])
def runs(request, tmp_path_factory, pydoc_documents):
    """(tokenizer name, {"mask": output prefix, "plain": output prefix}, vocab path) for one tokenizer."""
    name = request.param
    tokenizer = request.getfixturevalue(name)
    vocab = request.getfixturevalue(f"{name}_vocab")
    root = tmp_path_factory.mktemp(f"inspect_{name}")
    documents = pydoc_documents[:N_DOCS]
    outputs = {}
    for kind, mask in (("mask", True), ("plain", False)):
        out = make_run(root / kind, tokenizer, vocab.path, documents, shards=1, mask=mask)
        outputs[kind] = out / "shard_0"
    return name, outputs, vocab.path


def record(prefix) -> dict:
    return json.loads(open(f"{prefix}.link.json", encoding="utf-8").read())


def test_alignment_finds_every_substitution_with_and_without_mask(runs):
    _, outputs, _ = runs
    with_mask, plain = ShardPair(outputs["mask"]), ShardPair(outputs["plain"])
    assert with_mask.mask is not None and plain.mask is None
    languages: Counter[str] = Counter()
    for doc in range(with_mask.count):
        before, after, spans = with_mask.spans(doc)
        _, _, plain_spans = plain.spans(doc)
        assert spans == plain_spans, doc  # the fresh alignment finds exactly what the mask says
        mask = with_mask.tokens(with_mask.mask, doc)
        marked = np.zeros(len(after), dtype=bool)
        kept = []
        at = 0
        for s in spans:
            marked[s.out_start : s.out_end] = True
            kept.append(before[at : s.in_start])
            at = s.in_end
            assert with_mask.tokenizer.decode(after[s.out_start : s.out_end]) == s.translation
            assert with_mask.tokenizer.decode(before[s.in_start : s.in_end]) == s.source
            languages["/".join(s.languages)] += 1  # " Atelier" is de and fr: both are named
        assert np.array_equal(marked, mask.astype(bool)), doc
    stats = record(outputs["mask"])["stats"]
    assert sum(languages.values()) == stats["total_substitutions"] > 20
    for lang, count in stats["substitutions"].items():
        shared = sum(n for names, n in languages.items() if lang in names.split("/") and names != lang)
        assert languages[lang] <= count <= languages[lang] + shared, lang


def test_piped_output_marks_substitutions_in_brackets_with_their_language(runs, capsys):
    _, outputs, _ = runs
    pair = ShardPair(outputs["plain"])
    doc = next(d for d in range(pair.count) if len(pair.spans(d)[2]) >= 3)
    spans = pair.spans(doc)[2]
    assert main(["inspect", str(outputs["plain"]), "--doc", str(doc)]) == 0
    out = capsys.readouterr().out
    assert "\033[" not in out  # not a terminal: brackets, no colour
    head, before, after = re.match(r"=== (.*)\n--- before\n(.*)\n\+\+\+ after\n(.*)\n", out, re.S).groups()
    assert head.startswith(f"document {doc}: ") and f"{len(spans)} substitutions" in head
    marked_after = re.findall(r"\[([^\]]+)\](\w+)", after)
    assert marked_after == [(s.translation.strip(), "/".join(s.languages)) for s in spans]
    assert re.findall(r"\[([^\]]+)\]", before) == [s.source.strip() for s in spans]


def test_colour_when_asked_and_side_by_side(runs, capsys):
    _, outputs, _ = runs
    assert main(["inspect", str(outputs["mask"]), "--doc", "1", "--color", "always"]) == 0
    coloured = capsys.readouterr().out
    assert "\033[1;" in coloured
    assert main(["inspect", str(outputs["mask"]), "--doc", "1", "--color", "never"]) == 0
    plain = capsys.readouterr().out
    subs = len(ShardPair(outputs["mask"]).spans(1)[2])
    assert subs and len(plain) - len(ANSI.sub("", coloured)) == 4 * subs  # [ ] around each word, before and after
    assert main(["inspect", str(outputs["mask"]), "--doc", "1", "--layout", "side-by-side", "--color", "never"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].startswith("before") and all(" | " in row for row in rows[1:] if row)


def test_random_is_seeded_and_grep_finds_the_word(runs, capsys):
    _, outputs, _ = runs
    prefix = str(outputs["mask"])
    main(["inspect", prefix, "--random", "4", "--seed", "3"])
    first = capsys.readouterr().out
    main(["inspect", prefix, "--random", "4", "--seed", "3"])
    assert capsys.readouterr().out == first
    assert len(re.findall(r"^=== document", first, re.M)) == 4
    pair = ShardPair(outputs["mask"])
    word = next(s.source.strip() for d in range(pair.count) for s in pair.spans(d)[2])
    main(["inspect", prefix, "--grep", word, "--limit", "50"])
    shown = [int(d) for d in re.findall(r"^=== document (\d+)", capsys.readouterr().out, re.M)]
    want = [
        d for d in range(pair.count) if any(s.source.strip().casefold() == word.casefold() for s in pair.spans(d)[2])
    ]
    assert shown == want[:50] and shown


def test_vocabulary_and_input_can_be_given_instead_and_wrong_ones_are_refused(runs, tmp_path, capsys):
    name, outputs, vocab_path = runs
    out = tmp_path / "out"
    shutil.copytree(outputs["plain"].parent, out)
    moved = tmp_path / "moved.lfv"
    rec = record(out / "shard_0")
    rec["vocab_path"] = str(tmp_path / "gone.lfv")
    (out / "shard_0.link.json").write_text(json.dumps(rec), encoding="utf-8")
    assert main(["inspect", str(out / "shard_0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard_0.link.json" in err[0] and "--vocab" in err[0]
    moved.symlink_to(vocab_path)
    assert main(["inspect", str(out / "shard_0"), "--vocab", str(moved), "--doc", "0"]) == 0
    assert "=== document 0" in capsys.readouterr().out
    # another input: not the one the record's fingerprint names
    other = tmp_path / "other"
    shutil.copytree(outputs["plain"].parent.parent / "in", other)
    data = np.fromfile(other / "shard_0.bin", dtype=np.uint8)
    np.roll(data, 64).tofile(other / "shard_0.bin")
    assert main(["inspect", str(out / "shard_0"), "--vocab", str(moved), "--input", str(other / "shard_0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{other / 'shard_0'}: not the input shard_0.link.json was made from" in err[0]
    # a record without the input's fingerprint: the documents do not align
    del rec["input"]
    (out / "shard_0.link.json").write_text(json.dumps(rec), encoding="utf-8")
    assert main(["inspect", str(out / "shard_0"), "--vocab", str(moved), "--input", str(other / "shard_0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not document 0" in err[0] and "--input" in err[0]


def test_tokenizer_is_found_through_the_vocabulary_and_can_be_given(runs, request, capsys):
    name, outputs, vocab_path = runs
    from link_fast.vocab import Vocab

    meta = Vocab.load(vocab_path).meta["tokenizer"]
    assert meta["path"] == str(request.getfixturevalue(name).path)
    other = "sp_v1" if name == "tekken" else "tekken"
    wrong = request.getfixturevalue(other).path
    assert main(["inspect", str(outputs["mask"]), "--tokenizer", str(wrong)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "link-fast: error:" in err[0]


def test_bad_options_and_damaged_records_are_one_line(tmp_path, capsys):
    for option in ("--random", "--limit"):
        assert main(["inspect", str(tmp_path / "x"), option, "0"]) == 2
        assert f"{option} must be a positive number" in capsys.readouterr().err
    (tmp_path / "x.link.json").write_text("{not json", encoding="utf-8")
    assert main(["inspect", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.link.json" in err[0]
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "missing.link.json: no such file" in capsys.readouterr().err


def test_text_outputs_with_a_substitutions_field(tekken_vocab_path, pydoc_documents, tmp_path, capsys):
    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": d, "id": i}) for i, d in enumerate(pydoc_documents[:20])]
    source.write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n", encoding="utf-8")
    argv = ["text", "--vocab", str(tekken_vocab_path), "--ratio", "0.3", "--substitutions-field", "subs", "-q"]
    assert main([*argv, str(source), "-o", str(tmp_path / "out")]) == 0
    output = tmp_path / "out" / "docs.jsonl"
    pair = TextPair(output)
    documents = list(pair.documents())
    assert [d.index for d in documents] == [i for i in range(21) if i != 5]  # line numbers, the blank one left out
    stats = json.loads((tmp_path / "out" / "docs.jsonl.link.json").read_text())["stats"]
    found = Counter(lang for d in documents for _, _, lang in d.substitutions)
    assert dict(found) == {k: v for k, v in stats["substitutions"].items() if v}
    assert main(["inspect", str(output), "--doc", "7", "--color", "never"]) == 0
    out = capsys.readouterr().out
    document = next(d for d in documents if d.index == 7)
    assert out.startswith(f"=== document 7: {document.size_before:,} -> {document.size_after:,} characters")
    assert re.findall(r"\[([^\]]+)\](\w+)", out.split("+++ after\n")[1]) == [
        (t, lang) for _, t, lang in document.substitutions
    ]
