"""The `ihas` command line: `ihas --version`, `ihas selfcheck`; later issues add more verbs."""

import argparse
import os
import sys

from ihas_keras import __version__


def _selfcheck(args: argparse.Namespace) -> int:
    from pipeline import selfcheck

    report = selfcheck.run(args.out, rows=args.rows)
    print(selfcheck.format_report(report))
    return 0


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
