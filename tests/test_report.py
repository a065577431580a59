"""``link-fast report`` on real runs (Tekken and SentencePiece, FreeDict vocabularies, the Python
documentation; one shard with a mask, one without): the page's numbers are the records', it
loads nothing from the network, it is the same for the same run, and a real browser renders it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from real_runs import make_run

from link_fast.cli import main
from link_fast.inspect import ShardPair

N_DOCS = 40


class Page(HTMLParser):
    """The report as data: each table's rows ({data-key: text}), the elements by id, every
    tag with an address, the number of SVG charts."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.ids: dict[str, str] = {}
        self.addresses: list[tuple[str, str]] = []
        self.svgs = 0
        self._table: str | None = None
        self._cell: str | None = None
        self._open_ids: list[tuple[str, str, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.svgs += tag == "svg"
        for name in ("src", "href", "xlink:href", "data"):
            if attrs.get(name):
                self.addresses.append((tag, attrs[name]))
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append({})
        elif tag == "td" and self._table is not None:
            self._cell = attrs.get("data-key")
            self.tables[self._table][-1][self._cell] = ""
        if "id" in attrs and tag in ("p", "code", "span", "pre"):
            self._open_ids.append((tag, attrs["id"], []))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "td":
            self._cell = None
        if self._open_ids and self._open_ids[-1][0] == tag:
            _, key, parts = self._open_ids.pop()
            self.ids[key] = "".join(parts)

    def handle_data(self, data):
        if self._table is not None and self._cell is not None:
            self.tables[self._table][-1][self._cell] += data
        for _, _, parts in self._open_ids:
            parts.append(data)


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module", params=["tekken", "sp_v1"])
def run_dir(request, tmp_path_factory, pydoc_documents) -> Path:
    """An output folder of two shards, one written with a mask, one without."""
    name = request.param
    tokenizer = request.getfixturevalue(name)
    vocab = request.getfixturevalue(f"{name}_vocab")
    root = tmp_path_factory.mktemp(f"report_{name}")
    documents = pydoc_documents[100 : 100 + N_DOCS]
    out = make_run(root / "a", tokenizer, vocab.path, documents[: N_DOCS // 2], shards=1, mask=True)
    plain = make_run(root / "b", tokenizer, vocab.path, documents[N_DOCS // 2 :], shards=1, mask=False)
    for path in plain.iterdir():  # one folder, two outputs: shard_0 (masked) and shard_1 (not)
        shutil.move(str(path), out / path.name.replace("shard_0", "shard_1"))
    record = json.loads((out / "shard_1.link.json").read_text())
    record["outputs"] = [p.replace("shard_0", "shard_1") for p in record["outputs"]]
    record["output_files"] = {k.replace("shard_0", "shard_1"): v for k, v in record["output_files"].items()}
    (out / "shard_1.link.json").write_text(json.dumps(record), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory) -> tuple[Path, Page, dict]:
    html_path = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(run_dir), "-o", str(html_path), "--samples", "30"]) == 0
    records = {p.name[: -len(".link.json")]: json.loads(p.read_text()) for p in sorted(run_dir.glob("*.link.json"))}
    return html_path, Page(html_path.read_text(encoding="utf-8")), records


def test_numbers_are_the_records(report):
    _, page, records = report
    assert set(records) == {"shard_0", "shard_1"}
    languages = records["shard_0"]["vocab"]["languages"]
    rows = {row["name"]: row for row in page.tables["shards"] if row}
    assert set(rows) == set(records)
    for name, record in records.items():
        stats, row = record["stats"], rows[name]
        for key in ("documents", "eligible_documents", "tokens_in", "tokens_out"):
            assert number(row[key]) == stats[key], (name, key)
        assert number(row["substitutions"]) == stats["total_substitutions"]
        for lang in languages:
            assert number(row[f"substitutions_{lang}"]) == stats["substitutions"][lang]
        assert row["mask"] == ("yes" if record["mask_shard"] else "no")
    totals = {row["language"]: number(row["substitutions"]) for row in page.tables["languages"] if row}
    for lang in languages:
        assert totals[lang] == sum(r["stats"]["substitutions"][lang] for r in records.values())
    assert totals["all"] == sum(r["stats"]["total_substitutions"] for r in records.values()) > 20
    assert page.ids["fingerprint"] == records["shard_0"]["vocab"]["fingerprint"]
    options = json.loads(page.ids["options"])
    assert options["options"]["ratio"] == records["shard_0"]["config"]["ratio"]
    assert options["vocabulary"] == records["shard_0"]["vocab"]


def test_word_table_and_growth_are_those_of_the_documents(report, run_dir):
    _, page, records = report
    assert number(page.ids["sampled"]) == N_DOCS  # --samples 30 of 20 documents a shard: every document
    words = {row["source"]: number(row["count"]) for row in page.tables["words"] if row}
    counted: dict[str, int] = {}
    for name in records:
        pair = ShardPair(run_dir / name)
        for doc in range(pair.count):
            for span in pair.spans(doc)[2]:
                key = span.source.strip().lower()
                counted[key] = counted.get(key, 0) + 1
    for word, count in words.items():
        assert counted[word] == count
    assert max(counted.values()) == max(words.values())
    documents = sum(r["stats"]["documents"] for r in records.values())
    assert page.ids["growth"].startswith(f"{documents:,} documents: mean +")
    assert page.svgs >= 2


def test_self_contained_and_deterministic(report, run_dir, tmp_path):
    html_path, page, _ = report
    assert not [a for a in page.addresses if not a[1].startswith("#")], page.addresses
    again = tmp_path / "again.html"
    assert main(["report", str(run_dir), "-o", str(again), "--samples", "30"]) == 0
    assert again.read_bytes() == html_path.read_bytes()


def test_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "r.html")]) == 2
    assert "nothing: no such directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no .link.json record" in err[0]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # without charts, the same errors
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "no .link.json record" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_renders_in_a_headless_browser(report, tmp_path):
    html_path, _, records = report
    browser = _browser()
    if browser is None:
        if os.environ.get("CI") or os.environ.get("LINK_FAST_REQUIRE_FIXTURES", "") not in ("", "0"):
            pytest.fail("no chromium: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium installed")
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"]
    url = html_path.resolve().as_uri()
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page(dom.stdout)  # the document as the browser built it
    assert {row["name"] for row in page.tables["shards"] if row} == set(records)
    assert page.svgs >= 2
    assert "CONSOLE" not in dom.stderr and "Failed to load" not in dom.stderr
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
