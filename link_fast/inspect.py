"""``link-fast inspect``: documents of an output before and after, substitutions marked.

What to compare comes from the output's record ``NAME.link.json``: the input shard, the
vocabulary (``vocab_path``) and, through the vocabulary's header, the tokenizer's path; each
can be given instead (``--input``, ``--vocab``, ``--tokenizer``). Substitutions are found from
the mask when the run wrote one, otherwise by aligning input and output (``link_fast.align``).
Outputs of ``link-fast text`` are read as lines; their substitutions come from the field
``--substitutions-field`` wrote (positions, source, translation and language each).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .align import Keys, Span, align
from .errors import FileError, InputError
from .highlight import Mark, Piece, pieces, terminal, use_color
from .shards import LINK_RECORD_SUFFIX, ShardError, load_record, open_shard
from .shards.discovery import split_prefix
from .shards.records import recorded_paths
from .terminal import printable

LAYOUTS = ("interleaved", "side-by-side")


@dataclass
class Document:
    """One document of an output, before and after, with its substitutions marked in both."""

    index: int
    before: list[Piece]
    after: list[Piece]
    size_before: int  # tokens, or characters in text mode
    size_after: int
    substitutions: list[tuple[str, str, str]] = field(default_factory=list)  # (source, translation, language)
    unit: str = "tokens"


def read_record(output) -> tuple[Path, dict]:
    """The record of an output given as its prefix, one of its files or the record itself."""
    text = os.fspath(output)
    if text.endswith(LINK_RECORD_SUFFIX):
        path = Path(text)
    else:
        path = Path(split_prefix(text)[0] + LINK_RECORD_SUFFIX)
        if not path.is_file() and Path(text + LINK_RECORD_SUFFIX).is_file():
            path = Path(text + LINK_RECORD_SUFFIX)
    if not os.path.lexists(path):
        raise FileError(path, "no such file: not an output of link-fast apply or text (or give NAME.link.json)")
    record = load_record(path)
    if not isinstance(record.get("stats"), dict):
        raise FileError(path, "not a link-fast run record (no statistics object)")
    return path, record


def recorded(record_path: Path, record: dict, key: str, given, what: str) -> str:
    """``given`` if set, else where the record's path ``key`` is now (the first of
    ``recorded_places``); a clear error naming the option."""
    if given is not None:
        return os.fspath(given)
    return recorded_places(record_path, record, record.get(key), what)[0]


def recorded_places(record_path: Path, record: dict, value, what: str) -> list[str]:
    """The places that exist, in the order to try, where a path ``value`` of the record may be
    now (``recorded_paths``: from the record's folder, then from where it was written); an error
    naming the option when there is no such path or none of its places exists."""
    if not isinstance(value, str) or not value:
        raise FileError(record_path, f"records no {what} path: give {_option(what)}")
    places = [p for p in recorded_paths(record_path, record, value) if os.path.exists(p)]
    if not places:
        raise FileError(record_path, f"the {what} it records, {value}, is gone: give {_option(what)}")
    return places


def _option(what: str) -> str:
    return {"input": "--input", "vocabulary": "--vocab", "tokenizer": "--tokenizer"}[what]


def load_vocab_and_tokenizer(record_path: Path, record: dict, vocab_path, tokenizer_path, cache=None):
    """The vocabulary the output was made with (checked against the record), its tokenizer and
    its ``Keys``; ``cache`` (a dict) keeps them for the next output of the same run."""
    from .tokenizer import load_tokenizer

    cache = {} if cache is None else cache
    vocab = _made_with_vocab(record_path, record, vocab_path, cache)
    key = (os.path.abspath(vocab.path), None if tokenizer_path is None else os.fspath(tokenizer_path))
    if key not in cache:
        tokenizer = load_tokenizer(
            recorded(Path(vocab.path), vocab.meta.get("tokenizer", {}), "path", tokenizer_path, "tokenizer")
        )
        vocab.check_tokenizer(tokenizer.fingerprint, tokenizer.name)
        cache[key] = (tokenizer, Keys(vocab))
    tokenizer, keys = cache[key]
    return vocab, tokenizer, keys


def _made_with_vocab(record_path: Path, record: dict, given, cache: dict):
    """The vocabulary ``given`` (--vocab) or that the record names, whose fingerprint and keys are
    the record's: of the places the record's path may name, the first that holds it."""
    from .vocab import Vocab

    want = record["vocab"] if isinstance(record.get("vocab"), dict) else {}
    places = (
        [os.fspath(given)]
        if given is not None
        else recorded_places(record_path, record, record.get("vocab_path"), "vocabulary")
    )
    for path in places:
        key = ("vocabulary", os.path.abspath(path))
        if key not in cache:
            cache[key] = Vocab.load(path)
        vocab = cache[key]
        if want.get("fingerprint") in (None, vocab.fingerprint) and want.get("keys") in (None, vocab.n_keys):
            return vocab
    raise FileError(record_path, f"was not made with the vocabulary {places[0]} (its fingerprint or keys differ)")


def open_input(record_path: Path, record: dict, given):
    """The input shard an ``apply`` output was made from: ``given`` (--input), or the first place
    the record's path may name. A shard whose fingerprint differs from the one the record holds
    is not that input (another shard of the same name): never read as it."""
    inputs = record.get("inputs")
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else None
    places = [os.fspath(given)] if given is not None else recorded_places(record_path, record, first, "input")
    identity = record.get("input")
    want = identity.get("fingerprint") if isinstance(identity, dict) else None
    for place in places:
        shard = open_shard(split_prefix(place)[0])
        if not isinstance(want, str) or _fingerprint(shard) == want:
            return shard
        shard.close()
    if given is not None:
        raise FileError(
            given, f"not the input {record_path.name} was made from (its fingerprint differs from the record's)"
        )
    raise FileError(
        record_path,
        f"the input it records, {first}, is another shard at {' and '.join(places)} (its fingerprint differs): "
        "give --input",
    )


def _fingerprint(shard) -> str:
    from .runner.outputs import input_identity

    return input_identity(shard)["fingerprint"]


class ShardPair:
    """An ``apply`` output and its input, documents aligned one by one."""

    def __init__(self, output, input_path=None, vocab_path=None, tokenizer_path=None, cache=None):
        self.record_path, record = read_record(output)
        self.vocab, self.tokenizer, self.keys = load_vocab_and_tokenizer(
            self.record_path, record, vocab_path, tokenizer_path, cache
        )
        out_prefix = str(self.record_path)[: -len(LINK_RECORD_SUFFIX)]
        self.before, self.after = open_input(self.record_path, record, input_path), open_shard(out_prefix)
        mask = record.get("mask_shard")
        self.mask = open_shard(os.path.join(os.path.dirname(out_prefix), mask)) if isinstance(mask, str) else None
        for other in (self.before, self.mask):
            if other is not None and other.n_sequences != self.after.n_sequences:
                raise ShardError(
                    other.paths[1],
                    f"{other.n_sequences} sequences, the output {self.after.name} has {self.after.n_sequences}",
                )
        self.languages = tuple(self.vocab.languages)
        self.count = self.after.n_sequences

    def tokens(self, shard, doc: int) -> np.ndarray:
        a, b = shard.offsets(doc, doc + 1)
        return np.asarray(shard.tokens[int(a) : int(b)])

    def spans(self, doc: int) -> tuple[np.ndarray, np.ndarray, list[Span]]:
        before, after = self.tokens(self.before, doc), self.tokens(self.after, doc)
        mask = None if self.mask is None else self.tokens(self.mask, doc)
        try:
            return before, after, align(self.keys, before, after, mask)
        except InputError:
            raise ShardError(
                self.after.paths[0],
                f"document {doc} is not document {doc} of {self.before.prefix} rewritten with {self.vocab.path} "
                "(wrong --input or --vocab?)",
            ) from None

    def document(self, doc: int) -> Document:
        before, after, spans = self.spans(doc)
        decode = self.tokenizer.decode
        return Document(
            doc,
            pieces(lambda a, b: decode(before[a:b]), len(before), [_mark(s, before=True) for s in spans]),
            pieces(lambda a, b: decode(after[a:b]), len(after), [_mark(s) for s in spans]),
            len(before),
            len(after),
            [(s.source.strip(), s.translation.strip(), "/".join(s.languages)) for s in spans],
        )

    def close(self) -> None:
        for shard in (self.before, self.after, self.mask):
            if shard is not None:
                shard.close()


def _mark(span: Span, before: bool = False) -> Mark:
    """The mark of a substitution in the output, or of the word it replaced in the input."""
    label = "/".join(span.languages)
    title = f"{span.source.strip()} \u2192 {span.translation.strip()} ({label})"
    if before:
        return Mark(span.in_start, span.in_end, label, title)
    return Mark(span.out_start, span.out_end, label, title)


def _text_input(record_path: Path, record: dict, given) -> str:
    """The input a ``text`` output was made from: ``given`` (--input), or the first place the
    record's path may name whose size is the one recorded (another file of the same name is not it)."""
    if given is not None:
        return os.fspath(given)
    places = recorded_places(record_path, record, record.get("input"), "input")
    size = record.get("input_bytes")
    for place in places:
        if size is None or not os.path.isfile(place) or os.path.getsize(place) == size:
            return place  # one that is not a regular file is refused when read, by name
    raise FileError(
        record_path, f"the input it records, {record['input']}, is another file now (its size differs): give --input"
    )


class TextPair:
    """A ``link-fast text`` output (``.jsonl`` with a substitutions field) and its input."""

    def __init__(self, output, input_path=None, substitutions_field: str | None = None):
        self.record_path, record = read_record(output)
        self.output = str(self.record_path)[: -len(LINK_RECORD_SUFFIX)]
        self.input = _text_input(self.record_path, record, input_path)
        self.field = record.get("field") if isinstance(record.get("field"), str) else "text"
        self.subs_field = substitutions_field or record.get("substitutions_field")
        if not self.output.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")) or not isinstance(self.subs_field, str):
            raise FileError(
                self.record_path,
                "inspect reads text outputs written as .jsonl with --substitutions-field "
                "(give it if the record lacks it)",
            )
        skipped = record["skipped"] if isinstance(record.get("skipped"), list) else []
        self.skipped = {s.get("line") for s in skipped if isinstance(s, dict)}
        if record.get("skipped_lines", 0) != len(self.skipped):
            raise FileError(self.record_path, "more bad lines were skipped than it lists: lines cannot be paired")
        self.languages = tuple(record["vocab"]["languages"]) if isinstance(record.get("vocab"), dict) else ()
        self.count = None

    def documents(self) -> Iterator[Document]:
        from .text.files import iter_lines

        outputs = iter_lines(self.output)
        for number, raw in iter_lines(self.input):
            if number in self.skipped or (isinstance(raw, bytes) and not raw.strip()):
                continue
            out_number, out_raw = next(outputs, (None, None))
            if out_number is None:
                raise FileError(self.output, f"has fewer lines than {self.input}")
            before = self._field(self.input, number, raw, self.field)
            record = self._json(self.output, out_number, out_raw)
            yield self._document(number - 1, before, record, out_number)

    def _json(self, path, number, raw) -> dict:
        try:
            record = json.loads(raw) if isinstance(raw, bytes) else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise FileError(path, "not a JSON object", number)
        return record

    def _field(self, path, number, raw, name) -> str:
        value = self._json(path, number, raw).get(name)
        if not isinstance(value, str):
            raise FileError(path, f"no string field {name!r}", number)
        return value

    def _document(self, doc: int, before: str, record: dict, number: int) -> Document:
        after, subs = record.get(self.field), record.get(self.subs_field)
        if not isinstance(after, str) or not isinstance(subs, list):
            raise FileError(self.output, f"no string {self.field!r} or list {self.subs_field!r}", number)
        in_marks, out_marks, found, shift = [], [], [], 0
        for s in subs:
            try:
                start, end, source, translation, lang = (
                    s[k] for k in ("start", "end", "source", "translation", "language")
                )
                ok = after[start:end] == translation and before[start - shift : start - shift + len(source)] == source
            except (TypeError, KeyError):
                ok = False
            if not ok:
                raise FileError(self.output, f"substitution {s!r} does not match the texts", number)
            in_marks.append(Mark(start - shift, start - shift + len(source), lang))
            out_marks.append(Mark(start, end, lang, f"{source} \u2192 {translation} ({lang})"))
            found.append((source, translation, lang))
            shift += len(translation) - len(source)
        return Document(
            doc,
            pieces(lambda a, b: before[a:b], len(before), in_marks),
            pieces(lambda a, b: after[a:b], len(after), out_marks),
            len(before),
            len(after),
            found,
            "characters",
        )

    def close(self) -> None:
        pass


def open_pair(output, input_path=None, vocab_path=None, tokenizer_path=None, substitutions_field=None):
    """The output to inspect: a shard written by ``apply`` or a file written by ``text``."""
    record_path, record = read_record(output)
    if "outputs" in record:
        return ShardPair(record_path, input_path, vocab_path, tokenizer_path)
    return TextPair(record_path, input_path, substitutions_field)


def matches(document: Document, word: str) -> bool:
    """Whether ``word`` was substituted in the document, as the source or the translation."""
    word = word.strip().casefold()
    return any(word in (source.casefold(), translation.casefold()) for source, translation, _ in document.substitutions)


def select(
    pair, docs: Sequence[int], random: int | None, seed: int, grep: str | None, limit: int
) -> Iterator[Document]:
    """The documents to show: ``docs``, else ``random`` of them (seeded), else all in order;
    those with ``grep`` substituted; at most ``limit``."""
    if pair.count is None:  # text: lines are read in order
        chosen: Iterator[Document] = (d for d in pair.documents() if not docs or d.index in set(docs))
    else:
        for doc in docs:
            if not 0 <= doc < pair.count:
                raise InputError(f"--doc {doc}: the output has {pair.count} documents (0..{pair.count - 1})")
        if not docs and random is not None:
            rng = np.random.default_rng(seed)
            docs = sorted(rng.choice(pair.count, size=min(random, pair.count), replace=False).tolist())
        chosen = (pair.document(d) for d in (docs or range(pair.count)))
    shown = 0
    for document in chosen:
        if grep is None or matches(document, grep):
            yield document
            shown += 1
            if shown >= limit:
                return


def show(document: Document, layout: str, color: bool, languages: Sequence[str], width: int) -> str:
    """One document for the terminal."""
    counts: dict[str, int] = {}
    for _, _, lang in document.substitutions:
        counts[lang] = counts.get(lang, 0) + 1
    summary = ", ".join(f"{printable(lang)} {n}" for lang, n in counts.items()) or "none"
    head = (
        f"=== document {document.index}: {document.size_before:,} -> {document.size_after:,} {document.unit}, "
        f"{len(document.substitutions)} substitutions ({summary})"
    )
    before = terminal(document.before, color, languages, show_labels=False)
    after = terminal(document.after, color, languages)
    if layout == "interleaved":
        return f"{head}\n--- before\n{before}\n+++ after\n{after}\n"
    column = max(20, (width - 3) // 2)
    left = wrap(document.before, column, color, languages, show_labels=False)
    right = wrap(document.after, column, color, languages)
    rows = [f"{'before':<{column}} | after"]
    for i in range(max(len(left), len(right))):
        text, visible = left[i] if i < len(left) else ("", 0)
        rows.append(text + " " * (column - visible) + " | " + (right[i][0] if i < len(right) else ""))
    return head + "\n" + "\n".join(rows) + "\n"


_WORDS = re.compile(r"\n|[^\S\n]+|[^\s]+")


def wrap(
    document: Sequence[Piece], width: int, color: bool, languages: Sequence[str], show_labels: bool = True
) -> list[tuple[str, int]]:
    """The document wrapped to ``width`` columns: (rendered line, visible width) each; a marked
    word is never broken."""
    lines: list[tuple[str, int]] = []
    line, visible = "", 0
    for piece in document:
        parts = [piece.text] if piece.mark is not None else _WORDS.findall(piece.text)
        for part in parts:
            if part == "\n":
                lines.append((line, visible))
                line, visible = "", 0
                continue
            shown = terminal([Piece(part, piece.mark)], color, languages, show_labels)
            size = len(terminal([Piece(part, piece.mark)], False, languages, show_labels))
            if part.isspace():
                if visible and visible + size <= width:
                    line, visible = line + shown, visible + size
                continue
            if visible and visible + size > width:
                lines.append((line, visible))
                line, visible = "", 0
            line, visible = line + shown, visible + size
    if line:
        lines.append((line, visible))
    return lines


def run_inspect(args: Any, out: TextIO | None = None) -> int:
    """``link-fast inspect`` with its parsed options."""
    out = out or sys.stdout
    for option, value in (("--random", args.random), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise InputError(f"{option} must be a positive number, got {value}")
    pair = open_pair(args.output, args.input, args.vocab, args.tokenizer, args.substitutions_field)
    color = use_color(args.color, out)
    width = shutil.get_terminal_size((160, 24)).columns
    limit = args.limit if args.limit is not None else (len(args.doc) or args.random or 3)
    try:
        shown = 0
        for document in select(pair, args.doc, args.random, args.seed, args.grep, limit):
            out.write(show(document, args.layout, color, pair.languages, width) + "\n")
            shown += 1
    finally:
        pair.close()
    if not shown:
        out.write("no document matched\n" if args.grep else "no documents\n")
    return 0
