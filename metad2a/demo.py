"""``make demo``: an end-to-end MetaD2A run that needs no download.

Until the offline meta-database of issue #5 is built, this runs on a *synthetic* data directory
in the original NB201 formats (Gaussian-cluster features, made-up accuracies) and says so: it
meta-trains a small generator and predictor through the same command lines as the README, then
searches an architecture for a dataset that is not among the meta-training tasks.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from metad2a.cli import main as cli_main
from metad2a.data.synthetic import write_synthetic_nb201


def main(argv: list[str] | None = None) -> int:
    work = Path(argv[0] if argv else "demo_run").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"==> MetaD2A demo in {work}")
    print("==> NOTE: synthetic data (Gaussian-cluster features, made-up accuracies); it shows the pipeline, "
          "not real accuracies")
    data, results = work / "data", work / "results"
    if not (data / "nasbench201.pt").is_file():
        write_synthetic_nb201(data, num_tasks=80, num_predictor_entries=400, targets={"cifar10": 10})
    common = ["--gpu", "cpu", "--data-path", str(data), "--save-path", str(results)]
    steps = [
        ["--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", "30", "--save-epoch", "30"],
        ["--model", "predictor", "--hs", "512", "--nz", "56", "--max-epoch", "5", "--save-epoch", "5"],
        ["--model", "generator", "--hs", "56", "--nz", "56", "--test", "--load-epoch", "30", "--num-gen-arch", "50",
         "--data-name", "cifar10"],
        ["--model", "predictor", "--hs", "512", "--nz", "56", "--test", "--num-gen-arch", "50", "--data-name",
         "cifar10"],
    ]
    for s in steps:
        print(f"\n$ python main.py {' '.join(s + common)}")
        rc = cli_main(s + common)
        if rc:
            return rc
    result = json.loads((results / "meta_test/cifar10/best_arch/result.json").read_text())
    first = result["runs"][0]
    print("\n==> chosen architecture (run 1):", first["top1_arch"])
    print(f"    predicted accuracy: {first['top1_predicted_acc']:.2f} (synthetic %)")
    print(f"    table accuracy:     {first['top1_acc']:.2f} (synthetic %)")
    print(f"==> done in {time.time() - t0:.0f}s; full results in {results / 'meta_test/cifar10/best_arch'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
