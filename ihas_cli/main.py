"""The `ihas` command: `ihas --version`, `ihas selfcheck`, `ihas data synth|validate|prepare`,
`ihas serve` (a TF Serving-compatible server), `ihas predict` (its client, and TF Serving's).

`ihas data prepare` ingests raw files into OUT/examples (split tf.Examples) and runs TF Transform
into OUT/transformed (the transform graph and the transformed splits).
"""

import argparse
import contextlib
import os
import signal
import sys
from importlib import metadata

from ihas_cli import quiet
from serving import limits


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
    from ihas_keras.data import get_format, validate
    from ihas_keras.errors import BadInputError

    quarantine = args.quarantine or os.path.basename(args.paths[0]) + ".quarantine.jsonl"
    try:
        fmt = get_format(args.format, args.schema)
        report = validate(
            args.paths, fmt, quarantine, args.max_bad_fraction, progress=not args.quiet,
            allow_empty=args.allow_empty,
        )
    except (BadInputError, ValueError) as e:
        print(f"ihas data validate: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from ihas_keras.data import get_format, splits
    from ihas_keras.data.ingest import ingest
    from ihas_keras.data.staging import staged
    from ihas_keras.data.transform import transform
    from ihas_keras.errors import BadInputError, RowsLostError

    examples = os.path.join(args.out, "examples")
    transformed = os.path.join(args.out, "transformed")
    try:
        fmt = get_format(args.format, args.schema)
        with staged(args.out) as stage:  # OUT is replaced whole once both steps are done
            report = ingest(args.paths, fmt, os.path.join(stage, "examples"), args.seed,
                            args.max_bad_fraction, progress=not args.quiet)
            rows = transform(os.path.join(stage, "examples"), fmt,
                             os.path.join(stage, "transformed"), args.frequency_threshold,
                             args.beam_arg)
    except (BadInputError, ValueError, RowsLostError) as e:
        print(f"ihas data prepare: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    print("transformed rows: " + ", ".join(f"{split} {n}" for split, n in rows.items()))
    print(f"examples: {examples}/Split-*/{splits.EXAMPLES_PREFIX}-*{splits.SUFFIX}")
    print(f"transform graph: {transformed}/transform_fn (tft.TFTransformOutput({transformed!r}))")
    print(f"transformed splits: {transformed}/Split-*/{splits.TRANSFORMED_PREFIX}-*{splits.SUFFIX}")
    return 0


def _add_raw_input_args(parser: argparse.ArgumentParser) -> None:
    """The raw files and how to read them, shared by `validate`, `prepare` and `predict`."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="raw files (.gz is read as gzip)")
    parser.add_argument("--format", required=True,
                        help="criteo, criteo-test (unlabeled), avazu, or generic with --schema")
    parser.add_argument("--schema", help="schema file (YAML or JSON) for --format generic")
    from ihas_keras import defaults

    parser.add_argument("--max-bad-fraction", type=float, default=defaults.MAX_BAD_FRACTION,
                        help="fail when more than this fraction of rows is rejected")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_prepare_verb(data_verbs) -> None:
    from ihas_keras import defaults

    prepare = data_verbs.add_parser(
        "prepare", help="ingest raw files into split tf.Examples, then run TF Transform on them"
    )
    _add_raw_input_args(prepare)
    prepare.add_argument("--out", required=True, help="folder: OUT/examples (split tf.Examples, "
                         "quarantine, counts) and OUT/transformed (TF Transform output); "
                         "replaced whole when done")
    prepare.add_argument("--seed", type=int, default=defaults.SPLIT_SEED,
                         help="seed of the train/eval/test split")
    prepare.add_argument("--frequency-threshold", type=int, default=defaults.FREQUENCY_THRESHOLD,
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
    check.add_argument("--allow-empty", action="store_true",
                       help="input without data rows is not an error")
    check.set_defaults(func=_validate)
    _add_prepare_verb(data_verbs)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from serving.models import model_config, read_model_config_file

    def fail(message: str) -> int:
        print(f"ihas serve: {message}", file=sys.stderr)
        return 2

    if bool(args.model_base_path) == bool(args.model_config_file):
        return fail("give exactly one of --model_base_path and --model_config_file")
    try:
        if args.model_config_file:
            configs = read_model_config_file(args.model_config_file)
        else:
            configs = [model_config(args.model_name, args.model_base_path)]
    except (OSError, ValueError) as e:
        return fail(str(e))
    for config in configs:
        if not os.path.isdir(config.base_path):
            return fail(f"model {config.name}: base path {config.base_path} is not a folder")
    if args.file_system_poll_wait_seconds < 0:
        return fail("--file_system_poll_wait_seconds must be >= 0")
    if min(args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism) < 0:
        return fail("--tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism "
                    "must be >= 0")
    for flag in ("max_request_bytes", "max_batch_size", "rest_api_timeout_in_ms",
                 "max_inflight_examples"):
        if getattr(args, flag) < 1:
            return fail(f"--{flag} must be at least 1")
    if args.max_inflight_examples < args.max_batch_size:
        return fail(f"--max_inflight_examples ({args.max_inflight_examples}) must be at least "
                    f"--max_batch_size ({args.max_batch_size})")
    ssl_config = None
    if args.ssl_config_file:
        from serving.tls import read_ssl_config

        try:
            ssl_config = read_ssl_config(args.ssl_config_file)
        except ValueError as e:
            return fail(str(e))

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from serving.server import ModelServer

    server = ModelServer(
        configs, grpc_port=args.port, rest_port=args.rest_api_port or None,
        poll_wait_seconds=args.file_system_poll_wait_seconds,
        grpc_max_threads=args.grpc_max_threads, enable_warmup=args.enable_model_warmup,
        intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        inter_op_parallelism=args.tensorflow_inter_op_parallelism, host=args.host,
        max_request_bytes=args.max_request_bytes, max_batch_size=args.max_batch_size,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        max_inflight_examples=args.max_inflight_examples, ssl_config=ssl_config,
    )
    # Stop on Ctrl-C and on SIGTERM (what Docker and Kubernetes send), whatever the parent left:
    # a SIGINT ignored by the parent (SIG_IGN) is inherited, and Python then keeps ignoring it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.start()
        server.wait()
    except OSError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _add_serve_verb(verbs) -> None:
    serve = verbs.add_parser(
        "serve", help="serve SavedModels over TF Serving's gRPC and REST APIs (flags as "
        "tensorflow_model_server's)"
    )
    serve.add_argument("--port", type=int, default=8500, help="gRPC port")
    serve.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0: no REST)")
    serve.add_argument("--model_name", default="default", help="name of the model")
    serve.add_argument("--model_base_path", help="folder of the model's numeric version folders")
    serve.add_argument("--model_config_file", help="text-format ModelServerConfig "
                       "(model_config_list) for several models; instead of --model_base_path")
    serve.add_argument("--file_system_poll_wait_seconds", type=float, default=1,
                       help="seconds between polls for new versions (0: no polling)")
    serve.add_argument("--grpc_max_threads", type=int, default=16,
                       help="threads answering gRPC requests")
    serve.add_argument("--enable_model_warmup", type=lambda v: v.lower() in ("1", "true"),
                       default=True, metavar="true|false",
                       help="replay assets.extra/tf_serving_warmup_requests when a version loads")
    serve.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                       help="TensorFlow's threads for one op (0: TensorFlow chooses)")
    serve.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                       help="TensorFlow's threads running ops side by side (0: TensorFlow "
                       "chooses)")
    serve.add_argument("--host", default=limits.HOST,
                       help="address to listen on (0.0.0.0: every interface, as in a container)")
    serve.add_argument("--max_request_bytes", type=int, default=limits.MAX_REQUEST_BYTES,
                       help="largest REST body (HTTP 413) or gRPC message (RESOURCE_EXHAUSTED)")
    serve.add_argument("--max_batch_size", type=int, default=limits.MAX_BATCH_SIZE,
                       help="most rows of a request's input (INVALID_ARGUMENT above)")
    serve.add_argument("--rest_api_timeout_in_ms", type=int, default=limits.REST_API_TIMEOUT_MS,
                       help="close a REST connection idle this long while its request is read")
    serve.add_argument("--max_inflight_examples", type=int,
                       default=limits.MAX_INFLIGHT_EXAMPLES,
                       help="most rows being run at once over all requests (UNAVAILABLE, HTTP "
                       "503, above: the server is busy)")
    serve.add_argument("--ssl_config_file", help="text-format tensorflow.serving.SSLConfig "
                       "(server_key, server_cert, custom_ca, client_verify): gRPC over TLS")
    serve.set_defaults(func=_serve)


def _predict(args: argparse.Namespace) -> int:
    from ihas_keras.data import get_format
    from ihas_keras.errors import BadInputError
    from serving.client import GrpcPredictor, RestPredictor, ServerError, predict_files

    tls = (args.ssl_ca_file, args.ssl_client_cert_file, args.ssl_client_key_file)
    if args.rest and any(tls):
        print("ihas predict: --ssl_* options are for gRPC (TLS is not offered over REST)",
              file=sys.stderr)
        return 2
    try:
        if args.rest:
            predictor = RestPredictor(args.server, args.model_name, args.model_version,
                                      args.timeout)
        else:
            predictor = GrpcPredictor(args.server, args.model_name, args.model_version,
                                      args.timeout, *tls)
    except ValueError as e:
        print(f"ihas predict: {e}", file=sys.stderr)
        return 2
    try:
        fmt = get_format(args.format, args.schema)
        with open(args.output, "w") if args.output else contextlib.nullcontext(sys.stdout) as out:
            report = predict_files(args.paths, fmt, predictor, out, args.batch_size,
                                   progress=bool(args.output) and not args.quiet)
    except (BadInputError, ValueError, ServerError, OSError) as e:
        print(f"ihas predict: {e}", file=sys.stderr)
        return 1
    finally:
        predictor.close()
    print(report.summary() + (f"; written to {args.output}" if args.output else ""),
          file=sys.stderr)
    if report.rows_rejected > args.max_bad_fraction * report.rows_read:
        print(f"ihas predict: more than --max-bad-fraction {args.max_bad_fraction} of the rows "
              "were rejected (named above)", file=sys.stderr)
        return 1
    return 0


def _add_predict_verb(verbs) -> None:
    from serving.client import REQUEST_BATCH_SIZE

    predict = verbs.add_parser(
        "predict", help="score raw rows with a served model (TF Serving or `ihas serve`): "
        "click probability and cluster per row"
    )
    _add_raw_input_args(predict)
    predict.add_argument("--server", default="localhost:8500",
                         help="HOST:PORT of the gRPC API (of the REST API with --rest)")
    predict.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    predict.add_argument("--model_name", default="ihas", help="the served model's name")
    predict.add_argument("--model_version", type=int, help="a version (default: the latest)")
    predict.add_argument("--batch_size", type=int, default=REQUEST_BATCH_SIZE,
                         help="rows per request")
    predict.add_argument("--timeout", type=float, default=30, help="seconds per request")
    predict.add_argument("--ssl_ca_file", help="gRPC over TLS: PEM file of the CA (or the "
                         "self-signed certificate) the server's certificate must be signed by")
    predict.add_argument("--ssl_client_cert_file", help="with --ssl_ca_file: PEM file of a "
                         "client certificate (for a server with client_verify)")
    predict.add_argument("--ssl_client_key_file", help="with --ssl_client_cert_file: its "
                         "private key (PEM)")
    predict.add_argument("--output", help="TSV file for `file line probability cluster` "
                         "(default: standard output)")
    predict.set_defaults(func=_predict)


def clusters_flag(text: str) -> int | str:
    """`--clusters`: a K of at least 1, or "auto".

    Args:
        text: the flag's value.

    Returns:
        The K, or "auto".

    Raises:
        argparse.ArgumentTypeError: TEXT is neither.
    """
    if text == "auto":
        return text
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a K of at least 1 or auto, got {text!r}")


def _add_experiment_verb(verbs) -> None:
    from experiments.variants import DEFAULT_VARIANTS, Settings
    from ihas_keras import defaults
    from ihas_keras.layers.router import REPRESENTATIONS
    from ihas_keras.models.routed import RoutedModel

    def run(args: argparse.Namespace) -> int:
        from ihas_cli.experiment import run_command

        return run_command(args)

    exp = verbs.add_parser("experiment", help="the paper's research questions on one split: every "
                           "variant, per seed; OUT/report.json, report.md, figures")
    exp.add_argument("--data", required=True, help="raw data file (or folder of files)")
    exp.add_argument("--format", required=True, help="criteo, avazu, or generic with --schema")
    exp.add_argument("--schema", help="schema file (YAML or JSON) for --format generic")
    exp.add_argument("--out", required=True, help="folder: prepared/ (reused), report, figures")
    exp.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    exp.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                     help="comma-separated; also ihas@B, base@B")
    exp.add_argument("--backbones", default="dnn,fm,wide_deep,deepfm",
                     help="adds base@B and ihas@B per backbone B (RQ2); '' for none")
    exp.add_argument("--clusters", type=clusters_flag, default=Settings.clusters,
                     help="K, or auto (chosen by validation AUC among "
                     f"{', '.join(map(str, defaults.CLUSTER_CANDIDATES))})")
    exp.add_argument("--representation", choices=REPRESENTATIONS,
                     default=Settings.representation, help="what K-Means clusters")
    exp.add_argument("--warm-start", action=argparse.BooleanOptionalAction,
                     default=Settings.warm_start,
                     help="cluster models start from the search model's kept columns")
    exp.add_argument("--shared-embedding", action=argparse.BooleanOptionalAction,
                     default=Settings.shared_embedding,
                     help="cluster models are towers over one shared embedding")
    exp.add_argument("--routing", choices=RoutedModel.ROUTINGS, default=Settings.routing,
                     help="how shared towers route at serving: a linear router distilled from "
                     "the gate, or the gate itself")
    exp.add_argument("--patience", type=int, default=Settings.patience,
                     help="epochs without a better validation AUC before any model stops")
    exp.add_argument("--epochs", type=int, default=Settings.epochs,
                     help="most epochs of trained/retrained models")
    exp.add_argument("--pretrain-epochs", type=int, default=Settings.pretrain_epochs,
                     help="most epochs of pretraining")
    exp.add_argument("--search-epochs", type=int, default=Settings.search_epochs,
                     help="most epochs of bi-level search")
    exp.add_argument("--gate-every", type=int, default=Settings.gate_every,
                     help="a gate/selector step after every this many training batches "
                     "(default: by the batches per epoch)")
    exp.add_argument("--regularization-weight", type=float,
                     default=Settings.regularization_weight)
    exp.add_argument("--gate-learning-rate", type=float, default=Settings.gate_learning_rate)
    exp.add_argument("--gate-rank", type=int, default=Settings.gate_rank,
                     help="the iHAS gate kernel's rank (0: the full N* x N* kernel)")
    exp.add_argument("--adafs-k", type=int, help="fields AdaFS-hard keeps (default: half)")
    exp.add_argument("--batch-size", type=int, default=Settings.batch_size,
                     help="examples per training batch (default: by the training rows)")
    exp.add_argument("--embedding-dim", type=int, default=Settings.embedding_dim)
    exp.add_argument("--inference-batch-size", type=int, default=Settings.inference_batch_size)
    exp.add_argument("--strategy", default=Settings.strategy,
                     help="the tf.distribute strategy every model trains under: default, "
                     "one_device or mirrored (over the local GPUs, or the logical CPUs)")
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    exp.set_defaults(func=run)


def _version() -> str:
    """The installed distribution's version, read without importing TensorFlow."""
    try:
        return metadata.version("ihas")
    except metadata.PackageNotFoundError:  # a source tree that was not installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The `ihas` command's parser, every verb with its flags.

    Returns:
        The parser; each verb sets `func`, its handler, on the parsed arguments.
    """
    parser = argparse.ArgumentParser(
        prog="ihas",
        description="iHAS-Keras: instance-wise hierarchical architecture search for CTR models.",
    )
    parser.add_argument("--version", action="version", version=f"ihas {_version()}")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's and absl's INFO logs (before the verb)")
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
    _add_serve_verb(verbs)
    _add_predict_verb(verbs)
    _add_experiment_verb(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the `ihas` command.

    Unless the first argument is `--verbose`, TensorFlow's and absl's logs below WARNING are
    dropped (`quiet`; their C++ lines only when ARGV is None, the program's own run).

    Args:
        argv: the arguments after the program name; None for `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 1 for bad input or a failed check, 2 for bad usage.
    """
    as_program, argv = argv is None, sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered before the parser imports TensorFlow for its defaults
        print(f"ihas {_version()}")
        return 0
    if argv[:1] != ["--verbose"]:
        # TensorFlow's INFO lines; for `ihas serve` its WARNING lines too: an op's failure on
        # a bad request is logged there quoting the client's bytes raw and whole (a malformed
        # tf.Example), what the client is answered, with a bounded excerpt, anyway.
        # At least that level, whatever the environment holds (a level a caller left lower
        # would let the client's bytes through).
        wanted = 2 if argv[:1] == ["serve"] else 1
        held = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "")
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(max(wanted, int(held) if held.isdigit() else 0))
        if as_program:  # not when called in a process that owns its stderr (tests)
            quiet.filter_stderr()
        quiet.quiet_python_loggers()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    return args.func(args)

