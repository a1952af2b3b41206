"""Run one workflow step with its log file: progress lines there, one clear line on failure.

Everything a step prints (logging, warnings, stray stderr) goes to the step's log. An error the
user can fix (bad data, bad config, an unusable checkpoint: any ``ValueError``) ends the process
with exit status 1 and a single ``quantbench: <message>`` line on the terminal and in the log.
Anything else keeps its traceback in the log.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _fail(message: str, terminal, log_stream) -> NoReturn:
    line = f"quantbench: {message}"
    print(line, file=log_stream, flush=True)
    print(line, file=terminal, flush=True)
    sys.exit(1)


def run_step(log_path: str | os.PathLike[str], main: Callable[[], None]) -> None:
    """Call ``main`` with logging and stderr sent to ``log_path``."""
    terminal = sys.stderr
    with open(log_path, "w", encoding="utf-8", buffering=1) as log_stream:
        sys.stderr = log_stream
        logging.basicConfig(stream=log_stream, level=logging.INFO, format=FORMAT, force=True)
        logging.captureWarnings(True)
        log = logging.getLogger("quantbench.step")
        log.info("step started (pid %d)", os.getpid())
        try:
            main()
            log.info("step finished")
        except ValueError as exc:  # user-fixable: data, config, checkpoint
            _fail(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__, terminal, log_stream
            )
        except Exception as exc:
            traceback.print_exc(file=log_stream)
            _fail(f"{type(exc).__name__}: {exc} (traceback in {log_path})", terminal, log_stream)
        finally:
            sys.stderr = terminal
