"""The ``link-fast`` command line: compile, info, lookup, pairs, apply, text, validate, bench, demo.

Errors a user can cause print one line, ``link-fast: error: FILE: problem``, and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import InputError, LinkFastError
from .io import refuse_link, same_file
from .sampling import LANG_SCOPES, OPTION_NAMES, RATIO_BASES, Sampling
from .terminal import printable
from .weights import TRANSLATION_WEIGHTS

EXIT_USAGE = 2
TOKENIZER_HELP = (
    "a tokenizer file (HF tokenizer.json, SentencePiece .model, Tekken JSON, .tiktoken) or model folder; "
    "a name shipped with mistral-common (tekken, mistral-v1, mistral-v3, mistral-v7); or a Hugging Face "
    "Hub repo id (owner/name, fetched once into the HF cache)"
)


def _lang_path(text: str) -> tuple[str, str]:
    lang, sep, path = text.partition("=")
    if not sep or not lang or not path:
        raise argparse.ArgumentTypeError(f"expected LANG=PATH, got {text!r}")
    return lang, path


def _byte_size(text: str) -> int:
    """A byte count: digits with an optional K, M or G (powers of 1024)."""
    number, scale = text.strip(), 1
    if number[-1:].upper() in ("K", "M", "G"):
        number, scale = number[:-1], 1 << (10 * " KMG".index(number[-1].upper()))
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of bytes like 67108864 or 64M, got {text!r}")
    return int(number) * scale


def _csv(choices):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(choices)}, got {text!r}")
        return items

    return parse


def _add_cleaning_options(p: argparse.ArgumentParser) -> None:
    from .lexicon import CleaningOptions

    d = CleaningOptions()
    g = p.add_argument_group("dictionary cleaning")
    g.add_argument(
        "--max-translations",
        type=int,
        default=d.max_translations,
        metavar="N",
        help="keep at most N translations per source word, the most frequent (or the first with "
        f"--translation-weights uniform); 0 = all (default {d.max_translations})",
    )
    g.add_argument(
        "--max-translation-words",
        type=int,
        default=d.max_translation_words,
        metavar="N",
        help=f"drop translations of more than N words; 0 = no limit (default {d.max_translation_words})",
    )
    g.add_argument(
        "--max-source-words",
        type=int,
        default=d.max_source_words,
        metavar="N",
        help=f"drop source phrases of more than N words (default {d.max_source_words})",
    )
    g.add_argument(
        "--min-source-length",
        type=int,
        default=d.min_source_length,
        metavar="N",
        help=f"drop source words shorter than N characters (default {d.min_source_length})",
    )
    g.add_argument("--keep-identity", action="store_true", help="keep pairs whose translation equals the source")
    g.add_argument("--keep-digits", action="store_true", help="keep translations that contain digits")
    g.add_argument("--keep-brackets", action="store_true", help="keep translations that contain brackets")
    g.add_argument("--keep-abbreviations", action="store_true", help="keep translations with abbreviation dots")
    g.add_argument(
        "--keep-notation",
        action="store_true",
        help="keep dictionary notation: slash alternatives, affix and combining forms, clitics",
    )
    g.add_argument("--keep-glued", action="store_true", help="keep translations whose words were run together")
    g.add_argument(
        "--no-normalize",
        action="store_true",
        help="keep translations as spelled (default: NFKC, U+2010 as '-', no stress marks on Cyrillic letters)",
    )
    g.add_argument(
        "--skip-words",
        metavar="FILE|en",
        action="append",
        default=[],
        help="never substitute these source words: a file, one word a line, or 'en' for the "
        "bundled English stopword list (repeatable)",
    )


def _cleaning_from_args(args):
    from .lexicon import CleaningOptions, load_stopwords

    skip = frozenset().union(*(load_stopwords(s) for s in args.skip_words)) if args.skip_words else frozenset()
    return CleaningOptions(
        drop_identity=not args.keep_identity,
        max_translation_words=args.max_translation_words,
        drop_digits=not args.keep_digits,
        drop_brackets=not args.keep_brackets,
        drop_abbreviations=not args.keep_abbreviations,
        drop_notation=not args.keep_notation,
        drop_glued=not args.keep_glued,
        normalize=not args.no_normalize,
        max_translations=args.max_translations,
        skip_words=skip,
        min_source_length=args.min_source_length,
        max_source_words=args.max_source_words,
    )


def _add_rate_options(p: argparse.ArgumentParser, ratio_default: float | None) -> None:
    """How much is substituted, and in which languages: `apply`, `text` and `pairs`
    (`ratio_default` None: --ratio is required)."""
    if ratio_default is None:
        p.add_argument("--ratio", type=float, required=True, help="probability that a candidate word is replaced")
    else:
        p.add_argument(
            "--ratio",
            type=float,
            default=ratio_default,
            help=f"probability that a candidate word is replaced (default {ratio_default})",
        )
    p.add_argument("--portion", type=float, default=1.0, help="probability that a document is eligible (default 1)")
    p.add_argument(
        "--languages",
        type=_languages,
        default=None,
        metavar="LANG=W,...",
        help="target languages and weights, e.g. de=0.7,fr=0.3 (default: all, equal)",
    )
    p.add_argument(
        "--ratio-basis",
        choices=RATIO_BASES,
        default="candidates",
        help="candidates: --ratio is the share of dictionary words replaced; words: the share of all words",
    )


def _add_sampling_options(p: argparse.ArgumentParser, stream_key_default: str) -> None:
    """The options of Substituter, shared by `apply` and `text` (`_sampling` reads them)."""
    _add_rate_options(p, ratio_default=None)
    p.add_argument("--seed", type=int, default=0, help="random seed, an integer in [0, 2**64) (default 0)")
    p.add_argument(
        "--lang-scope",
        choices=LANG_SCOPES,
        default="word",
        help="word: a language drawn for each replaced word; document: one language per document",
    )
    p.add_argument("--stream-key", default=None, help=f"random stream key (default: {stream_key_default})")


def _sampling(args) -> Sampling:
    """The ``Sampling`` of a command's sampling options (the parser's names are its fields')."""
    return Sampling(**{name: getattr(args, name) for name in OPTION_NAMES})


def _progress(quiet: bool):
    if quiet:
        return None
    started = time.perf_counter()
    return lambda message: print(
        f"[{time.perf_counter() - started:6.1f}s] {printable(message)}", file=sys.stderr, flush=True
    )


def _log(message: str) -> None:
    """A line about the run on stderr (names in it come from files: escaped)."""
    print(printable(message), file=sys.stderr)


def cmd_compile(args) -> int:
    from .compiler import compile_vocab
    from .tokenizer import resolve_tokenizer

    dictionaries = {}
    for lang, path in args.dict:
        if lang in dictionaries:
            raise LinkFastError(f"language {lang!r} given twice in --dict")
        dictionaries[lang] = path
    # before the tokenizer is resolved: a missing tokenizer must not hide an output that would
    # overwrite a dictionary
    _refuse_overwriting(
        args.output, [args.tokenizer, *_dictionary_files(dictionaries.values()), *args.skip_words, *args.deny]
    )
    tokenizer = resolve_tokenizer(args.tokenizer)
    _refuse_overwriting(args.output, [tokenizer])
    vocab = compile_vocab(
        tokenizer,
        dictionaries,
        cases=args.cases,
        spacings=args.spacings,
        cleaning=_cleaning_from_args(args),
        progress=_progress(args.quiet) or False,
        translation_weights=args.translation_weights,
        deny=args.deny,
        default_deny=not args.no_default_deny,
        function_words=args.function_words,
    )
    vocab.save(args.output)
    if not args.quiet:
        print(printable(_describe(vocab, args.output), lines=True), file=sys.stderr)
    return 0


def _dictionary_files(paths) -> list[str]:
    """The files behind the dictionaries given (``freedict:CODE`` resolved): a dictd index
    stands for its data file too."""
    from .lexicon import resolve_dictionary

    files = []
    for path in (str(resolve_dictionary(p)) for p in paths):
        files.append(path)
        if path.endswith(".index"):
            files += [path[: -len(".index")] + ext for ext in (".dict", ".dict.dz")]
    return files


def _refuse_overwriting(output, inputs) -> None:
    """An output may not be one of the inputs (the same path, a symbolic or a hard link), nor a
    symbolic link itself: said before the work, not when it is written."""
    refuse_link(output)
    for source in inputs:
        if Path(source).resolve() == Path(output).resolve() or same_file(source, output):
            raise InputError(f"{output}: the output would overwrite the input {source}")


# report keys that count changes rather than drops, as info names them
_CURATED = (("normalized", "respelled (normalized)"), ("function_word_pairs", "function-word pairs from the table"))


def _describe(vocab, path) -> str:
    m = vocab.meta
    tok = m.get("tokenizer", {})
    lines = [
        f"{path}: link_fast vocabulary, format {m['format_version']}",
        f"  tokenizer   {tok.get('name', '?')} ({tok.get('kind', '?')}, {m['vocab_size']:,} ids, "
        f"fingerprint {str(tok.get('fingerprint', ''))[:16]})",
        f"  languages   {', '.join(m['languages'])}",
        f"  keys        {m['counts']['keys']:,} ({m['counts']['nodes']:,} trie nodes, "
        f"{m['counts']['translations']:,} translations)",
    ]
    for lang, r in m.get("report", {}).get("languages", {}).items():
        lines.append(
            f"  {lang:<11} {r['sources']:,} source words -> {r['forms_kept']:,} of {r['forms']:,} forms kept "
            f"({r['forms_not_context_free']:,} not context-free, "
            f"{r['forms_without_translation']:,} without a usable translation), "
            f"{r['keys']:,} keys, {r['phrases']:,} phrases; "
            f"translations drawn {r.get('translation_weights', 'uniform')}"
        )
    # How each dictionary was read: what was kept, what was dropped and why.
    for lang, r in m.get("report", {}).get("lexicons", {}).items():
        dropped = ", ".join(f"{k[len('dropped_') :]} {n:,}" for k, n in r.items() if k.startswith("dropped_") and n)
        changed = [f"{r[k]:,} {what}" for k, what in _CURATED if r.get(k)]
        lines.append(
            f"  {lang:<11} dictionary: {r.get('sources', 0):,} sources, {r.get('pairs_kept', 0):,} of "
            f"{r.get('pairs_read', 0):,} translations kept; dropped: {dropped or 'none'}"
            + "".join(f"; {item}" for item in changed)
        )
    if m.get("options", {}).get("deny"):
        lines.append(f"  deny lists  {', '.join(map(str, m['options']['deny']))}")
    if "seconds" in m.get("report", {}):
        lines.append(f"  compiled in {m['report']['seconds']} s")
    # What each language adds to the file (its keys, translations and their share of the trie).
    from .vocab import language_bytes

    per_language, shared = language_bytes(vocab.tables, len(m["languages"]))
    sizes = ", ".join(f"{lang} {n / 1e6:,.1f}" for lang, n in zip(m["languages"], per_language))
    lines.append(f"  size (MB)   {sizes}; token tables {shared / 1e6:,.1f}")
    return "\n".join(lines)


def cmd_info(args) -> int:
    from .vocab import Vocab

    vocab = Vocab.load(args.vocab)
    if args.json:
        print(printable(json.dumps(vocab.meta, indent=2, ensure_ascii=False), lines=True))
    else:
        print(printable(_describe(vocab, args.vocab), lines=True))
    return 0


def _languages(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        lang, sep, weight = item.partition("=")
        try:
            weights[lang.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected LANG[=WEIGHT],..., got {text!r}") from None
    if not all(weights):
        raise argparse.ArgumentTypeError(f"expected LANG[=WEIGHT],..., got {text!r}")
    return weights


def cmd_apply(args) -> int:
    from .runner import apply_shards

    started = time.perf_counter()
    results = apply_shards(
        args.vocab,
        args.inputs,
        args.output,
        _sampling(args),
        workers=args.workers,
        mask=args.mask,
        out_dtype=args.out_dtype,
        chunk_tokens=args.chunk_tokens,
        resume=args.resume,
        rank=args.rank,
        world_size=args.world_size,
        progress=False if args.quiet else None,
        log=None if args.quiet else _log,
    )
    if not args.quiet:
        _log(_apply_summary(results, time.perf_counter() - started, args.output))
    return 0


def _apply_summary(results: dict, seconds: float, output) -> str:
    """One line: the work done now and its rate; shards resume skipped are counted apart."""
    done = [r for r in results.values() if not r.get("resumed")]
    skipped = len(results) - len(done)
    tokens = sum(r["stats"]["tokens_in"] for r in done)
    subs = sum(r["stats"]["total_substitutions"] for r in done)
    line = f"{len(done)} shard(s) rewritten, {tokens:,} tokens, {subs:,} substitutions in {seconds:.1f} s"
    if done:
        line += f" ({tokens / max(seconds, 1e-9) / 1e6:.1f} M tokens/s)"
    if skipped:
        line += f"; {skipped} already done, skipped"
    return f"{line} -> {output}"


def cmd_text(args) -> int:
    from .text import substitute_files

    started = time.perf_counter()
    results = substitute_files(
        args.vocab,
        args.inputs,
        args.output,
        _sampling(args),
        field=args.field,
        substitutions_field=args.substitutions_field,
        on_error=args.on_error,
        workers=args.workers,
        tokenizer=args.tokenizer,
        **({} if args.max_line_bytes is None else {"max_line_bytes": args.max_line_bytes}),
        progress=False if args.quiet else None,
        log=None if args.quiet else _log,
    )
    if not args.quiet:
        docs = sum(r["stats"]["documents"] for r in results.values())
        size = sum(r["input_bytes"] for r in results.values())
        subs = sum(r["stats"]["total_substitutions"] for r in results.values())
        skipped = sum(r["skipped_lines"] for r in results.values())
        seconds = time.perf_counter() - started
        timing = next(iter(results.values()), {}).get("timing", {})
        working = sum(r["seconds"] for r in results.values())
        print(
            f"{len(results)} file(s), {docs:,} documents, {subs:,} substitutions"
            + (f", {skipped:,} bad lines skipped" if skipped else "")
            + f" in {seconds:.1f} s "
            f"({docs / max(seconds, 1e-9):,.0f} docs/s, {size / max(seconds, 1e-9) / 1e6:.1f} MB/s): "
            f"vocabulary loaded in {timing.get('vocab_seconds', 0.0):.2f} s, "
            f"index {timing.get('index', 'built')} in {timing.get('index_seconds', 0.0):.2f} s, "
            f"substituting {working:.2f} s ({size / max(working, 1e-9) / 1e6:.1f} MB/s)",
            file=sys.stderr,
        )
    return 0


def cmd_lookup(args) -> int:
    from .review import format_lookup, lookup
    from .vocab import Vocab

    vocab = Vocab.load(args.vocab)
    result = lookup(vocab, args.word, _language_names(args.lang), max_phrases=args.phrases)
    print(format_lookup(result, str(args.vocab)))
    return 0 if result.forms or result.phrases else 1


def _language_names(values) -> list[str]:
    """Repeated --lang options, each possibly a comma-separated list."""
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


def cmd_pairs(args) -> int:
    from .review import corpus_texts, count_pairs, format_pairs, summary
    from .tokenizer import load_tokenizer
    from .vocab import Vocab

    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    vocab = Vocab.load(args.vocab, tokenizer=tokenizer)
    sampling = Sampling(ratio=args.ratio, portion=args.portion, languages=args.languages, ratio_basis=args.ratio_basis)
    report = count_pairs(vocab, corpus_texts(args.inputs, args.field), sampling, tokenizer=tokenizer)
    print(format_pairs(report, args.top, args.format))
    if not args.quiet:
        print(summary(report), file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    from .shards import find_shards, validate_shard

    bad = 0
    for prefix in find_shards(args.inputs):
        problems = validate_shard(prefix)
        bad += bool(problems)
        print(printable(f"{prefix}: {'ok' if not problems else '; '.join(problems)}"))
    return 1 if bad else 0


def _workers_list(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive worker counts like 1,2,4, got {text!r}")
    return counts


def cmd_bench(args) -> int:
    from . import bench
    from .demo import DEMO_LANGUAGES, demo_documents, demo_tokenizer_path
    from .tokenizer import load_tokenizer
    from .vocab import Vocab

    say = _progress(args.json)
    if args.vocab and args.dict:
        raise LinkFastError("give --vocab or --dict, not both")
    if args.dict and not args.tokenizer:
        raise LinkFastError("--dict needs --tokenizer")
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    compile_seconds = None
    if args.vocab:
        vocab = Vocab.load(args.vocab, tokenizer=tokenizer)
    else:
        if tokenizer is None:
            tokenizer = load_tokenizer(demo_tokenizer_path())
        dictionaries = dict(args.dict) if args.dict else DEMO_LANGUAGES
        say and say(f"compiling {', '.join(f'{k}={v}' for k, v in dictionaries.items())}")
        compiled = bench.compile_row(tokenizer.path, dictionaries, log=say or (lambda m: None))
        vocab = compiled.pop("vocab")
        compile_seconds = compiled["seconds"]
    if args.shard:
        corpus = bench.corpus_from_shard(args.shard, tokenizer)
    elif tokenizer is not None:
        corpus = bench.corpus_from_texts("bundled fables", demo_documents(), tokenizer, min_tokens=args.min_tokens)
    else:
        raise LinkFastError("--vocab without --shard needs --tokenizer, to tokenize the bundled sample")
    report = bench.run_bench(
        vocab,
        corpus,
        tokenizer=tokenizer,
        shard=args.shard,
        workers=args.workers,
        ratio=args.ratio,
        seed=args.seed,
        repeat=args.repeat,
        apply_tokens=args.apply_tokens,
        log=say or (lambda m: None),
        compare=[Vocab.load(path, tokenizer=tokenizer) for path in args.compare_vocab],
    )
    report["compile_seconds"] = compile_seconds
    report["compile"] = None if args.vocab else compiled
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(bench.format_report(report))
        if not args.vocab:
            print(bench.format_compile_row(compiled))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(ratio=args.ratio, seed=args.seed, color=args.color)


def cmd_inspect(args) -> int:
    from .inspect import run_inspect

    return run_inspect(args)


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(
        args.output_dir,
        args.output,
        samples=args.samples,
        seed=args.seed,
        input_path=args.input,
        vocab_path=args.vocab,
        tokenizer_path=args.tokenizer,
        say=_log,
    )
    _log(f"wrote {path}")
    return 0


def _add_compile_parser(sub) -> None:
    p = sub.add_parser("compile", help="compile dictionaries for one tokenizer into a vocabulary file")
    p.add_argument(
        "--tokenizer",
        required=True,
        metavar="TOKENIZER",
        help=TOKENIZER_HELP,
    )
    p.add_argument(
        "--dict",
        required=True,
        action="append",
        type=_lang_path,
        metavar="LANG=PATH",
        help="a dictionary: MUSE pairs (.txt/.gz/.zst), FreeDict dictd (.index), or an installed FreeDict "
        "by name, freedict:CODE (de=freedict:deu: Debian's dict-freedict-eng-deu, looked up in "
        "$LINK_FAST_FREEDICT_DIR and /usr/share/dictd); repeat per language",
    )
    p.add_argument(
        "--cases",
        type=_csv(("lower", "title", "upper")),
        default=("lower", "title", "upper"),
        help="case variants of each word (default lower,title,upper)",
    )
    p.add_argument(
        "--spacings",
        type=_csv(("space", "bare")),
        default=("space", "bare"),
        help="forms with a leading space, without, or both (default space,bare)",
    )
    p.add_argument(
        "--translation-weights",
        choices=TRANSLATION_WEIGHTS,
        default="sense",
        help="how often each of a word's translations is drawn, --max-translations keeping the best: sense "
        "(default), by its word frequency in its language and how specific it is to the word; frequency, by "
        "word frequency alone; uniform, equally, the first ones kept (wordfreq; a language it lacks stays "
        "uniform, as info reports; docs/QUALITY.md)",
    )
    p.add_argument(
        "--function-words",
        default="table",
        metavar="table|dictionary|skip|FILE",
        help="where the English function words' translations come from: the reviewed table link_fast ships "
        "for the language (default; without one, function words are not substituted), the dictionary's "
        "own entries, none, or a table file of the same layout (docs/QUALITY.md)",
    )
    _add_cleaning_options(p)
    p.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="FILE",
        help="drop the pairs this file lists, one lang<TAB>source<TAB>translation a line (repeatable; docs/QUALITY.md)",
    )
    p.add_argument(
        "--no-default-deny",
        action="store_true",
        help="do not apply the deny lists link_fast ships for the vocabulary's languages",
    )
    p.add_argument("-o", "--output", required=True, type=Path, metavar="VOCAB", help="vocabulary file to write")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    p.set_defaults(func=cmd_compile)


def _add_apply_parser(sub) -> None:
    p = sub.add_parser("apply", help="rewrite tokenized shards (Megatron .bin/.idx or datatrove .ds)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="shard prefix, shard file, directory or glob")
    p.add_argument("--vocab", required=True, type=Path, metavar="VOCAB", help="compiled vocabulary (link-fast compile)")
    p.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="directory for the rewritten shards"
    )
    _add_sampling_options(p, stream_key_default="each shard's name")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--chunk-tokens",
        type=int,
        default=4_000_000,
        metavar="N",
        help="tokens per work unit; memory is about N x workers (default 4000000)",
    )
    p.add_argument("--mask", action="store_true", help="also write NAME_mask: uint8, 1 where a token was substituted")
    p.add_argument(
        "--out-dtype",
        choices=("auto", "uint16", "int32", "uint32"),
        default="auto",
        help="token dtype of the output (default: the input's)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip inputs whose outputs are verified finished with the same options "
        "(NAME.link.json matches the options, the vocabulary, the input and the output files)",
    )
    p.add_argument("--rank", type=int, default=0, help="this job's index among --world-size jobs")
    p.add_argument("--world-size", type=int, default=1, help="split the sorted inputs across this many jobs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_apply)


def _add_text_parser(sub) -> None:
    p = sub.add_parser(
        "text", help="substitute in text files (.jsonl, .jsonl.gz, .jsonl.zst, .txt: one document a line)"
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="text files")
    p.add_argument("--vocab", required=True, type=Path, metavar="VOCAB", help="compiled vocabulary (link-fast compile)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUTPUT",
        help="output file (one input, same format) or directory (inputs keep their names)",
    )
    _add_sampling_options(p, stream_key_default="each file's name without extensions")
    p.add_argument("--field", default="text", help="JSONL field holding the document (default text)")
    p.add_argument(
        "--substitutions-field",
        default=None,
        metavar="NAME",
        help="also write, in this JSONL field, the list of substitutions (offsets in the output text)",
    )
    p.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="fail",
        help="a bad line (not UTF-8, malformed or too deeply nested JSON, a missing or non-string "
        "field, a lone surrogate, over --max-line-bytes): fail (default, no output) or skip it "
        "and count it in the summary and OUTPUT.link.json",
    )
    # default: link_fast.text.files.DEFAULT_MAX_LINE_BYTES (not imported here: numpy and the kernel)
    p.add_argument(
        "--max-line-bytes",
        type=_byte_size,
        default=None,
        metavar="N",
        help="a longer line is a bad line (see --on-error), counted as it streams past, never held; "
        "a line takes about 5-10x its size in memory while rewritten (more with "
        "--substitutions-field). Suffixes K, M, G "
        "(x1024); 0 = no limit (default 64M)",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="TOKENIZER",
        help="the vocabulary's tokenizer, to match only where token mode would (same boundaries); " + TOKENIZER_HELP,
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=cmd_text)


def _add_validate_parser(sub) -> None:
    p = sub.add_parser("validate", help="check shards' headers, counts, pointers and sizes")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="shards (prefix or file) or folders of them; outputs of apply too"
    )
    p.set_defaults(func=cmd_validate)


def _add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a compiled vocabulary")
    p.add_argument("vocab", type=Path, metavar="VOCAB", help="a vocabulary file (link-fast compile's output)")
    p.add_argument("--json", action="store_true", help="print the whole header as JSON")
    p.set_defaults(func=cmd_info)


def _add_lookup_parser(sub) -> None:
    p = sub.add_parser("lookup", help="a word's compiled forms and their translations, with their shares")
    p.add_argument("vocab", type=Path, metavar="VOCAB", help="a vocabulary file (link-fast compile's output)")
    p.add_argument("word", metavar="WORD", help="the English word or phrase, in any case")
    p.add_argument(
        "--lang",
        action="append",
        metavar="LANG",
        help="only these languages, by name or code (repeatable, or comma-separated; default all)",
    )
    p.add_argument(
        "--phrases", type=int, default=10, metavar="N", help="show at most N phrases holding the word (default 10)"
    )
    p.set_defaults(func=cmd_lookup)


def _add_pairs_parser(sub) -> None:
    p = sub.add_parser(
        "pairs", help="the (language, source, translation) pairs a corpus would get, most frequent first"
    )
    p.add_argument("inputs", nargs="+", metavar="CORPUS", help="text files, as link-fast text reads them")
    p.add_argument("--vocab", required=True, type=Path, metavar="VOCAB", help="compiled vocabulary (link-fast compile)")
    _add_rate_options(p, ratio_default=0.3)
    p.add_argument("--field", default="text", help="JSONL field holding the document (default text)")
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="TOKENIZER",
        help="the vocabulary's tokenizer, to match only where token mode would, as link-fast text does",
    )
    p.add_argument(
        "--top", type=int, default=50, metavar="N", help="show the N most frequent pairs; 0 = all (default 50)"
    )
    p.add_argument(
        "--format",
        choices=("table", "tsv"),
        default="table",
        help="an aligned table, or TSV whose first three columns are a deny list's (default table)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=cmd_pairs)


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure throughput against the usual text and id-level scripts, in one run")
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="TOKENIZER",
        help="compiles --dict for it, enables the text baselines (default: the demo's Tekken); " + TOKENIZER_HELP,
    )
    p.add_argument(
        "--dict",
        action="append",
        type=_lang_path,
        metavar="LANG=PATH",
        help="dictionaries to compile (timed), as for compile (a path or freedict:CODE); "
        "default: the bundled demo dictionaries",
    )
    p.add_argument("--vocab", type=Path, default=None, metavar="VOCAB", help="a compiled vocabulary instead of --dict")
    p.add_argument(
        "--compare-vocab",
        type=Path,
        action="append",
        default=[],
        metavar="VOCAB",
        help="another vocabulary for the same tokenizer (more languages, say): a kernel row with all its "
        "languages drawn, and its ratio to the first vocabulary's kernel; repeatable",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="PREFIX",
        help="measure on this shard (default: the bundled fables, repeated to --min-tokens)",
    )
    p.add_argument(
        "--min-tokens", type=int, default=2_000_000, metavar="N", help="size of the default corpus (default 2000000)"
    )
    p.add_argument(
        "--apply-tokens",
        type=int,
        default=20_000_000,
        metavar="N",
        help="apply runs on the corpus repeated to N tokens and N/4, unless --shard is larger (default 20000000)",
    )
    p.add_argument(
        "--workers",
        type=_workers_list,
        default=(1, 2) if (os.cpu_count() or 1) > 1 else (1,),
        metavar="N,N,...",
        help="worker counts to run link-fast apply with (default 1,2)",
    )
    p.add_argument("--ratio", type=float, default=0.3, help="substitution ratio (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (no progress)")
    p.set_defaults(func=cmd_bench)


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="run LINK on a small bundled sample and show the result")
    p.add_argument("--ratio", type=float, default=0.5, help="share of dictionary words replaced (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight substitutions with colour (default: when printing to a terminal)",
    )
    p.set_defaults(func=cmd_demo)


def _add_inspect_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show documents of an output before and after, substitutions marked")
    p.add_argument("output", metavar="OUTPUT", help="an output shard of apply (prefix or file), or a text output")
    p.add_argument("--input", default=None, metavar="PATH", help="the input (default: as NAME.link.json records)")
    p.add_argument("--vocab", default=None, metavar="VOCAB", help="the vocabulary (default: as NAME.link.json records)")
    p.add_argument(
        "--tokenizer", default=None, metavar="PATH", help="the tokenizer (default: as the vocabulary records)"
    )
    p.add_argument(
        "--substitutions-field",
        default=None,
        metavar="NAME",
        help="text outputs: the field holding the substitutions (default: as the record says)",
    )
    p.add_argument("--doc", type=int, action="append", default=[], metavar="N", help="document N (repeatable)")
    p.add_argument("--random", type=int, default=None, metavar="K", help="K documents drawn at random")
    p.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    p.add_argument(
        "--grep", default=None, metavar="WORD", help="only documents where WORD was substituted (or is a translation)"
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="show at most N documents (default 3)")
    p.add_argument(
        "--layout",
        choices=("interleaved", "side-by-side"),
        default="interleaved",
        help="before above after, or beside it",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour on a terminal, [brackets] otherwise (default auto)",
    )
    p.set_defaults(func=cmd_inspect)


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page about the outputs of a run")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the output directory of link-fast apply")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="HTML", help="the page to write")
    p.add_argument(
        "--samples",
        type=int,
        default=200,
        metavar="N",
        help="documents per shard aligned for the word tables (default 200)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the documents sampled (default 0)")
    p.add_argument(
        "--input", default=None, metavar="PATH", help="the folder of the inputs (default: as the records say)"
    )
    p.add_argument("--vocab", default=None, metavar="VOCAB", help="the vocabulary (default: as the records say)")
    p.add_argument(
        "--tokenizer", default=None, metavar="PATH", help="the tokenizer (default: as the vocabulary records)"
    )
    p.set_defaults(func=cmd_report)


def _note_oversubscription(args) -> None:
    """More worker processes than cores only share the cores: say so, once."""
    workers, cores = getattr(args, "workers", None), os.cpu_count() or 1
    if isinstance(workers, int) and workers > cores and not getattr(args, "quiet", False):
        print(
            f"link-fast: note: --workers {workers} on {cores} CPU core(s); more than {cores} gains nothing",
            file=sys.stderr,
        )


class _Parser(argparse.ArgumentParser):
    """argparse with link-fast's error form: one line naming the problem, status 2 (argparse
    prints the whole usage first, which buries the problem in a batch job's log)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="link-fast",
        description="LINK lexical substitution on token ids: compile a dictionary for a tokenizer, "
        "rewrite tokenized corpora.",
    )
    parser.add_argument("--version", action="version", version=f"link-fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_compile_parser(sub)
    _add_apply_parser(sub)
    _add_text_parser(sub)
    _add_validate_parser(sub)
    _add_info_parser(sub)
    _add_lookup_parser(sub)
    _add_pairs_parser(sub)
    _add_bench_parser(sub)
    _add_demo_parser(sub)
    _add_inspect_parser(sub)
    _add_report_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM (a scheduler, `timeout`, `kill`): unwinds like Ctrl-C, so workers are stopped and
    temporary files removed before the process ends."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv=None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # bare `link-fast`: what it can do, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    _note_oversubscription(args)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except LinkFastError as exc:
        print(f"link-fast: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `link-fast ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an output that cannot be written, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"link-fast: error: {printable(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("link-fast: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("link-fast: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
