"""Job logs: a rule's stderr and the library's log messages go to the rule's `log:` file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to(path: str | Path) -> None:
    """Send stderr (tqdm progress, warnings, tracebacks) and logging to `path`, line-buffered so the log
    shows progress while the job runs."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 (lives as long as the job)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
