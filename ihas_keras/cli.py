"""The `ihas` command line: `ihas --version`, `ihas selfcheck`, `ihas data synth|validate|prepare`.

`ihas data prepare` ingests raw files into OUT/examples (split tf.Examples) and runs TF Transform
into OUT/transformed (the transform graph and the transformed splits).
"""

import argparse
import os
import sys

from ihas_keras import __version__


def _selfcheck(args: argparse.Namespace) -> int:
    from pipeline import selfcheck

    report = selfcheck.run(args.out, rows=args.rows)
    print(selfcheck.format_report(report))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from ihas_keras.data import synthesize

    report = synthesize(
        args.out, args.rows, args.format, args.segments, args.seed, progress=not args.quiet
    )
    print(report.summary())
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ihas_keras.data import BadInputError, get_format, validate

    quarantine = args.quarantine or os.path.basename(args.paths[0]) + ".quarantine.jsonl"
    try:
        fmt = get_format(args.format, args.schema)
        report = validate(
            args.paths, fmt, quarantine, args.max_bad_fraction, progress=not args.quiet
        )
    except (BadInputError, ValueError) as e:
        print(f"ihas data validate: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from ihas_keras.data import BadInputError, get_format
    from ihas_keras.data.ingest import ingest
    from ihas_keras.data.transform import RowsLostError, transform

    examples = os.path.join(args.out, "examples")
    transformed = os.path.join(args.out, "transformed")
    try:
        fmt = get_format(args.format, args.schema)
        report = ingest(
            args.paths, fmt, examples, args.seed, args.max_bad_fraction, progress=not args.quiet
        )
        rows = transform(examples, fmt, transformed, args.frequency_threshold, args.beam_arg)
    except (BadInputError, ValueError, RowsLostError) as e:
        print(f"ihas data prepare: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    print("transformed rows: " + ", ".join(f"{split} {n}" for split, n in rows.items()))
    print(f"examples: {examples}/Split-*/data.tfrecord.gz")
    print(f"transform graph: {transformed}/transform_fn (tft.TFTransformOutput({transformed!r}))")
    print(f"transformed splits: {transformed}/Split-*/transformed.tfrecord.gz")
    return 0


def _add_raw_input_args(parser: argparse.ArgumentParser) -> None:
    """The raw files and how to read them, shared by `validate` and `prepare`."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="raw files (.gz is read as gzip)")
    parser.add_argument("--format", required=True,
                        help="criteo, criteo-test (unlabeled), avazu, or generic with --schema")
    parser.add_argument("--schema", help="schema file (YAML or JSON) for --format generic")
    parser.add_argument("--max-bad-fraction", type=float, default=0.001,
                        help="fail when more than this fraction of rows is rejected")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_prepare_verb(data_verbs) -> None:
    prepare = data_verbs.add_parser(
        "prepare", help="ingest raw files into split tf.Examples, then run TF Transform on them"
    )
    _add_raw_input_args(prepare)
    prepare.add_argument("--out", required=True, help="folder: OUT/examples (split tf.Examples, "
                         "quarantine, counts) and OUT/transformed (TF Transform output)")
    prepare.add_argument("--seed", type=int, default=0, help="seed of the train/eval/test split")
    prepare.add_argument("--frequency-threshold", type=int, default=10,
                         help="values seen fewer times than this in train share the others id")
    prepare.add_argument("--beam-arg", action="append", default=[], metavar="OPTION",
                         help="a Beam pipeline option, repeatable, written with '=': "
                         "--beam-arg=--runner=...")
    prepare.set_defaults(func=_prepare)


def _add_data_verbs(verbs) -> None:
    data = verbs.add_parser("data", help="generate, check and prepare raw CTR input")
    data_verbs = data.add_subparsers(dest="data_verb", metavar="VERB", required=True)

    synth = data_verbs.add_parser(
        "synth", help="write generated rows in a real raw format, with planted segments"
    )
    synth.add_argument("--rows", type=int, required=True)
    synth.add_argument("--format", choices=["criteo", "avazu"], default="criteo")
    synth.add_argument("--segments", type=int, default=3, help="latent segments K")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, help="data file; PATH.truth.tsv and PATH.meta.json "
                       "are written beside it")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)

    check = data_verbs.add_parser(
        "validate", help="parse raw files, quarantine bad rows, print the counts"
    )
    _add_raw_input_args(check)
    check.add_argument("--quarantine", help="where rejected rows go (default: "
                       "BASENAME.quarantine.jsonl in the current folder)")
    check.set_defaults(func=_validate)
    _add_prepare_verb(data_verbs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ihas",
        description="iHAS-Keras: instance-wise hierarchical architecture search for CTR models.",
    )
    parser.add_argument("--version", action="version", version=f"ihas {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    check = verbs.add_parser(
        "selfcheck",
        help="prove the environment works: fit a Keras model, run a TFX pipeline, load the "
        "TF Serving API stubs",
    )
    check.add_argument("--out", required=True, help="folder for the pipeline root and metadata")
    check.add_argument("--rows", type=int, default=2000, help="rows of generated CSV data")
    check.set_defaults(func=_selfcheck)
    _add_data_verbs(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines, unless asked for
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
