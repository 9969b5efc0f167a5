"""Run a command and die like a killed process after K results are persisted (a test helper).

    python tests/kill_after.py K -m metad2a.cli build-database ...
    python tests/kill_after.py K path/to/script.py ...

It counts ``ResultsJournal.append`` calls, which the database builders make in the driver process
as each job's outcome is persisted, and ends the process with ``os._exit(EXIT_CODE)`` (no clean-up,
no ``finally``) right after the K-th one, so that a test can check what a kill leaves and resume it.
"""

from __future__ import annotations

import os
import runpy
import sys

EXIT_CODE = 75


def main() -> None:
    limit, rest = int(sys.argv[1]), sys.argv[2:]
    from metad2a.build.results_journal import ResultsJournal

    append, count = ResultsJournal.append, 0

    def dying_append(self, record):
        nonlocal count
        append(self, record)
        count += 1
        if count >= limit:
            os._exit(EXIT_CODE)

    ResultsJournal.append = dying_append
    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
