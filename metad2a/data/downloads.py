"""Download manifests of the ``get_files/*.py`` scripts, as data.

The URLs and target paths are exactly those of the original scripts (HayeonLee/MetaD2A,
ORIGINAL.md §2.4 for NAS-Bench-201 and §3.4 for OFA/MobileNetV3). Targets are relative to the
front-end folder (``MetaD2A_nas_bench_201/`` or ``MetaD2A_ofa/``), where the README runs the
scripts. No sizes or hashes were ever published, so none are checked.

With ``METAD2A_MIRROR`` set, a file is fetched from ``<mirror>/<last URL path segment>``, which
can differ from the target name (``generator_collected_database.pt`` is saved as
``collected_database.pt``).
"""

from __future__ import annotations

from metad2a.download import ManifestEntry

_DROPBOX = "https://www.dropbox.com/s"


def _dropbox(key: str, name: str, target_dir: str, target_name: str | None = None) -> ManifestEntry:
    return ManifestEntry(f"{_DROPBOX}/{key}/{name}?dl=1", f"{target_dir}/{target_name or name}")


NB201: dict[str, list[ManifestEntry]] = {
    # Downloads only, despite the README's "preprocessed" wording.
    "get_preprocessed_data": [
        _dropbox("mb66kitv20ykctp", "aircraftbylabel.pt", "data"),
        _dropbox("y0xahxgzj29kffk", "cifar100bylabel.pt", "data"),
        _dropbox("wt1pcwi991xyhwr", "cifar10bylabel.pt", "data"),
        _dropbox("7r3hpugql8qgi9d", "imgnet32bylabel.pt", "data"),
        _dropbox("0eu01gig3gnxvk4", "meta_train_task_lst.pt", "data"),
        _dropbox("reqtqut3eiyeut4", "meta_train_tasks_generator_idx.pt", "data"),
        _dropbox("2qjjtfldw99sqx0", "meta_train_tasks_generator.pt", "data"),
        _dropbox("ziwckbuqdokmgo7", "meta_train_tasks_predictor_idx.pt", "data"),
        _dropbox("wc6kylzo5ehqlem", "meta_train_tasks_predictor.pt", "data"),
        _dropbox("mxh6qz3grhy7wcn", "petsbylabel.pt", "data"),
        _dropbox("86rbuic7a7y34e4", "mnistbylabel.pt", "data"),
        _dropbox("qhyhdfc9l5nborq", "nasbench201.pt", "data"),
        _dropbox("yywaelhrsl6egvd", "svhnbylabel.pt", "data"),
    ],
    "get_checkpoint": [_dropbox("8sh04wxk1t43xtg", "ckpt_400.pt", "results/generator/model")],
    "get_predictor_checkpoint": [_dropbox("1l73vq2orv0chso", "ckpt_max_corr.pt", "results/predictor/model")],
    # Unpacked in place (giving data/raw-data/mnist/MNIST/...); the tarball is deleted.
    "get_mnist": [
        ManifestEntry(
            f"{_DROPBOX}/fdx2ws1zh5rc9ae/mnist.tar.gz?dl=1",
            "data/raw-data/mnist/mnist.tar.gz",
            extract_to="data/raw-data/mnist",
        )
    ],
    # Unpacked into data/raw-data/aircraft/fgvc-aircraft-2013b/...; the tarball is deleted.
    "get_aircraft": [
        ManifestEntry(
            "http://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
            "data/raw-data/fgvc-aircraft-2013b.tar.gz",
            extract_to="data/raw-data/aircraft",
        )
    ],
    "get_pets": [
        _dropbox("kzmrwyyk5iaugv0", "test15.pth", "data/raw-data/pets"),
        _dropbox("w7mikpztkamnw9s", "train85.pth", "data/raw-data/pets"),
    ],
}

OFA: dict[str, list[ManifestEntry]] = {
    # The original lists imgnet32bylabel.pt twice (and downloads it twice); once is enough.
    # No aircraft30bylabel.pt, nasbench201.pt or meta_train_* files exist for OFA.
    "get_preprocessed_data": [
        _dropbox("7r3hpugql8qgi9d", "imgnet32bylabel.pt", "data"),
        _dropbox("nn6mlrk1jijg108", "aircraft100bylabel.pt", "data"),
        _dropbox("y0xahxgzj29kffk", "cifar100bylabel.pt", "data"),
        _dropbox("wt1pcwi991xyhwr", "cifar10bylabel.pt", "data"),
        _dropbox("mxh6qz3grhy7wcn", "petsbylabel.pt", "data"),
        _dropbox("86rbuic7a7y34e4", "mnistbylabel.pt", "data"),
        _dropbox("yywaelhrsl6egvd", "svhnbylabel.pt", "data"),
    ],
    "get_generator_checkpoint": [_dropbox("zss9yt034hen45h", "ckpt_120.pt", "results/generator/model")],
    "get_predictor_checkpoint": [_dropbox("ycm4jaojgswp0zm", "ckpt_max_corr.pt", "results/predictor/model")],
    "get_generator_database": [
        _dropbox(
            "zgip4aq0w2pkj49",
            "generator_collected_database.pt",
            "data/generator/processed",
            "collected_database.pt",
        )
    ],
    "get_pets": [
        _dropbox("kzmrwyyk5iaugv0", "test15.pth", "data/pets"),
        _dropbox("w7mikpztkamnw9s", "train85.pth", "data/pets"),
    ],
}

# The ImageNet weights of the once-for-all supernet the OFA space is built on (ORIGINAL.md §3.4). The
# original let pip-ofa's model zoo fetch them while building the database (into .torch/ofa_nets/ of
# the working folder); ofa's loader hides network errors behind a misleading lock-file error, so we
# fetch them with metad2a.download instead. The file is a dict with the weights under "state_dict".
OFA_SUPERNET_NAME = "ofa_mbv3_d234_e346_k357_w1.0"
OFA_SUPERNET_URL = f"https://hanlab.mit.edu/files/OnceForAll/ofa_nets/{OFA_SUPERNET_NAME}"
OFA_SUPERNET_TARGET = f".torch/ofa_nets/{OFA_SUPERNET_NAME}"
OFA["get_ofa_supernet"] = [ManifestEntry(OFA_SUPERNET_URL, OFA_SUPERNET_TARGET)]

# The original get_predictor_database.py fetched the predictor *checkpoint* (ycm4jaojgswp0zm) into
# data/predictor/processed/collected_database.pt (ORIGINAL.md §5 item 12): the database was never
# released, so our script downloads nothing and says how to build it.
OFA_PREDICTOR_DATABASE_UNAVAILABLE = (
    "the OFA predictor database (data/predictor/processed/collected_database.pt) was never published "
    "(the original script downloaded the predictor checkpoint by mistake); build it from ImageNet instead: "
    "`bash create_database.sh <gpus> <first index> <last index> predictor`, then "
    "`python build_database.py --model_name predictor --collect` (see the README's database section)"
)
