"""The link-fast command through a real subprocess: exit codes, messages, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("mistral_common")


def run(*args, cwd=None):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "link_fast", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def tekken_path():
    from importlib import resources

    return str(resources.files("mistral_common") / "data" / "tekken_240911.json")


def test_demo_prints_before_after_and_statistics():
    proc = run("demo", "--ratio", "0.5", "--color", "never")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "--- before" in out and "+++ after" in out and "statistics" in out
    assert "[Fuchs]" in out or "[renard]" in out or "[Trauben]" in out or "[raisins]" in out
    assert "substitutions" in out


def test_compile_and_info(tmp_path, tekken_path):
    (tmp_path / "de.txt").write_text("cat\tKatze\nhouse\tHaus\n", encoding="utf-8")
    out = tmp_path / "v.lfv"
    proc = run("compile", "--tokenizer", tekken_path, "--dict", f"de={tmp_path / 'de.txt'}", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "keys" in proc.stderr
    info = run("info", str(out))
    assert info.returncode == 0 and "tekken_240911.json" in info.stdout and "de" in info.stdout
    meta = json.loads(run("info", "--json", str(out)).stdout)
    assert meta["languages"] == ["de"] and meta["report"]["languages"]["de"]["sources"] == 2


@pytest.mark.parametrize(
    "files, args, message",
    [
        ({"de.txt": "cat\tKatze\nbroken\n"}, ["--dict", "de=de.txt"], "de.txt:2: line has no translation"),
        ({"de.txt": "cat\tKatze\n"}, ["--dict", "de=missing.txt"], "missing.txt: no such file"),
        (
            {"de.txt": "cat\tKatze\n", "tok.json": "{}"},
            ["--dict", "de=de.txt", "--tokenizer", "tok.json"],
            "tok.json: JSON of unknown shape",
        ),
    ],
)
def test_compile_errors_are_one_line_and_leave_no_output(tmp_path, tekken_path, files, args, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if "--tokenizer" not in args:
        args = ["--tokenizer", tekken_path, *args]
    proc = run("compile", *args, "-o", "out.lfv", "-q", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.lfv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.lfv")]


def test_unwritable_output_and_bad_vocab(tmp_path, tekken_path):
    (tmp_path / "de.txt").write_text("cat\tKatze\n", encoding="utf-8")
    proc = run(
        "compile", "--tokenizer", tekken_path, "--dict", "de=de.txt", "-o", "no/such/dir/v.lfv", "-q", cwd=tmp_path
    )
    assert proc.returncode != 0 and "no/such/dir" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.lfv").write_bytes(b"garbage")
    proc = run("info", str(tmp_path / "bad.lfv"))
    assert proc.returncode == 2 and "bad.lfv: not a link_fast vocabulary" in proc.stderr


def _small_disk() -> None:
    """In the child: files end at 64 KiB, and a write past that fails with EFBIG (SIGXFSZ
    ignored), as one fails with ENOSPC on a full disk."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))


def test_a_full_disk_at_compile_names_the_vocabulary(tmp_path, tekken_path):
    (tmp_path / "de.txt").write_text("cat\tKatze\nhouse\tHaus\n", encoding="utf-8")
    args = ["compile", "--tokenizer", tekken_path, "--dict", "de=de.txt", "-o", "v.lfv", "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "link_fast", *args], capture_output=True, text=True, cwd=tmp_path, preexec_fn=_small_disk
    )
    assert proc.returncode == 2 and proc.stderr == "link-fast: error: v.lfv: cannot write: File too large\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de.txt"]


def test_version_and_bare_command_print_and_succeed(capsys):
    from link_fast import __version__
    from link_fast.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"link-fast {__version__}"
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_every_option_and_argument_has_help():
    import argparse

    from link_fast.cli import build_parser

    parser = build_parser()
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for group in parser._subparsers._group_actions
        for name, sub in group.choices.items()
        for action in sub._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert not missing
