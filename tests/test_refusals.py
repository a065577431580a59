"""Refusals found by an adversarial pass: each is one line, status 2 (143 for SIGTERM), nothing
left behind, the inputs untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_runner import random_vocab, run_cli, write_shard


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
    return random_vocab().save(tmp_path_factory.mktemp("vocab") / "v.lfv")


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("link-fast"), proc.stderr
    return lines[0]


def test_compile_refuses_to_write_over_its_dictionary(tmp_path):
    dictionary = tmp_path / "de.txt"
    dictionary.write_text("cat Katze\n", encoding="utf-8")
    before = dictionary.read_bytes()
    line = one_error_line(
        run_cli("compile", "--tokenizer", "nonexistent.json", "--dict", f"de={dictionary}", "-o", dictionary)
    )
    assert "would overwrite the input" in line
    assert dictionary.read_bytes() == before


def test_text_refuses_a_hard_link_to_its_input(tmp_path, vocab_path):
    source = tmp_path / "a.jsonl"
    source.write_text(json.dumps({"text": "1 2 3"}) + "\n", encoding="utf-8")
    os.link(source, tmp_path / "b.jsonl")
    line = one_error_line(run_cli("text", "--vocab", vocab_path, "--ratio", "0.5", "-o", tmp_path / "b.jsonl", source))
    assert "would overwrite its input" in line


def test_text_refuses_substitutions_in_the_text_field(tmp_path, vocab_path):
    source = tmp_path / "a.jsonl"
    source.write_text(json.dumps({"text": "1 2 3"}) + "\n", encoding="utf-8")
    line = one_error_line(
        run_cli(
            "text",
            "--vocab",
            vocab_path,
            "--ratio",
            "0.5",
            "--substitutions-field",
            "text",
            "-o",
            tmp_path / "out.jsonl",
            source,
        )
    )
    assert "substitutions_field" in line
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("which", ["vocab", "idx", "bin"])
def test_a_fifo_input_is_refused_not_waited_on(tmp_path, vocab_path, which):
    write_shard(tmp_path / "in" / "a", n_docs=5)
    vocab = vocab_path
    if which == "vocab":
        vocab = tmp_path / "v.lfv"
        os.mkfifo(vocab)
    else:
        os.unlink(tmp_path / "in" / f"a.{which}")
        os.mkfifo(tmp_path / "in" / f"a.{which}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "link_fast",
            "apply",
            "--vocab",
            str(vocab),
            "--ratio",
            "0.5",
            "-o",
            str(tmp_path / "out"),
            str(tmp_path / "in" / "a"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "not a regular file" in one_error_line(proc)
    assert not (tmp_path / "out").exists()  # the folder a failed run made is removed


def test_a_bad_option_value_is_one_line(vocab_path, tmp_path):
    line = one_error_line(run_cli("apply", "--vocab", vocab_path, "--ratio", "abc", "-o", tmp_path, tmp_path))
    assert "--ratio" in line and "invalid float" in line


def test_sigterm_stops_the_workers_and_removes_temporaries(tmp_path, vocab_path):
    for i in range(16):  # far more work than the moment SIGTERM comes: the run cannot finish first
        write_shard(tmp_path / "in" / f"s{i}", n_docs=3000, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "link_fast",
            "apply",
            "--vocab",
            str(vocab_path),
            "--ratio",
            "0.5",
            "--workers",
            "2",
            "--chunk-tokens",
            "2000",
            "-q",
            "-o",
            str(out),
            str(tmp_path / "in"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(out.glob("*.link.json")) and time.monotonic() < deadline:  # mid-run: one shard done
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "link-fast: terminated"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
