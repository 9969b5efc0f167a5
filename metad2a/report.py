"""``metad2a search``'s report: ``report.md`` with its PNG figures, ``candidates.csv`` and
``summary.json`` (docs/data.md#search-report). Figures need matplotlib (the ``plot`` extra); without
it the report keeps its tables and says which extra draws the figures."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metad2a.files import to_json, write_files
from metad2a.plotting import PLOT_EXTRA, has_pyplot, pyplot, save_figure
from metad2a.search_spaces.base import SearchSpace

log = logging.getLogger("metad2a")

CSV_FIELDS = ("rank", "arch", "score", "predicted_accuracy", "random_percentile", "params_m", "mflops",
              "latency_ms")
TOP = 10


def percentile(score: float, baseline: Sequence[float]) -> float | None:
    """Share (%) of ``baseline`` scores strictly below ``score`` (ties count half)."""
    if not baseline:
        return None
    below = sum(b < score for b in baseline) + 0.5 * sum(b == score for b in baseline)
    return 100.0 * below / len(baseline)


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def plot_scores(path: Path, generated: Sequence[float], random: Sequence[float]) -> Path:
    """Histogram of the predictor's scores: the generated candidates against random architectures."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    lo, hi = min([*generated, *random]), max([*generated, *random])
    bins = [lo + (hi - lo) * i / 30 for i in range(31)] if hi > lo else 10
    ax.hist(random, bins=bins, alpha=0.6, color="0.55", label=f"random architectures ({len(random)})", density=True)
    ax.hist(generated, bins=bins, alpha=0.6, color="tab:blue", label=f"generated candidates ({len(generated)})",
            density=True)
    ax.set_xlabel("predicted score (same predictor, same resampled sets)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training(path: Path, runs: Sequence[dict[str, Any]]) -> Path:
    """Held-out accuracy and training loss per epoch of every trained candidate."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=120)
    for r in runs:
        ep = [h["epoch"] for h in r["history"]]
        label = f"#{r['rank']}" + (" (kept)" if r.get("kept") else "")
        a1.plot(ep, [h["train_loss"] for h in r["history"]], marker=".", label=label)
        a2.plot(ep, [h["eval_acc"] for h in r["history"]], marker=".", label=label)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a2.set_xlabel("epoch")
    a2.set_ylabel(f"{runs[0]['eval_split'] if runs else 'held-out'} accuracy (%)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def candidates_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in CSV_FIELDS})
    return buf.getvalue()


def write_report(out: Path, space: SearchSpace, summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                 chosen_arch: Any, generated_scores: Sequence[float], random_scores: Sequence[float],
                 training: dict[str, Any] | None) -> dict[str, Path]:
    """Write the figures, ``report.md``, ``candidates.csv`` and ``summary.json`` into ``out``.

    Args:
        summary: the run's summary (``summary.json``), also the report's source of numbers.
        rows: the candidates, best first (``CSV_FIELDS`` keys; ``arch`` as its key string).
        chosen_arch: the architecture exported.
        generated_scores, random_scores: the two score samples of the distribution figure.
        training: the training stage's record, or None.
    """
    figs: dict[str, Path] = {}
    plots = has_pyplot()
    if plots:
        if space.draw_arch(chosen_arch, out / "architecture.png"):
            figs["architecture"] = out / "architecture.png"
        figs["scores"] = plot_scores(out / "scores.png", generated_scores, random_scores)
        if training and training.get("runs"):
            figs["training"] = plot_training(out / "training.png", training["runs"])
    if (out / "pareto.png").is_file():
        figs["pareto"] = out / "pareto.png"
    s = summary
    lines = [f"# Architecture search for `{s['images']}`", ""]
    lines += [f"- search space: **{s['space']}**; {s['num_classes']} classes ({', '.join(s['class_names'][:10])}"
              f"{', ...' if len(s['class_names']) > 10 else ''})",
              f"- checkpoints: {s['checkpoints']['description']}",
              f"- features: {s['features']['extractor']} ({s['features']['feature_dim']}-d), "
              f"{sum(s['features']['images_per_class'])} images",
              f"- search: {s['search']['unique']} unique valid architectures from {s['search']['decoded']} decoded "
              f"graphs in {s['search']['seconds']:.1f} s" + (f" ({s['search']['stop_reason']})"
                                                            if s['search']['stop_reason'] else ""),
              ""]
    ch = s["chosen"]
    lines += ["## Chosen architecture", "", f"`{ch['arch_key']}`", ""]
    lines += [f"- predicted score {ch['score']:.4f}: better than **{_fmt(ch['random_percentile'], '.0f')} %** of "
              f"{len(random_scores)} random architectures of the space scored by the same predictor"]
    if ch.get("predicted_accuracy") is not None:
        lines += [f"- in the predictor's units: {ch['predicted_accuracy']:.1f} % = {s['predicted_accuracy_meaning']}"]
    lines += [f"- {_fmt(ch.get('params_m'), '.3f')} M parameters, {_fmt(ch.get('mflops'), '.1f')} MFLOPs at "
              f"{s['input_size']} px"]
    if training:
        lines += [f"- trained: {training['summary']}"]
    else:
        start = (f"the weights of {s['network_weights']}, not trained further" if s.get("network_weights")
                 else "untrained weights")
        lines += [f"- not trained (run with `--train`): the exported network has {start} (its batch-norm "
                  "statistics are set from your training images)"]
    lines += [""]
    if "architecture" in figs:
        lines += ["![architecture](architecture.png)", ""]
    lines += ["## Generated candidates against random architectures", "",
              "The predictor's scores of the generated candidates and of random architectures of the space, on the "
              "same resampled sets of your images (canonical graphs).", ""]
    if "scores" in figs:
        lines += ["![scores](scores.png)", ""]
    if "pareto" in figs:
        lines += ["## Budget", "", "![pareto](pareto.png)", ""]
    if training:
        lines += ["## Training", "", training["description"], ""]
        if "training" in figs:
            lines += ["![training](training.png)", ""]
    lines += [f"## Top {min(TOP, len(rows))} candidates", "",
              "| rank | architecture | score | better than random | predicted acc. | params (M) | MFLOPs | latency (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows[:TOP]:
        lines.append(f"| {r['rank']} | `{r['describe']}` | {r['score']:.4f} | {_fmt(r['random_percentile'], '.0f')} % "
                     f"| {_fmt(r['predicted_accuracy'], '.1f')} | {_fmt(r['params_m'], '.3f')} | "
                     f"{_fmt(r['mflops'], '.1f')} | {_fmt(r['latency_ms'], '.2f')} |")
    lines += ["", "All candidates: [candidates.csv](candidates.csv); numbers: [summary.json](summary.json).", ""]
    ex = s.get("export")
    if ex:
        lines += ["## Export", "",
                  f"`export/`: model.pt, model.ts, model.onnx (opset {ex['onnx_opset']}, dynamic batch), "
                  "preprocess.json.", "",
                  f"Verified on {ex['images']} real images of your folder ({ex['verified_on']}): largest absolute "
                  f"logit difference from PyTorch **{ex['torchscript_max_abs_diff']:.2e}** (TorchScript) and "
                  f"**{ex['onnx_max_abs_diff']:.2e}** (onnxruntime); tolerance {ex['tolerance']:g}.", ""]
    if not plots:
        lines += [f"_Figures need matplotlib: {PLOT_EXTRA}_", ""]
    files = {out / "report.md": "\n".join(lines), out / "candidates.csv": candidates_csv(rows),
             out / "summary.json": to_json(s, indent=2) + "\n"}
    write_files(files)
    return {**figs, **{p.stem: p for p in files}}
