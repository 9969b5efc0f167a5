"""Download manifest of ``MetaD2A_ofa/get_files/*.py``, as data, and the supernet weights.

The URLs and target paths are exactly those of the original scripts (docs/data.md lists what each
file is). Targets are relative to ``MetaD2A_ofa/``, where the README runs the scripts. No sizes or
hashes were ever published, so none are checked. With ``METAD2A_MIRROR`` set, a file is fetched
from ``<mirror>/<last URL path segment>``, which can differ from the target name
(``generator_collected_database.pt`` is saved as ``collected_database.pt``).
"""

from __future__ import annotations

from metad2a.download import ManifestEntry, dropbox_entry

MANIFEST: dict[str, list[ManifestEntry]] = {
    # The original lists imgnet32bylabel.pt twice (and downloads it twice); once is enough.
    # No aircraft30bylabel.pt, nasbench201.pt or meta_train_* files exist for OFA.
    "get_preprocessed_data": [
        dropbox_entry("7r3hpugql8qgi9d", "imgnet32bylabel.pt", "data"),
        dropbox_entry("nn6mlrk1jijg108", "aircraft100bylabel.pt", "data"),
        dropbox_entry("y0xahxgzj29kffk", "cifar100bylabel.pt", "data"),
        dropbox_entry("wt1pcwi991xyhwr", "cifar10bylabel.pt", "data"),
        dropbox_entry("mxh6qz3grhy7wcn", "petsbylabel.pt", "data"),
        dropbox_entry("86rbuic7a7y34e4", "mnistbylabel.pt", "data"),
        dropbox_entry("yywaelhrsl6egvd", "svhnbylabel.pt", "data"),
    ],
    "get_generator_checkpoint": [dropbox_entry("zss9yt034hen45h", "ckpt_120.pt", "results/generator/model")],
    "get_predictor_checkpoint": [dropbox_entry("ycm4jaojgswp0zm", "ckpt_max_corr.pt", "results/predictor/model")],
    "get_generator_database": [
        dropbox_entry(
            "zgip4aq0w2pkj49",
            "generator_collected_database.pt",
            "data/generator/processed",
            "collected_database.pt",
        )
    ],
    "get_pets": [
        dropbox_entry("kzmrwyyk5iaugv0", "test15.pth", "data/pets"),
        dropbox_entry("w7mikpztkamnw9s", "train85.pth", "data/pets"),
    ],
}

# The ImageNet weights of the once-for-all supernet the OFA space is built on (docs/data.md#ofa-supernet). The
# original let pip-ofa's model zoo fetch them while building the database (into .torch/ofa_nets/ of
# the working folder); ofa's loader hides network errors behind a misleading lock-file error, so we
# fetch them with metad2a.download instead. The file is a dict with the weights under "state_dict".
OFA_SUPERNET_NAME = "ofa_mbv3_d234_e346_k357_w1.0"
OFA_SUPERNET_URL = f"https://hanlab.mit.edu/files/OnceForAll/ofa_nets/{OFA_SUPERNET_NAME}"
OFA_SUPERNET_TARGET = f".torch/ofa_nets/{OFA_SUPERNET_NAME}"
MANIFEST["get_ofa_supernet"] = [ManifestEntry(OFA_SUPERNET_URL, OFA_SUPERNET_TARGET)]

# The original get_predictor_database.py fetched the predictor *checkpoint* (ycm4jaojgswp0zm) into
# data/predictor/processed/collected_database.pt (docs/fidelity.md#ofa-predictor-database): the database was never
# released, so our script downloads nothing and says how to build it.
PREDICTOR_DATABASE_UNAVAILABLE = (
    "the OFA predictor database (data/predictor/processed/collected_database.pt) was never published "
    "(the original script downloaded the predictor checkpoint by mistake); build it from ImageNet instead: "
    "`bash create_database.sh <gpus> <first index> <last index> predictor`, then "
    "`python build_database.py --model_name predictor --collect` (see the README's database section)"
)
