"""Text mode (link-fast text) against the naive regex script, file to file on the same documents
(the pydoc corpus's text, eng-deu, Tekken); ``link-fast bench`` reports the same as a ratio."""

from conftest import RATIO


def test_text_mode_against_the_naive_script(benchmark, bench_paths, sample, record_rate):
    from link_fast.text.bench import format_text_report, run_text_bench

    report = benchmark.pedantic(
        run_text_bench,
        args=(bench_paths["vocab"], sample.texts),
        kwargs=dict(ratio=RATIO, repeat=3, workers=(1, 2)),
        rounds=1,
        iterations=1,
    )
    print("\n" + format_text_report(report))
    benchmark.extra_info.update({f"MB_per_s {k}": round(v, 3) for k, v in report["mb_s"].items()})
    benchmark.extra_info.update({k: round(v, 3) for k, v in report["ratios"].items()})
    record_rate(benchmark, sample.n_tokens)
