"""Download the meta-trained generator checkpoint to results/generator/model/ckpt_400.pt.

Run from inside MetaD2A_nas_bench_201/ (targets are relative to the current folder, or to --root DIR).
Set METAD2A_MIRROR=<base URL> to fetch from a mirror instead of the original links.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metad2a.download import download_main
from metad2a.search_spaces.nasbench201.downloads import MANIFEST as NB201

if __name__ == "__main__":
    sys.exit(download_main(NB201["get_checkpoint"], description=__doc__.splitlines()[0]))
