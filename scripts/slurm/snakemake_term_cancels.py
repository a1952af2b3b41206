#!/usr/bin/env python3
"""Run Snakemake so that SIGTERM and SIGHUP stop it the way Ctrl-C does.

Snakemake 9 treats SIGTERM as "finish what is running": it submits nothing new but waits for
every job it has submitted, including jobs still pending in the SLURM queue, which can take
hours. Ctrl-C (SIGINT) instead cancels them all (`scancel`) and exits at once. This wrapper
starts `python -m snakemake` with its own arguments and turns a SIGTERM or SIGHUP it receives
(`kill PID`, a closed terminal, a batch system stopping a session) into a SIGINT for Snakemake.

    python scripts/slurm/snakemake_term_cancels.py --profile slurm

Its exit status is Snakemake's. Ctrl-C in a terminal reaches Snakemake directly (same process
group); the wrapper ignores it and waits for Snakemake to finish cancelling.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    # A Python-level handler (not SIG_IGN) so that the child starts with default dispositions.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *argv])

    def to_sigint(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, to_sigint)
    status = proc.wait()
    return 128 - status if status < 0 else status  # killed by a signal: the shell's convention


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
