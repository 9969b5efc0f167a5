"""``metad2a search`` end to end on the CPU: wall time per stage, the export's verification, resumption.

    OMP_NUM_THREADS=1 python benchmarks/bench_search_cmd.py [--work DIR] [--write]

Three runs with the committed NB201 prior (no downloads):

1. ``digits`` (scikit-learn's 8x8 digits, 10 classes, 30 images per class), 500 architectures, no
   training: what ``make demo`` runs after the ``main.py`` search;
2. the same command again: resumption (every stage but the report is skipped);
3. a generated 3-class folder (20 images per class, 16 px), 50 architectures, ``--train --epochs 1
   --top-k 2``: the path with training.

Stage times come from each run's ``state.json``; ``--write`` puts the table into BENCHMARKS.md between
this script's markers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from _search_common import REPO, machine, write_section
from PIL import Image

sys.path.insert(0, str(REPO))

from metad2a.cli import console_main  # noqa: E402
from metad2a.search_cmd import STAGES  # noqa: E402

MARK = "bench_search_cmd"


def make_images(root: Path, classes: int = 3, per_class: int = 20, size: int = 16, seed: int = 0) -> Path:
    """A class-per-folder set of random RGB PNGs whose classes differ in mean colour."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size, size, 3))
            base[..., c % 3] = 160
            px = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(d / f"{i}.png")
    return root


def timed(argv: list[str]) -> tuple[float, dict]:
    t0 = time.time()
    rc = console_main(["search", *argv])
    if rc != 0:
        raise SystemExit(f"metad2a search {' '.join(argv)} failed with exit status {rc}")
    out = Path(argv[argv.index("--out") + 1])
    return time.time() - t0, json.loads((out / "state.json").read_text())["stages"]


def row(label: str, wall: float, stages: dict, summary: dict | None, reused: bool = False) -> str:
    parts = []
    for name in STAGES:
        rec = stages.get(name)
        parts.append("skipped" if reused and name != "report" else (f"{rec['seconds']:.1f}" if rec else "–"))
    ex = (summary or {}).get("export") or {}
    diff = (f"{ex['onnx_max_abs_diff']:.1e} / {ex['torchscript_max_abs_diff']:.1e}" if ex else "–")
    return f"| {label} | **{wall:.1f}** | {' | '.join(parts)} | {diff} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/metad2a-bench-search-cmd"))
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    rows = []
    digits = ["digits", "--out", str(a.work / "digits"), "--max-per-class", "30", "--num-archs", "500"]
    wall, st = timed(digits)
    summary = json.loads((a.work / "digits" / "summary.json").read_text())
    rows.append(row("digits, 10 classes x 30 images, 500 archs, no training", wall, st, summary))
    before = {k: v["finished"] for k, v in st.items()}
    wall, st = timed(digits)
    reused = all(st[k]["finished"] == before[k] for k in STAGES if k not in ("report", "train") and k in st)
    rows.append(row("the same command again (resume)", wall, st, None, reused=reused))
    images = make_images(a.work / "images")
    wall, st = timed([str(images), "--out", str(a.work / "trained"), "--num-archs", "50", "--train", "--epochs", "1",
                      "--top-k", "2"])
    summary_t = json.loads((a.work / "trained" / "summary.json").read_text())
    rows.append(row("3 classes x 20 images (16 px), 50 archs, --train --epochs 1 --top-k 2", wall, st, summary_t))
    text = "\n".join([
        "```bash", "OMP_NUM_THREADS=1 python benchmarks/bench_search_cmd.py --write", "```", "",
        "| run | wall s | " + " | ".join(f"{s} s" for s in STAGES) + " | export max abs diff, ONNX / TorchScript |",
        "|---|---|" + "---|" * len(STAGES) + "---|",
        *rows, "",
        f"Wall time includes loading the prior and the extractor (the process is already running). Chosen for "
        f"the digits: `{summary['chosen']['arch_key']}` (better than {summary['chosen']['random_percentile']:.0f} % "
        f"of {summary['baseline']['random_archs']} random cells by the prior's ranking). Resumption reused every "
        f"stage before the report: {'yes' if reused else 'NO'}. Machine: {machine()}.",
    ])
    print(text)
    if a.write:
        write_section(MARK, text)


if __name__ == "__main__":
    main()
