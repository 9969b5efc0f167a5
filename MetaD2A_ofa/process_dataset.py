"""Extract per-class image features for meta-test: writes data/<name>bylabel.pt (+ .json).

    python process_dataset.py --dataset cifar10 --extractor resnet18
    python process_dataset.py --dataset path/to/images --name mydata --extractor efficientnet_lite0

--dataset is an image folder (one sub-folder per class) or one of cifar10, cifar100, mnist, svhn,
aircraft, aircraft100, pets, digits (their files in data/raw-data/<dataset>/). See --help.
"""

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # a fresh checkout without `pip install -e .`: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metad2a.data.features import main

if __name__ == "__main__":
    raise SystemExit(main())
