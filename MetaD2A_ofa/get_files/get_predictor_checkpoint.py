"""Download the meta-trained predictor checkpoint to results/predictor/model/ckpt_max_corr.pt.

Run from inside MetaD2A_ofa/ (targets are relative to the current folder, or to --root DIR).
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
from metad2a.search_spaces.ofa_mbv3.downloads import MANIFEST as OFA

if __name__ == "__main__":
    sys.exit(download_main(OFA["get_predictor_checkpoint"], description=__doc__.splitlines()[0]))
