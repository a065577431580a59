"""The vocabulary file format (docs/DESIGN.md §8): layout, round trip, versions, identity.

Validation of damaged files is tests/test_vocab_safety.py; this file pins what a good file is.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from link_fast.errors import VocabError
from link_fast.vocab import ARRAY_DTYPES, FORMAT_VERSION, MAGIC, Entry, Vocab

PREFIX = struct.Struct("<8sIIQ")  # magic, version, reserved, header length: restated, not imported


def small_vocab() -> Vocab:
    flags = np.full(50, 1 | 2 | 4 | 16, dtype=np.uint8)  # spaced word tokens
    entries = [
        Entry((3,), " cat", {0: [((10,), " Katze")], 1: [((11,), " chat")]}),
        Entry((3, 4), " ice cream", {0: [((12, 13), " Eis")]}),
        Entry((5,), " dog", {1: [((14,), " chien"), ((15,), " toutou")]}),
    ]
    return Vocab.from_entries(flags, entries, ["de", "fr"], tokenizer={"name": "t", "kind": "test", "fingerprint": "f"})


def read_layout(path):
    raw = path.read_bytes()
    magic, version, reserved, header_length = PREFIX.unpack_from(raw, 0)
    header = json.loads(raw[PREFIX.size : PREFIX.size + header_length])
    data_start = -(-(PREFIX.size + header_length) // 64) * 64
    return raw, magic, version, reserved, header, data_start


def test_file_starts_with_magic_version_and_a_json_object_header(tmp_path):
    path = small_vocab().save(tmp_path / "v.lfv")
    raw, magic, version, reserved, header, data_start = read_layout(path)
    assert magic == MAGIC == b"LINKFAST"
    assert version == FORMAT_VERSION
    assert reserved == 0
    assert header["languages"] == ["de", "fr"]
    assert header["vocab_size"] == 50
    assert header["tokenizer"]["fingerprint"] == "f"
    assert set(header["arrays"]) == set(ARRAY_DTYPES)


def test_every_table_is_64_byte_aligned_and_holds_its_array(tmp_path):
    vocab = small_vocab()
    path = vocab.save(tmp_path / "v.lfv")
    raw, _, _, _, header, data_start = read_layout(path)
    assert data_start % 64 == 0
    for name, dtype in ARRAY_DTYPES.items():
        entry = header["arrays"][name]
        start = data_start + entry["offset"]
        assert start % 64 == 0, name
        stored = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=entry["count"], offset=start)
        assert np.array_equal(stored, vocab.tables[name]), name


def test_round_trip_keeps_entries_and_memory_maps(tmp_path):
    vocab = small_vocab()
    loaded = Vocab.load(vocab.save(tmp_path / "v.lfv"))
    assert list(loaded.entries()) == list(vocab.entries())
    assert loaded.translations(2, 1) == [((14,), " chien"), ((15,), " toutou")]
    assert loaded.key_text(1) == " ice cream"
    assert not loaded.tables["trans_tokens"].flags.owndata  # a view of the mapping, not a copy


def test_saving_is_byte_reproducible(tmp_path):
    a = small_vocab().save(tmp_path / "a.lfv").read_bytes()
    b = small_vocab().save(tmp_path / "b.lfv").read_bytes()
    assert a == b


def test_another_format_version_is_refused_with_a_recompile_hint(tmp_path):
    path = small_vocab().save(tmp_path / "v.lfv")
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 8, FORMAT_VERSION + 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(VocabError, match="recompile"):
        Vocab.load(path)


def test_identity_names_the_file_and_a_changed_file_is_refused_to_workers(tmp_path):
    path = small_vocab().save(tmp_path / "v.lfv")
    first = Vocab.load(path)
    assert first.identity.size == path.stat().st_size
    assert Vocab.load(path, validated=first.identity).n_keys == 3
    small_vocab().save(path)  # replaced under the same name: another inode
    with pytest.raises(VocabError, match="changed on disk"):
        Vocab.load(path, validated=first.identity)
