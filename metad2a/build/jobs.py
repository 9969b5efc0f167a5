"""What the database builders share: a saved plan, a results journal, and journaled Ray jobs.

Both builders (NB201 :mod:`metad2a.build.nb201_database`, OFA/MobileNetV3
:mod:`metad2a.build.ofa_database`) follow the same rules:

1. **Plan.** All random choices of a build are made once, from its seed, and saved as JSON together
   with the settings that produced them (:func:`load_or_save_plan`). A later run with the same
   settings resumes that plan; a run with other settings is refused with the differences listed.
2. **Journal.** Every job's final outcome (success, or failure after the pool's retries) is appended
   to a :class:`~metad2a.build.results_journal.ResultsJournal` as soon as it is known
   (:func:`run_journaled`), so a killed build loses only the jobs still running.
3. **Resume.** A rerun runs only the jobs without a record, plus those recorded as failed when asked
   to (``retry_failed``, :func:`pending_keys`).
4. **Failures** are left out of the written database and listed in the build's summary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from metad2a.build.ray_pool import JobOutcome, RayPool
from metad2a.build.results_journal import ResultsJournal
from metad2a.errors import DataFileError, MetaD2AError
from metad2a.files import to_json, write_text
from metad2a.version import __version__

log = logging.getLogger("metad2a")

PLAN_FORMAT = "metad2a-build-plan"


def _json_normal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(to_json(value))


def load_or_save_plan(path: str | Path, settings: Mapping[str, Any], make: Callable[[], Mapping[str, Any]], *,
                      owner: str, fresh_hint: str) -> tuple[dict[str, Any], bool]:
    """The plan saved at ``path`` when its settings equal ``settings``, else a new one from ``make()``.

    Args:
        path: the plan file (JSON).
        settings: what defines the jobs and their results; a resumed build must repeat them.
        make: returns the plan's content (JSON-ready) when there is no saved plan.
        owner: the build as users name it in messages (an ``--out`` folder, a shard).
        fresh_hint: how to start another build instead (e.g. "choose another --out").

    Returns:
        (the plan's content including ``settings``, whether it was resumed).

    Raises:
        DataFileError: the saved plan is unreadable.
        MetaD2AError: the saved plan was made with other settings.
    """
    path = Path(path)
    settings = _json_normal(dict(settings))
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            old = saved["settings"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataFileError(f"{path}: unreadable build plan ({e}); delete it to start afresh") from e
        if old != settings:
            keys = list(settings) + [k for k in old if k not in settings]
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in keys
                             if old.get(k) != settings.get(k))
            raise MetaD2AError(f"{owner} holds a build with other settings ({diff}); repeat its flags to "
                               f"resume it, or {fresh_hint}")
        return saved, True
    body = {"format": PLAN_FORMAT, "metad2a_version": __version__, "settings": settings, **make()}
    write_text(path, to_json(body) + "\n")
    return _json_normal(body), False


def pending_keys(keys: Iterable[str], done: Mapping[str, Mapping[str, Any]], retry_failed: bool) -> list[str]:
    """The jobs (in plan order) still to run: no record yet, or a failed one when ``retry_failed``."""
    return [k for k in keys if k not in done or (retry_failed and done[k].get("status") == "failed")]


def warn_stray(journal: ResultsJournal, done: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Warn about journal records whose key is not a job of the plan (they are ignored)."""
    known = set(keys)
    stray = [k for k in done if k not in known]
    if stray:
        log.warning(f"warning: {journal.path}: {len(stray)} record(s) not in the plan are ignored")


def job_record(outcome: JobOutcome, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The journal line of a finished job: its identifying ``fields``, the outcome, and (on
    success) everything the job returned."""
    rec: dict[str, Any] = {"key": outcome.key, **fields, "status": "ok" if outcome.ok else "failed",
                           "attempts": outcome.attempts, "seconds": round(outcome.seconds, 3),
                           "error": outcome.error, "node": outcome.node,
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if outcome.ok:
        rec.update(outcome.value)
    return rec


def run_journaled(pool: RayPool, journal: ResultsJournal, jobs: list[tuple[str, Any]],
                  fields: Mapping[str, Mapping[str, Any]], job_fn: Callable[[Any, Any, str], Any], context: Any, *,
                  total: int, desc: str, progress: bool = True,
                  on_record: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run ``jobs`` on ``pool`` and append each final outcome to ``journal`` as it arrives.

    Args:
        pool: an entered :class:`RayPool` (its retries apply to every job).
        journal: where the outcomes go.
        jobs: ``(key, payload)`` pairs still to run.
        fields: per key, what identifies the job in its record (task, architecture, seed, ...).
        job_fn: ``job_fn(payload, context, device)``.
        context: shared by all jobs.
        total: jobs of the whole plan (for the progress bar, which starts at the ones done before).
        desc: bar label.
        progress: show the bar.
        on_record: called with every record after it is persisted (e.g. to save partial output).

    Returns:
        The number of outcomes persisted in this run.
    """
    count = 0

    def persist(outcome: JobOutcome) -> None:
        nonlocal count
        rec = job_record(outcome, fields[outcome.key])
        journal.append(rec)
        count += 1
        if not outcome.ok:
            log.warning(f"warning: job {outcome.key} failed after {outcome.attempts} attempt(s): {outcome.error}")
        if on_record is not None:
            on_record(rec)

    pool.run(job_fn, jobs, persist, context, total=total, done_before=total - len(jobs), desc=desc,
             progress=progress)
    return count
