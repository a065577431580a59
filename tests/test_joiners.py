"""No substitution inside code, URLs, e-mail addresses, paths or contractions (docs/DESIGN.md §3):
a word with one or more joiners (``_ . / : = ( @ \\ ' ’``) on a side and a word character past
them is no candidate, nor a word next to a backtick, directly or over joiners (inline code:
``:mod:`os```), in token mode (whatever the tokens the joiners fall in) and in text mode alike."""

from __future__ import annotations

import re

import numpy as np
import pytest

from link_fast import Substituter, VocabError
from link_fast.lexicon import Lexicon
from link_fast.text import TextSubstituter
from link_fast.tokenizer import (
    BACKTICK,
    BACKTICK_THEN_JOINERS,
    FLAG_SPECIAL,
    JOINER_ONLY,
    JOINER_THEN_WORD,
    JOINERS,
    JOINERS_THEN_BACKTICK,
    WORD_THEN_JOINER,
    flags_for_bytes,
    joiners_for_bytes,
)
from link_fast.vocab import Entry, Vocab

# (text, the words of it that stay candidates); no word twice in a text
EXAMPLES = [
    ("lwn.net", set()),
    ("foo_bar", set()),
    ("config.h", set()),
    ("net/ipv4", set()),
    ("f(x)", set()),
    ("user@example", set()),
    ("C:\\path", set()),
    ("a=b", set()),
    ("https://lwn.net/Kernel/", set()),
    ("foo._bar", set()),
    ("x.(y", set()),
    ("see net/ipv4 now", {"see", "now"}),
    ("end.", {"end"}),  # a sentence's end: no word past the full stop
    ("end. Next", {"end", "Next"}),
    ("f (x) a", {"f", "x", "a"}),  # "(" after a space
    ("foo.) bar", {"foo", "bar"}),
    ("foo.. bar", {"foo", "bar"}),
    ("(foo)", {"foo"}),
    ("foo_", {"foo"}),
    ("_foo", {"foo"}),
    ("foo_ bar", {"foo", "bar"}),
    ("foo _bar", {"foo", "bar"}),  # no word before the joiner
    ("a.\n.b", {"a", "b"}),
    # inline code: a word next to a backtick, or to joiners and then one
    ("``print()``", set()),
    ("`foo`", set()),
    (":mod:`os`", set()),  # the role name too: ':' then a backtick
    (":func:`open`", set()),
    ("x.`y", set()),
    ("ok` no", {"no"}),
    ("see ` foo ` now", {"see", "foo", "now"}),  # a space between: nothing changes
    ("`` bar ``", {"bar"}),
    ("foo.` baz", {"baz"}),
    # contractions and elisions: the apostrophes are joiners
    ("don't", set()),
    ("don\u2019t", set()),
    ("it's", set()),
    ("we'll", set()),
    ("o'clock", set()),
    ("dog's", set()),
    ("rock'n'roll", set()),
    ("f('x')", set()),
    ("'hello'", {"hello"}),  # quotes with no word past them
    ("dogs'", {"dogs"}),
    ("say 'yes' now", {"say", "yes", "now"}),
    ("the dogs' bone", {"the", "dogs", "bone"}),
    ("\u2018hi\u2019", {"hi"}),
]
WORDS = sorted({w for text, _ in EXAMPLES for w in re.findall(r"[^\W_]+", text)})

# Hand tokenizers, each splitting the joiners and backticks another way: every character alone;
# runs of them as one token (``, :`); glued to the next word (.net, 't, `os, as Tekken and
# Llama-3 do); and to the word before (lwn., mod:`). A word takes the space before it, as
# byte-level BPE tokens do.
_J = re.escape(JOINERS + BACKTICK)
SPLITS = {
    "alone": r" ?[^\W_]+|.",
    "runs": rf" ?[^\W_]+|[{_J}]+|.",
    "before word": rf" ?[^\W_]+|[{_J}]+[^\W_]*|.",
    "after word": rf" ?[^\W_]+[{_J}]*|.",
}


def translation(word: str) -> str:
    return f"Z{word.upper()}Z"  # no translation inside another


def hand_vocab() -> tuple[Vocab, dict[str, int]]:
    """Every token of every split of the examples, with flags and joiner flags from its text;
    each word a key in its bare and spaced form, translated to one token."""
    texts = {t for pattern in SPLITS.values() for text, _ in EXAMPLES for t in re.findall(pattern, text, re.S)}
    texts |= {s + w for w in WORDS for s in ("", " ")} | {s + translation(w) for w in WORDS for s in ("", " ")}
    ids = {t: i for i, t in enumerate(sorted(texts))}
    flags = np.array([flags_for_bytes(t.encode()) for t in ids], dtype=np.uint8)
    joiner_flags = np.array([joiners_for_bytes(t.encode()) for t in ids], dtype=np.uint8)
    entries = [
        Entry((ids[s + w],), s + w, {0: [((ids[s + translation(w)],), s + translation(w))]})
        for w in WORDS
        for s in ("", " ")
    ]
    return Vocab.from_entries(flags, entries, ["xx"], joiner_flags=joiner_flags), ids


def expected(tokens: list[str], candidates: set[str]) -> str:
    """The text of ``tokens`` with each token that is a candidate word replaced."""
    return "".join(
        t[: len(t) - len(t.lstrip())] + translation(t.lstrip()) if t.lstrip() in candidates else t for t in tokens
    )


@pytest.mark.parametrize("split", SPLITS)
def test_token_mode_on_every_split_of_the_joiners(split):
    vocab, ids = hand_vocab()
    names = {i: t for t, i in ids.items()}
    sub = Substituter(vocab, ratio=1.0)
    for text, candidates in EXAMPLES:
        tokens = re.findall(SPLITS[split], text, re.S)
        assert "".join(tokens) == text
        res = sub.apply(np.array([ids[t] for t in tokens], dtype=np.uint32), np.array([0, len(tokens)]))
        got = "".join(names[i] for i in res.tokens.tolist())
        assert got == expected(tokens, candidates), (split, tokens)


def test_a_special_token_ends_a_run_of_joiners():
    vocab, ids = hand_vocab()
    special = len(ids)  # one more id, a special token (flags SPECIAL, no joiner flags)
    flags = np.append(vocab.tables["flags"], np.uint8(FLAG_SPECIAL))
    joiner_flags = np.append(vocab.tables["joiner_flags"], np.uint8(0))
    vocab = Vocab.from_entries(flags, list(vocab.entries()), ["xx"], joiner_flags=joiner_flags)
    names = {**{i: t for t, i in ids.items()}, special: "<s>"}
    sub = Substituter(vocab, ratio=1.0)
    for tokens, want in (
        (["lwn", ".", "<s>", "net"], "ZLWNZ.<s>ZNETZ"),
        (["lwn", "<s>", ".", "net"], "ZLWNZ<s>.ZNETZ"),
        (["lwn", ".", "net"], "lwn.net"),
    ):
        doc = [special if t == "<s>" else ids[t] for t in tokens]
        res = sub.apply(np.array(doc, dtype=np.uint32), np.array([0, len(doc)]))
        assert "".join(names[i] for i in res.tokens.tolist()) == want


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("spaced", [False, True])
def test_text_mode(native, spaced):
    vocab, _ = hand_vocab()
    sub = TextSubstituter(vocab, ratio=1.0, native=native)
    for text, candidates in EXAMPLES:
        text = " " + text if spaced else text  # the first word then matches in its spaced form
        want = expected(re.findall(SPLITS["alone"], text, re.S), candidates)
        assert sub.apply(text).text == want, text
        assert sub.apply(text).stats.candidates == len(candidates)


def test_token_and_text_mode_agree_with_a_real_tokenizer(tekken):
    """Tekken splits joiners every way (``.net``, ``://``, ``:\\``, ``(x``, ``._``, ``/K``): token
    mode replaces only candidates, and text mode with the tokenizer re-tokenizes to the same."""
    from link_fast.compiler import compile_vocab

    lexicon = Lexicon("xx", "joiner examples", {w: [translation(w)] for w in WORDS})
    vocab = compile_vocab(tekken, {"xx": lexicon}, progress=False)
    token_sub = Substituter(vocab, ratio=1.0)
    text_sub = TextSubstituter(vocab, ratio=1.0, tokenizer=tekken)
    replaced = 0
    for text, candidates in EXAMPLES:
        for spaced in ("", " "):
            ids = tekken.encode(spaced + text)
            res = token_sub.apply(np.array(ids, dtype=np.uint32), np.array([0, len(ids)]))
            out = tekken.decode(res.tokens.tolist())
            assert tekken.encode(text_sub.apply(spaced + text).text) == res.tokens.tolist(), text
            translated = {w for w in WORDS if translation(w) in out}
            assert translated <= candidates, (text, [tekken.decode([i]) for i in ids])
            replaced += len(translated)
    assert replaced >= 20


@pytest.mark.parametrize(
    ("text", "joiner_flags"),
    [
        (b"", 0),
        (b"net", 0),
        (b".", JOINER_ONLY),
        (b"://", JOINER_ONLY),
        (b".net", JOINER_THEN_WORD),
        (b"(x", JOINER_THEN_WORD),
        (b"lwn.", WORD_THEN_JOINER),
        (b"f(", WORD_THEN_JOINER),
        (b"._", JOINER_ONLY),
        (b"_x_", JOINER_THEN_WORD | WORD_THEN_JOINER),
        (b"a.b", 0),  # joiners inside the token: its neighbours see word characters
        (b" (", 0),  # the space is no word character
        (b".)", 0),
        (b". ", 0),
        (b".\xe2", JOINER_THEN_WORD),  # a byte that does not decode is a word character
        (b"\xa9.", WORD_THEN_JOINER),
        (b"'", JOINER_ONLY),
        ("\u2019".encode(), JOINER_ONLY),
        (b"'t", JOINER_THEN_WORD),
        ("\u2019s".encode(), JOINER_THEN_WORD),
        (b"don'", WORD_THEN_JOINER),
        (b"`", JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS),
        (b"``", JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS),
        (b":`", JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS),  # ':' then a backtick; a backtick ends it
        (b"`.", JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS),
        (b"`os", JOINERS_THEN_BACKTICK),
        (b":`os", JOINERS_THEN_BACKTICK),
        (b"os`", BACKTICK_THEN_JOINERS),
        (b"mod:`", BACKTICK_THEN_JOINERS),
        (b"`os`", JOINERS_THEN_BACKTICK | BACKTICK_THEN_JOINERS),
        (b" `", BACKTICK_THEN_JOINERS),  # a word after it would be next to the backtick
        (b"` ", JOINERS_THEN_BACKTICK),
        (b"_x`", JOINER_THEN_WORD | BACKTICK_THEN_JOINERS),
        (b"a`b", 0),
    ],
)
def test_joiner_flags_of_token_texts(text, joiner_flags):
    assert joiners_for_bytes(text) == joiner_flags


def test_a_vocabulary_with_impossible_joiner_flags_is_refused(tmp_path):
    flags = np.array([FLAG_SPECIAL, 1 | 4 | 16, 1 | 4 | 16, 0], dtype=np.uint8)
    entries = [Entry((1,), " a", {0: [((2,), " b")]})]
    for joiner_flags, problem in (
        ([JOINER_ONLY, 0, 0, 0], "marks a special token"),
        ([0, 0, 0, JOINER_ONLY | JOINER_THEN_WORD], "gives a token of joiners only another bit"),
        ([0, 0, 0, JOINER_ONLY | JOINERS_THEN_BACKTICK], "gives a token of joiners only another bit"),
        ([0, 0, 0, 32], "uses undefined bits"),
    ):
        path = Vocab.from_entries(flags, entries, ["xx"], joiner_flags=np.array(joiner_flags, dtype=np.uint8)).save(
            tmp_path / "v.lfv"
        )
        with pytest.raises(VocabError, match=f"'joiner_flags' {problem}"):
            Vocab.load(path)
    with pytest.raises(ValueError, match="joiner_flags has 3 entries"):
        Vocab.from_entries(flags, entries, ["xx"], joiner_flags=np.zeros(3, dtype=np.uint8))


def test_a_source_with_an_apostrophe_is_matched_whole(tekken):
    """A dictionary word that has the apostrophe in it (``don't``) is one match, the longest: the
    rule looks only past its edges. Token mode, and text mode with the tokenizer, agree."""
    from link_fast.compiler import compile_vocab

    words = {"don't": ["ZNOTZ"], "don": ["ZDONZ"], "know": ["ZKNOWZ"]}
    vocab = compile_vocab(tekken, {"xx": Lexicon("xx", "contractions", words)}, progress=False)
    token_sub = Substituter(vocab, ratio=1.0)
    text_sub = TextSubstituter(vocab, ratio=1.0, tokenizer=tekken)
    for text, want in (
        ("I don't know", "I ZNOTZ ZKNOWZ"),
        ("don't know.", "ZNOTZ ZKNOWZ."),
        ("I don't_know", "I don't_know"),  # joined past its edge
        ("`don't` know", "`don't` ZKNOWZ"),  # inline code
        ("I don't't know", "I don't't ZKNOWZ"),
    ):
        ids = tekken.encode(text)
        res = token_sub.apply(np.array(ids, dtype=np.uint32), np.array([0, len(ids)]))
        assert tekken.decode(res.tokens.tolist()) == want, text
        assert text_sub.apply(text).text == want, text
