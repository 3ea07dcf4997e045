"""The `ihas` command line: `ihas --version`, `ihas selfcheck`, `ihas data synth|validate`."""

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


def _add_data_verbs(verbs) -> None:
    data = verbs.add_parser("data", help="generate and check raw CTR input")
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
    check.add_argument("paths", nargs="+", metavar="PATH", help="raw files (.gz is read as gzip)")
    check.add_argument("--format", required=True,
                       help="criteo, criteo-test (unlabeled), avazu, or generic with --schema")
    check.add_argument("--schema", help="schema file (YAML or JSON) for --format generic")
    check.add_argument("--quarantine", help="where rejected rows go (default: "
                       "BASENAME.quarantine.jsonl in the current folder)")
    check.add_argument("--max-bad-fraction", type=float, default=0.001,
                       help="fail when more than this fraction of rows is rejected")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_validate)


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
