"""The ``streamlin`` command line. Exit codes: 0 ok, 2 usage error, 1 failure."""

from __future__ import annotations

import argparse
import logging
import sys

from streamlin.errors import StreamlinError


def _demo(args: argparse.Namespace) -> int:
    from streamlin import demo

    demo.run(model_dir=args.model_dir, epochs=args.epochs)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlin", description="Streaming linear classifiers (tf.estimator's successor).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train, evaluate and predict on the bundled Adult data",
                               description="Train TF's census-tutorial linear model on UCI Adult, evaluate it and"
                               " predict. Example: streamlin demo --epochs 2")
    demo.add_argument("--model-dir", default=None, help="where to write checkpoints (default: a temporary folder)")
    demo.add_argument("--epochs", type=int, default=2)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (StreamlinError, KeyError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"streamlin {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
