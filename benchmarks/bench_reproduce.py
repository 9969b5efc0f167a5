"""Wall time of ``metad2a reproduce`` per dataset on this machine: measured with ``--quick``, and the full
protocol extrapolated from measured unit costs (README "Reproducing the paper").

    OMP_NUM_THREADS=2 python benchmarks/bench_reproduce.py [--work /tmp/metad2a-bench-reproduce] [--skip-ofa]

No released file can be downloaded here, so everything runs on synthetic files of the original formats at the
real sizes that matter for time: 512-d features with each dataset's class count (20 rows per class are sampled
per set, so more rows would cost nothing), the README's model sizes, stand-in checkpoints whose generator decodes
only valid architectures (``write_synthetic_released_checkpoints``), tiny raw image sets (``--quick`` trains on
them for one epoch). Measured:

1. ``metad2a reproduce nb201 --quick`` and ``metad2a reproduce ofa --quick``: wall seconds per dataset
   (done records);
2. NB201 search at the protocol's size (500 / 50 architectures, 10 runs for the CIFARs): generation + ranking
   seconds per run;
3. TinyNetwork (C=16, N=5, batch 256, 32 px) training and evaluation seconds per image;
4. OFA pooled search: seconds per decoded graph (100 resampled sets pooled) for 10, 37 and 100 classes;
5. OFA subnet fine-tuning (224 px, batch 96; evaluation batch 200) seconds per image.

The full protocol is then extrapolated: NB201 search = runs x per-run seconds; ``--train-arch`` = 3 seeds x
epochs x (train images x train s/img + 2 x test images x eval s/img: ori-test and its two halves); OFA search =
runs x 200 x s/graph (every decoded graph valid and new: a lower bound); fine-tuning = 150 epochs x (train
images x s/img + test images x eval s/img). Dataset sizes: the original's splits (see SIZES). Prints JSON and
Markdown tables for the README and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from metad2a import cli  # noqa: E402
from metad2a.data.synthetic import write_raw_images  # noqa: E402
from metad2a.search_spaces import SEARCH_SPACES  # noqa: E402

NB201, OFA = SEARCH_SPACES["nasbench201"], SEARCH_SPACES["ofa_mbv3"]
# (training images, test images) of the splits the original trains / fine-tunes on
SIZES = {"mnist": (60000, 10000), "svhn": (73257, 26032), "aircraft": (6667, 3333), "pets": (6240, 1109),
         "cifar10": (50000, 10000), "cifar100": (50000, 10000), "aircraft100": (6667, 3333)}
TRAIN_EPOCHS = {"mnist": 50, "svhn": 200, "aircraft": 200, "pets": 200}  # the NB201 recipe
FINETUNE_EPOCHS = 150
SEEDS = 3
CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MID_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


def no_checksums() -> None:
    """torchvision checks the md5 of the real CIFAR and SVHN files; the synthetic ones cannot match."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    cifar.check_integrity = svhn.check_integrity = lambda *a, **k: True


def nb201_folder(work: Path) -> Path:
    from metad2a.search_spaces.nasbench201.synthetic import (
        write_synthetic_nb201,
        write_synthetic_released_checkpoints,
    )

    folder = work / "MetaD2A_nas_bench_201"
    if not (folder / "ready").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        targets = {d.name: NB201.dataset_info(d.name).num_classes for d in NB201.reproduction.datasets}
        write_synthetic_nb201(folder / "data", num_source_classes=100, num_tasks=400, num_predictor_entries=1000,
                              targets=targets)
        for name in TRAIN_EPOCHS:
            write_raw_images(folder / "data" / "raw-data" / name, name, train=64, test=32)
        write_synthetic_released_checkpoints(folder / "results")
        (folder / "ready").write_text("")
    return folder


def ofa_folder(work: Path) -> Path:
    from metad2a.search_spaces.ofa_mbv3.downloads import OFA_SUPERNET_TARGET
    from metad2a.search_spaces.ofa_mbv3.supernet import build_supernet
    from metad2a.search_spaces.ofa_mbv3.synthetic import (
        write_synthetic_ofa,
        write_synthetic_released_checkpoints,
    )

    folder = work / "MetaD2A_ofa"
    if not (folder / "ready").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        targets = {d.name: OFA.dataset_info(d.name).num_classes for d in OFA.reproduction.datasets}
        write_synthetic_ofa(folder / "data", rows_per_class=20, targets=targets)
        for name, root in (("cifar10", "cifar10"), ("cifar100", "cifar100"), ("aircraft100", "."), ("pets", "pets")):
            write_raw_images(folder / "data" / root, name, train=32, test=16)
        write_synthetic_released_checkpoints(folder / "results")
        (folder / OFA_SUPERNET_TARGET).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": build_supernet(seed=0).state_dict()}, folder / OFA_SUPERNET_TARGET)
        (folder / "ready").write_text("")
    return folder


def quick(folder: Path, argv: list[str]) -> dict[str, float]:
    """Wall seconds per dataset and column of ``metad2a reproduce ... --quick`` (from the done records)."""
    os.chdir(folder)
    t0 = time.time()
    assert cli.console_main(argv) == 0
    total = time.time() - t0
    out = folder / "results" / "reproduction" / f"{argv[1]}-quick"
    walls = {f"{p.stem} ({p.parent.name})": json.loads(p.read_text())["wall_seconds_total"]
             for p in sorted((out / "done").glob("*/*.json")) if p.parent.name != "retrain"}
    for p in sorted((out / "done" / "retrain").glob("*.json")):
        walls[f"meta-training {p.stem}"] = json.loads(p.read_text())["wall_seconds"]
    walls["total"] = total
    return walls


def nb201_search(folder: Path) -> dict[str, float]:
    """Search seconds per run at the protocol's size (generation + ranking, as the original times them)."""
    os.chdir(folder)
    out = {}
    for d in NB201.reproduction.datasets:
        common = ["--gpu", "cpu", "--num-gen-arch", str(d.num_gen_arch), "--data-name", d.name,
                  "--save-path", "results"]
        cli.run(["--model", "generator", "--test", "--load-epoch", "400", *common], NB201.name)
        cli.run(["--model", "predictor", "--test", "--train-arch", "false", *common], NB201.name)
        res = json.loads((folder / "results/meta_test" / d.name / "best_arch/result.json").read_text())
        from metad2a.data.archive import read_archive

        gen = [read_archive(p)[0] for p in sorted((folder / "results/meta_test" / d.name).glob(
            "generated_arch/run_*.txt"))]
        out[d.name] = sum(gen) / len(gen) + res["predictor_seconds_mean"]
    return out


def tinynetwork_costs() -> dict[str, dict[str, float]]:
    """Seconds per image of TinyNetwork training and evaluation (C=16, N=5, batch 256, 32 px)."""
    from torch.utils.data import TensorDataset

    from metad2a.search_spaces.nasbench201.train import TrainRecipe, train_arch

    n = 512
    data = TensorDataset(torch.randn(n, 3, 32, 32), torch.arange(n) % 10)
    out = {}
    for name, cell in (("all-conv3x3 cell", CONV_CELL), ("mixed cell", MID_CELL)):
        r = train_arch(cell, data, {"t": data}, 10, TrainRecipe(epochs=1), seed=0, progress=False)
        out[name] = {"train_s_per_image": r["train_times"][0] / n, "eval_s_per_image": r["valid_times"]["t@0"] / n}
    return out


def ofa_search_costs(folder: Path) -> dict[str, float]:
    """Seconds per decoded graph of the pooled search (100 resampled sets pooled into one set), from the
    ``--quick`` run's results."""
    out = {}
    for d in OFA.reproduction.datasets:
        p = folder / "results/reproduction/ofa-quick/released/meta_test" / d.name / str(d.quick_num_gen_arch)
        if (p / "result.json").is_file():
            runs = json.loads((p / "result.json").read_text())["runs"]
            out[f"{OFA.dataset_info(d.name).num_classes} classes"] = (
                sum(r["seconds"] for r in runs) / sum(r["decoded"] for r in runs))
    return out


def finetune_costs() -> dict[str, float]:
    """Seconds per image of fine-tuning a ~200-MFLOP subnet at 224 px (batch 96) and evaluating it (batch 200)."""
    from metad2a.search_spaces.ofa_mbv3.supernet import (
        build_supernet,
        extract_subnet,
        net_size,
        new_classifier,
    )

    arch = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5}
    net = new_classifier(extract_subnet(build_supernet(seed=0), arch), 100, 0.2)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    x, y = torch.randn(96, 3, 224, 224), torch.randint(0, 100, (96,))
    times = []
    for _ in range(3):
        t0 = time.time()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        times.append(time.time() - t0)
    net.eval()
    xe = torch.randn(200, 3, 224, 224)
    t0 = time.time()
    with torch.no_grad():
        net(xe)
    return {"mflops_1000_classes": net_size(extract_subnet(build_supernet(seed=0), arch))[1],
            "train_s_per_image": min(times[1:]) / 96, "eval_s_per_image": (time.time() - t0) / 200}


def train_arch_seconds(m: dict, name: str, epochs: int) -> float:
    """``--train-arch`` on the real images: 3 seeds x epochs x (training + ori-test, x-valid, x-test)."""
    tiny = m["tinynetwork"]["mixed cell"]
    tr, te = SIZES[name]
    return SEEDS * epochs * (tr * tiny["train_s_per_image"] + 2 * te * tiny["eval_s_per_image"])


def extrapolate(m: dict) -> dict[str, dict[str, float]]:
    """The full protocol per dataset (seconds), from the measured unit costs."""
    out: dict[str, dict[str, float]] = {}
    for d in NB201.reproduction.datasets:
        search = NB201.dataset_info(d.name).runs * m["nb201_search_s_per_run"][d.name]
        row = {"search": search}
        if d.name in TRAIN_EPOCHS:
            row["train-arch"] = train_arch_seconds(m, d.name, TRAIN_EPOCHS[d.name])
        out[f"nb201 {d.name}"] = row
    if "ofa_search_s_per_graph" in m:
        ft = m["finetune"]
        for d in OFA.reproduction.datasets:
            c = OFA.dataset_info(d.name).num_classes
            per_graph = m["ofa_search_s_per_graph"][f"{c} classes"]
            tr, te = SIZES[d.name]
            out[f"ofa {d.name}"] = {
                "search": OFA.dataset_info(d.name).runs * d.num_gen_arch * per_graph,
                "fine-tuning": FINETUNE_EPOCHS * (tr * ft["train_s_per_image"] + te * ft["eval_s_per_image"])}
    return out


def human(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def quick_cells(m: dict, key: str) -> tuple[str, str]:
    """(``--quick`` measured on the synthetic files, ``--quick`` on the real files extrapolated)."""
    space, name = key.split()
    q = m.get(f"quick_{space}", {}).get(f"{name} (released)")
    if q is None and key == "ofa cifar100" and "aircraft100 (released)" in m.get("quick_ofa", {}):
        d = OFA.reproduction.dataset(name)
        q = (m["quick_ofa"]["aircraft100 (released)"] + (OFA.dataset_info(name).runs - 1) * d.quick_num_gen_arch
             * m["ofa_search_s_per_graph"]["100 classes"])
        return f"{human(q)} (extrapolated from aircraft100)", f"≈ {human(q)}"
    if q is None:
        return "–", "–"
    if space == "nb201" and name in TRAIN_EPOCHS:  # one epoch per seed over the full training set
        return human(q), f"{human(q + train_arch_seconds(m, name, 1))} (1 epoch x 3 seeds of training)"
    return human(q), f"≈ {human(q)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/metad2a-bench-reproduce")
    p.add_argument("--skip-ofa", action="store_true", help="NB201 only")
    p.add_argument("--from-json", default=None,
                   help="print the tables of an earlier run's <work>/bench_reproduce.json instead of measuring")
    args = p.parse_args()
    if args.from_json:
        m = json.loads(Path(args.from_json).read_text())
    else:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        no_checksums()
        m = {"threads": torch.get_num_threads(), "load_before": os.getloadavg()}
        nb = nb201_folder(work)
        m["quick_nb201"] = quick(nb, ["reproduce", "nb201", "--gpu", "cpu", "--quick"])
        m["nb201_search_s_per_run"] = nb201_search(nb)
        m["tinynetwork"] = tinynetwork_costs()
        if not args.skip_ofa:
            of = ofa_folder(work)
            # cifar100 (10 runs of 100-class pooled sets) is extrapolated from aircraft100's cost per graph
            m["quick_ofa"] = quick(of, ["reproduce", "ofa", "--gpu", "cpu", "--quick", "--only",
                                        "cifar10,aircraft100,pets"])
            m["ofa_search_s_per_graph"] = ofa_search_costs(of)
            m["finetune"] = finetune_costs()
        m["load_after"] = os.getloadavg()
        m["extrapolated_full_protocol_s"] = extrapolate(m)
        (work / "bench_reproduce.json").write_text(json.dumps(m, indent=2) + "\n")
        print(json.dumps(m, indent=2))
    print("\n| dataset | --quick, measured (synthetic files) | --quick on the real files, extrapolated "
          "| full protocol, extrapolated |\n|---|---|---|---|")
    for key, parts in extrapolate(m).items():
        measured, real = quick_cells(m, key)
        full = " + ".join(f"{k} {human(v)}" for k, v in parts.items())
        print(f"| {key} | {measured} | {real} | {full} |")


if __name__ == "__main__":
    main()
