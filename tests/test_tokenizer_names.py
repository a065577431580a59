"""`--tokenizer` takes a file, a name shipped with a package, or a Hugging Face Hub repo id."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mistral_data
from trained_tokenizer import train_byte_level

from link_fast.errors import TokenizerError
from link_fast.tokenizer import NAMED_TOKENIZERS, load_tokenizer, resolve_tokenizer


def test_named_tokenizers_are_the_package_files() -> None:
    data = mistral_data()
    for name, (_, file) in NAMED_TOKENIZERS.items():
        assert resolve_tokenizer(name) == data / Path(file).name
    assert load_tokenizer("tekken").fingerprint == load_tokenizer(data / "tekken_240911.json").fingerprint
    assert load_tokenizer("mistral-v1").kind == "sentencepiece"


def test_a_local_file_wins_over_a_name(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "tekken").write_bytes((mistral_data() / "tokenizer.model.v1").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert load_tokenizer("tekken").kind == "sentencepiece"


def test_unknown_name_is_one_line_listing_the_names() -> None:
    with pytest.raises(TokenizerError) as e:
        resolve_tokenizer("tekkn")
    message = str(e.value)
    assert "\n" not in message and message.startswith("tekkn: no such file")
    assert all(name in message for name in NAMED_TOKENIZERS)


@pytest.mark.parametrize("missing", ["models/tokenizer.json", "tests/nope", "owner/tokenizer.model"])
def test_a_missing_local_path_is_not_sent_to_the_hub(missing: str, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("looked up the network for a local path")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(TokenizerError, match="no such file"):
        resolve_tokenizer(missing)


def test_an_unreachable_hub_fails_at_once_with_one_line(monkeypatch) -> None:
    pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-cache")
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    with pytest.raises(TokenizerError) as e:
        resolve_tokenizer("someone/some-model")
    assert str(e.value) == (
        "someone/some-model: no such file, and the Hugging Face Hub (huggingface.co) cannot be reached "
        "(Name or service not known); offline?"
    )


def _fake_hub_cache(cache: Path, repo: str, tokenizer_json: Path) -> None:
    """The layout huggingface_hub keeps downloads in: refs/main names a snapshot folder."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())


def test_a_hub_repo_id_compiles_from_the_cache_offline(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    pytest.importorskip("tokenizers")
    tokenizer_json = train_byte_level(tmp_path / "trained.json", ["the cat sat on the mat. " * 20, "a dog"], 400)
    _fake_hub_cache(tmp_path / "hub", "someone/tiny-model", tokenizer_json)
    (tmp_path / "en-de.txt").write_text("cat Katze\ndog Hund\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "link_fast", "compile", "--tokenizer", "someone/tiny-model"]
    cmd += ["--dict", f"de={tmp_path / 'en-de.txt'}", "-o", str(tmp_path / "out.lfv"), "-q"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from link_fast import Vocab

    vocab = Vocab.load(tmp_path / "out.lfv")
    assert vocab.meta["tokenizer"]["fingerprint"] == load_tokenizer(tokenizer_json).fingerprint
