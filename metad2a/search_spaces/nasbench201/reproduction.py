"""The paper's NAS-Bench-201 protocol, as data (``metad2a reproduce nb201``, docs/fidelity.md#reproduction).

Six datasets, the README's commands: the generator step (``--num-gen-arch`` 500 for the CIFARs, 50
for the others), then the predictor step. CIFAR: 10 runs, the figure is the best NB201-table
accuracy among the predictor's top 30 of each run (an oracle pick; docs/fidelity.md#best-of-top30);
the blind figure is the table accuracy of the top-1. mnist, svhn, aircraft, pets: one run, the
top-1 cell trained with the NB201 recipe for seeds 777, 888, 999 (docs/fidelity.md#train-arch); the
figure is the mean x-test accuracy over the seeds, which is also the blind figure (no oracle).
Published values: the original README's table (trained searched architectures, %, and GPU seconds).
"""

from __future__ import annotations

from metad2a.search_spaces.nasbench201.downloads import MANIFEST
from metad2a.search_spaces.reproduction import (
    DatasetProtocol,
    Measure,
    Published,
    Reproduction,
    RequiredFile,
    Retrain,
    Source,
    Step,
    manifest_file,
)

FOLDER = "MetaD2A_nas_bench_201"
COMMON = ("--gpu", "{gpu}", "--seed", "{seed}", "--data-path", "{data_path}", "--save-path", "{save_path}")
GENERATE = Step(("--model", "generator", "--hs", "56", "--nz", "56", "--test", "--load-epoch", "{load_epoch}",
                 "--num-gen-arch", "{num_gen_arch}", "--data-name", "{data}", *COMMON), phase="generation")
RANK = Step(("--model", "predictor", "--hs", "512", "--nz", "56", "--test", "--num-gen-arch", "{num_gen_arch}",
             "--data-name", "{data}", *COMMON), phase="ranking, table or training")
# --quick trains the selected cell for one epoch (the recipe: 200, mnist 50)
RANK_TRAIN = Step(RANK.args, quick_args=("--epochs", "1"), phase=RANK.phase)

RESULT = "meta_test/{data}/best_arch/result.json"
SEARCH_SECONDS = (Source("meta_test/{data}/generated_arch/run_*.txt", kind="archive"),
                  Source(RESULT, ("predictor_seconds_mean",)))
BEST_OF_TOP30 = Measure("best of the top 30 (NB201 table; oracle pick, the paper's figure)",
                        (Source(RESULT, ("runs", "*", "best_of_top30_acc")),))
TABLE_TOP1 = Measure("top-1 (NB201 table)", (Source(RESULT, ("runs", "*", "top1_acc")),))
TRAINED = Source(RESULT, ("trained", "x_test_acc", "*"))
TRAINED_TOP1 = Measure("top-1 trained, 3 seeds (the paper's figure)", (TRAINED,))
TRAINED_BLIND = Measure("top-1 trained, 3 seeds (no oracle: the same figure)", (TRAINED,))


def fetched(script: str, name: str) -> RequiredFile:
    """The file ``name`` of ``get_files/<script>.py``, with the command that fetches it."""
    return manifest_file(MANIFEST, script, name)


SVHN_GET = ("python -c \"from torchvision.datasets import SVHN; "
            "[SVHN('data/raw-data/svhn', split=s, download=True) for s in ('train', 'test')]\"")
RAW_DATA = {  # what --train-arch reads (docs/data.md#raw-data)
    "mnist": (RequiredFile(("data/raw-data/mnist/MNIST/raw",), "python get_files/get_mnist.py"),),
    "svhn": (RequiredFile(("data/raw-data/svhn/train_32x32.mat",), SVHN_GET),
             RequiredFile(("data/raw-data/svhn/test_32x32.mat",), SVHN_GET)),
    "aircraft": (RequiredFile(("data/raw-data/aircraft/fgvc-aircraft-2013b",), "python get_files/get_aircraft.py"),),
    "pets": (RequiredFile(("data/raw-data/pets/train85.pth", "data/raw-data/pets/oxford-iiit-pet"),
                          "python get_files/get_pets.py"),
             RequiredFile(("data/raw-data/pets/test15.pth", "data/raw-data/pets/oxford-iiit-pet"),
                          "python get_files/get_pets.py")),
}

# The original README's table: MetaD2A, trained searched architectures (%), and search time (GPU s).
PAPER = {
    "cifar10": Published(94.37, 0.03, 69), "cifar100": Published(73.51, 0.00, 96),
    "mnist": Published(99.71, 0.08, 7), "svhn": Published(96.34, 0.37, 7),
    "aircraft": Published(58.43, 1.18, 10), "pets": Published(41.50, 4.39, 8),
}


def _cifar(name: str) -> DatasetProtocol:
    return DatasetProtocol(
        name, num_gen_arch=500, quick_num_gen_arch=40, steps=(GENERATE, RANK), figure=BEST_OF_TOP30,
        blind=TABLE_TOP1, search_seconds=SEARCH_SECONDS, paper=PAPER[name],
        files=(fetched("get_preprocessed_data", f"{name}bylabel.pt"),
               fetched("get_preprocessed_data", "nasbench201.pt")))


def _trained(name: str) -> DatasetProtocol:
    return DatasetProtocol(
        name, num_gen_arch=50, quick_num_gen_arch=10, steps=(GENERATE, RANK_TRAIN), figure=TRAINED_TOP1,
        blind=TRAINED_BLIND, search_seconds=SEARCH_SECONDS, paper=PAPER[name],
        files=(fetched("get_preprocessed_data", f"{name}bylabel.pt"), *RAW_DATA[name]))


RETRAIN = Retrain(
    steps=(Step(("--model", "generator", "--hs", "56", "--nz", "56", "--max-epoch", "{max_epoch}",
                 "--save-epoch", "{save_epoch}", "--resume", *COMMON), phase="meta-training"),
           Step(("--model", "predictor", "--hs", "512", "--nz", "56", "--max-epoch", "{max_epoch}",
                 "--save-epoch", "{save_epoch}", "--resume", *COMMON), phase="meta-training")),
    max_epoch=400, save_epoch=20, quick_max_epoch=2, quick_save_epoch=2,
    files=tuple(fetched("get_preprocessed_data", n) for n in (
        "imgnet32bylabel.pt", "meta_train_task_lst.pt", "meta_train_tasks_generator.pt",
        "meta_train_tasks_generator_idx.pt", "meta_train_tasks_predictor.pt", "meta_train_tasks_predictor_idx.pt")),
)

NB201_REPRODUCTION = Reproduction(
    name="nb201",
    title="MetaD2A on NAS-Bench-201",
    folder=FOLDER,
    datasets=(*(_cifar(n) for n in ("cifar10", "cifar100")),
              *(_trained(n) for n in ("mnist", "svhn", "aircraft", "pets"))),
    checkpoints=(fetched("get_checkpoint", "ckpt_400.pt"),
                 fetched("get_predictor_checkpoint", "ckpt_max_corr.pt")),
    published="the original README's NB201 table (MetaD2A, trained searched architectures, %; "
              "search time in GPU seconds)",
    retrain=RETRAIN,
    quick="--num-gen-arch 40 for the CIFARs and 10 for the others, --train-arch training for 1 epoch, "
          "meta-training (--retrain) for 2 epochs; the runs (10 for the CIFARs) and the 3 seeds are the "
          "protocol's, since main.py has no flag for them",
    notes=(("CIFAR figures are means over 10 runs of each run's figure; the others are means over the 3 "
           "training seeds of the one selected cell; ± is the 95 % confidence half-width, as in accuracy.txt."),
           ("Search seconds: generation (run_<k>.txt) plus ranking (result.json), mean per run, as the "
           "original times them; the paper's are GPU seconds."),
           ("x-test is a seeded half of each test set, not the original's split files "
           "(docs/fidelity.md#test-halves).")),
)
