"""The `ihas experiment` handler: checks the arguments, then runs the experiment."""

import argparse
import os
import sys

from experiments.variants import Settings, check_strategy, expand
from ihas_keras.data import get_format
from ihas_keras.errors import BadInputError


def parse_seeds(text: str) -> list[int]:
    """The seeds of `--seeds`.

    Args:
        text: integers separated by commas.

    Returns:
        The seeds, in order.

    Raises:
        ValueError: TEXT holds something other than integers, no integer, or one twice.
    """
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds: expected integers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct integers separated by commas, got {text!r}")
    return seeds


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def run_command(args: argparse.Namespace) -> int:
    """Checks the arguments, then runs the experiment.

    Args:
        args: the parsed `ihas experiment` flags.

    Returns:
        The exit status: 2 with one error line on bad input; 0 after writing the report.
    """
    try:
        seeds = parse_seeds(args.seeds)
        variants = expand(_names(args.variants), _names(args.backbones))
        if not variants:
            raise ValueError("--variants: nothing to run")
        for flag in ("epochs", "search_epochs", "batch_size", "embedding_dim", "gate_every",
                     "patience", "inference_batch_size"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")
        if not os.path.exists(args.data):
            raise BadInputError(f"{args.data}: no such data file or folder")
        fmt = get_format(args.format, args.schema)
        check_strategy(args.strategy, "--strategy")
    except (BadInputError, ValueError) as e:
        print(f"ihas experiment: {e}", file=sys.stderr)
        return 2
    settings = Settings(
        embedding_dim=args.embedding_dim, batch_size=args.batch_size, epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs, search_epochs=args.search_epochs,
        gate_every=args.gate_every, patience=args.patience, clusters=args.clusters,
        representation=args.representation, warm_start=args.warm_start,
        shared_embedding=args.shared_embedding, routing=args.routing,
        regularization_weight=args.regularization_weight, gate_rank=args.gate_rank,
        gate_learning_rate=args.gate_learning_rate, adafs_k=args.adafs_k,
        inference_batch_size=args.inference_batch_size, strategy=args.strategy,
        progress=not args.quiet,
    )
    from experiments.runner import run

    try:
        run(args.data, fmt, args.out, seeds, variants, settings)
    except BadInputError as e:
        print(f"ihas experiment: {e}", file=sys.stderr)
        return 2
    print(f"report: {os.path.join(args.out, 'report.md')} and report.json; figures in {args.out}")
    return 0
