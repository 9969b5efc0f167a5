"""The MobileNetV3 / OFA protocol, as data (``metad2a reproduce ofa``, docs/fidelity.md#reproduction).

For cifar10, cifar100, aircraft100 and pets: the README's one-step search (``--model generator
--test --load-epoch 120 --num-gen-arch 200``; 10 runs for the CIFARs, else 1), then the original
evaluation (``evaluation/main.py``): the first subnet of ``run_1.txt`` fine-tuned with the original
recipe (docs/fidelity.md#ofa-evaluation). The figure is the best test accuracy over the epochs
(selected on the test set, as the original; docs/fidelity.md#test-set-selection); the blind one is
the last epoch's. The original README publishes no table for this space: the report gives our
figures, the search and fine-tuning times and the FLOPs of each chosen subnet. The predictor's
meta-training database was never published, so ``--retrain`` is not offered.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from metad2a.search_spaces.ofa_mbv3.downloads import (
    MANIFEST,
    OFA_SUPERNET_TARGET,
    PREDICTOR_DATABASE_UNAVAILABLE,
)
from metad2a.search_spaces.ofa_mbv3.finetune import DATA_ROOTS
from metad2a.search_spaces.reproduction import (
    DatasetProtocol,
    Measure,
    Reproduction,
    RequiredFile,
    Source,
    Step,
    manifest_file,
)

FOLDER = "MetaD2A_ofa"
SEARCH = Step(("--gpu", "{gpu}", "--seed", "{seed}", "--model", "generator", "--hs", "56", "--nz", "56", "--test",
               "--load-epoch", "{load_epoch}", "--num-gen-arch", "{num_gen_arch}", "--data-name", "{data}",
               "--data-path", "{data_path}", "--save-path", "{save_path}"), phase="search")
FINETUNE = Step(
    ("--data-name", "{data}", "--num-gen-arch", "{num_gen_arch}", "--seed", "{seed}", "--gpu", "{gpu}",
     "--data-path", "{data_path}", "--save-path", "{save_path}", "--ofa-weights", "{root}/" + OFA_SUPERNET_TARGET),
    command="metad2a.search_spaces.ofa_mbv3.finetune:main",
    # --quick: one epoch of 2 steps on 32-px images (the recipe: 150 epochs at 224 px)
    quick_args=("--epochs", "1", "--max-steps", "2", "--img-size", "32", "--batch-size", "8",
                "--test-batch-size", "100", "--num_workers", "0"),
    phase="fine-tuning")

SUMMARY = "evaluation/{data}-metaD2A-None-{seed}/summary.json"  # finetune.run_dir_name without --bound


def fetched(script: str, name: str) -> RequiredFile:
    """The file ``name`` of ``get_files/<script>.py``, with the command that fetches it."""
    return manifest_file(MANIFEST, script, name)


def _images(name: str, get: str) -> RequiredFile:
    """The fine-tuning images of ``name``: any folder the evaluation looks in (``finetune.DATA_ROOTS``)."""
    roots, markers = DATA_ROOTS[name]
    return RequiredFile(tuple(str(PurePosixPath("data", r, m)) for r in roots for m in markers), get)


def _torchvision(cls: str, root: str) -> str:
    return f"python -c \"from torchvision.datasets import {cls}; {cls}('{root}', download=True)\""


IMAGES = {
    "cifar10": _images("cifar10", _torchvision("CIFAR10", "data/cifar10")),
    "cifar100": _images("cifar100", _torchvision("CIFAR100", "data/cifar100")),
    "aircraft100": _images("aircraft100", _torchvision("FGVCAircraft", "data")),
    "pets": _images("pets", "python get_files/get_pets.py"),
}


def _dataset(name: str) -> DatasetProtocol:
    return DatasetProtocol(
        name, num_gen_arch=200, quick_num_gen_arch=5, steps=(SEARCH, FINETUNE),
        figure=Measure("fine-tuned top-1, best epoch (selected on the test set, as the original)",
                       (Source(SUMMARY, ("best", "test_acc")),)),
        blind=Measure("fine-tuned top-1, last epoch (no test-set selection)", (Source(SUMMARY, ("last", "test_acc")),)),
        search_seconds=(Source("meta_test/{data}/{num_gen_arch}/generated_arch/run_*.txt", kind="archive"),),
        extras=(Measure("MFLOPs (1000 classes, 224 px)", (Source(SUMMARY, ("mflops_1000_classes_224",)),)),
                Measure("MFLOPs as fine-tuned", (Source(SUMMARY, ("mflops",)),)),
                Measure("params (M) as fine-tuned", (Source(SUMMARY, ("params_m",)),))),
        files=(fetched("get_preprocessed_data", f"{name}bylabel.pt"), IMAGES[name]))


OFA_REPRODUCTION = Reproduction(
    name="ofa",
    title="MetaD2A on MobileNetV3 (once-for-all)",
    folder=FOLDER,
    datasets=tuple(_dataset(n) for n in ("cifar10", "cifar100", "aircraft100", "pets")),
    checkpoints=(fetched("get_generator_checkpoint", "ckpt_120.pt"),
                 fetched("get_predictor_checkpoint", "ckpt_max_corr.pt")),
    files=(RequiredFile((OFA_SUPERNET_TARGET,), "python get_files/get_ofa_supernet.py"),),
    published="none: the original README publishes no table for this space",
    retrain_unavailable=PREDICTOR_DATABASE_UNAVAILABLE,
    packages=(("ofa", "pip install -e '.[ofa]'  (the once-for-all network code the fine-tuning builds on)"),),
    quick="--num-gen-arch 5; fine-tuning for 1 epoch of 2 steps of 8 images at 32 px; the search runs "
          "(10 for the CIFARs) are the protocol's, since main.py has no flag for them",
    notes=(("The search is 10 runs for the CIFARs, 1 otherwise; the evaluation fine-tunes the first subnet of "
           "run_1.txt (the original's evaluation/main.py), so each figure is one fine-tuning run."),
           "Search seconds: mean per run, as run_<k>.txt records it (generation and ranking in one loop).",
           "MFLOPs: once-for-all's count (docs/fidelity.md#ofa-flops)."),
)
