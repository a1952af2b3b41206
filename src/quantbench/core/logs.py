"""Run one workflow step with its log file: progress lines there, one clear line on failure.

Everything a step prints (logging, warnings, stray stderr) goes to the step's log. An error the
user can fix (bad data, bad config, an unusable checkpoint: any ``ValueError``) ends the process
with exit status 1 and a single ``quantbench: <message>`` line on the terminal and in the log.
Anything else keeps its traceback in the log. SIGTERM and SIGINT (Snakemake cancelling a job,
``scancel``, Ctrl-C) raise ``StepInterrupted``: ``finally`` blocks run, so no temporary file is
left behind, the log says which signal ended the step, and the process then dies of that signal.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StepInterrupted(BaseException):
    """A termination signal arrived; a ``BaseException`` so that ``except Exception`` lets it by."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    for sig in _SIGNALS:  # a second signal must not break the cleanup of the first
        signal.signal(sig, signal.SIG_IGN)
    raise StepInterrupted(signum)


def _catch_signals() -> dict[int, object]:
    previous = {}
    for sig in _SIGNALS:
        try:
            previous[sig] = signal.signal(sig, _interrupt)
        except ValueError:  # not the main thread: leave the signals alone
            break
    return previous


def _die_of(signum: int) -> NoReturn:
    """End the process by ``signum`` itself, so the parent sees how the step ended."""
    logging.shutdown()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # only if the signal did not end the process


def _fail(message: str, terminal, log_stream) -> NoReturn:
    line = f"quantbench: {message}"
    print(line, file=log_stream, flush=True)
    print(line, file=terminal, flush=True)
    sys.exit(1)


def library_files() -> list[str]:
    """Source files of every quantbench module loaded so far, relative to the package folder.

    The workflow declares the modules each rule runs as inputs; the tests compare the two.
    """
    root = Path(__file__).resolve().parents[1]
    files = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".")[0] == "quantbench" and path:
            files.add(Path(path).resolve().relative_to(root).as_posix())
    return sorted(files)


def run_step(log_path: str | os.PathLike[str], main: Callable[[], None]) -> None:
    """Call ``main`` with logging and stderr sent to ``log_path``."""
    terminal = sys.stderr
    interrupted = 0
    with open(log_path, "w", encoding="utf-8", buffering=1) as log_stream:
        sys.stderr = log_stream
        logging.basicConfig(stream=log_stream, level=logging.INFO, format=FORMAT, force=True)
        logging.captureWarnings(True)
        log = logging.getLogger("quantbench.step")
        previous = _catch_signals()
        log.info("step started (pid %d)", os.getpid())
        try:
            main()
            log.info("library modules used: %s", " ".join(library_files()))
            log.info("step finished")
        except StepInterrupted as exc:
            log.warning("step interrupted by %s; rerun the workflow to redo it", exc)
            interrupted = exc.signum
        except ValueError as exc:  # user-fixable: data, config, checkpoint
            _fail(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__, terminal, log_stream
            )
        except Exception as exc:
            traceback.print_exc(file=log_stream)
            _fail(f"{type(exc).__name__}: {exc} (traceback in {log_path})", terminal, log_stream)
        finally:
            sys.stderr = terminal
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if interrupted:
        _die_of(interrupted)
