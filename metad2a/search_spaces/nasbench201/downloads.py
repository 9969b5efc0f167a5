"""Download manifest of ``MetaD2A_nas_bench_201/get_files/*.py``, as data.

The URLs and target paths are exactly those of the original scripts (docs/data.md lists what each
file is). Targets are relative to ``MetaD2A_nas_bench_201/``, where the README runs the scripts. No
sizes or hashes were ever published, so none are checked. With ``METAD2A_MIRROR`` set, a file is
fetched from ``<mirror>/<last URL path segment>``.
"""

from __future__ import annotations

from metad2a.download import ManifestEntry, dropbox_entry, dropbox_url

MANIFEST: dict[str, list[ManifestEntry]] = {
    # Downloads only, despite the README's "preprocessed" wording.
    "get_preprocessed_data": [
        dropbox_entry("mb66kitv20ykctp", "aircraftbylabel.pt", "data"),
        dropbox_entry("y0xahxgzj29kffk", "cifar100bylabel.pt", "data"),
        dropbox_entry("wt1pcwi991xyhwr", "cifar10bylabel.pt", "data"),
        dropbox_entry("7r3hpugql8qgi9d", "imgnet32bylabel.pt", "data"),
        dropbox_entry("0eu01gig3gnxvk4", "meta_train_task_lst.pt", "data"),
        dropbox_entry("reqtqut3eiyeut4", "meta_train_tasks_generator_idx.pt", "data"),
        dropbox_entry("2qjjtfldw99sqx0", "meta_train_tasks_generator.pt", "data"),
        dropbox_entry("ziwckbuqdokmgo7", "meta_train_tasks_predictor_idx.pt", "data"),
        dropbox_entry("wc6kylzo5ehqlem", "meta_train_tasks_predictor.pt", "data"),
        dropbox_entry("mxh6qz3grhy7wcn", "petsbylabel.pt", "data"),
        dropbox_entry("86rbuic7a7y34e4", "mnistbylabel.pt", "data"),
        dropbox_entry("qhyhdfc9l5nborq", "nasbench201.pt", "data"),
        dropbox_entry("yywaelhrsl6egvd", "svhnbylabel.pt", "data"),
    ],
    "get_checkpoint": [dropbox_entry("8sh04wxk1t43xtg", "ckpt_400.pt", "results/generator/model")],
    "get_predictor_checkpoint": [dropbox_entry("1l73vq2orv0chso", "ckpt_max_corr.pt", "results/predictor/model")],
    # Unpacked in place (giving data/raw-data/mnist/MNIST/...); the tarball is deleted.
    "get_mnist": [
        ManifestEntry(
            dropbox_url("fdx2ws1zh5rc9ae", "mnist.tar.gz"),
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
        dropbox_entry("kzmrwyyk5iaugv0", "test15.pth", "data/raw-data/pets"),
        dropbox_entry("w7mikpztkamnw9s", "train85.pth", "data/raw-data/pets"),
    ],
}
