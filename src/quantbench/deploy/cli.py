"""The ``quantbench`` console script: ``quantbench predict ARTIFACT CSV -o OUT.csv``.

A problem the user can fix ends in one ``quantbench predict: ...`` line on stderr and exit
status 1, with no output file written. Imports no torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantbench", description="Use what the quantbench workflow produced."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser(
        "predict",
        help="classify the rows of a raw CSV with an exported ONNX artifact",
        description="Classify every row of a raw CSV (the layout the workflow read) with an "
        "artifact folder results/deploy/<model>/<rep>/<method>/; writes the identifier columns, "
        "the predicted class and one probability column per class.",
    )
    predict.add_argument("artifact", help="artifact folder (or its model.onnx / manifest.json)")
    predict.add_argument("csv", help="raw CSV to classify")
    predict.add_argument("-o", "--output", required=True, help="CSV to write")
    predict.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per chunk (default: the manifest's)"
    )
    predict.add_argument(
        "--unknown-categories",
        choices=("error", "encode"),
        default="error",
        help="a category never seen in training: stop with an error (default), or encode it as "
        "the workflow scored such rows (no one-hot bit, ordinal code -1)",
    )
    predict.add_argument(
        "--nonfinite",
        choices=("error", "blank"),
        default="error",
        help="a missing or infinite value where the model was trained without imputing: stop "
        "with an error (default), or write that row with an empty class and probabilities",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from quantbench.deploy.predict import predict_csv

    if args.chunk_rows is not None and args.chunk_rows < 1:
        print("quantbench predict: --chunk-rows must be 1 or more", file=sys.stderr)
        return 1
    try:
        predict_csv(
            args.artifact,
            args.csv,
            args.output,
            chunk_rows=args.chunk_rows,
            unknown_categories=args.unknown_categories,
            nonfinite=args.nonfinite,
        )
    except KeyboardInterrupt:
        print("quantbench predict: interrupted; no output written", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"quantbench predict: {message}", file=sys.stderr)
        return 1
    except Exception as exc:  # onnxruntime's own errors: one line, the artifact named
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"quantbench predict: {args.artifact}: {type(exc).__name__}: {message}; re-export "
            "the artifact with this quantbench and onnxruntime",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
