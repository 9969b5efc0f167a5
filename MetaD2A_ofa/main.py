"""MetaD2A on the MobileNetV3 / Once-for-All search space: the original command lines, e.g.

    python main.py --gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 120 --num-gen-arch 200 --data-name cifar10
    python main.py --gpu 0 --model predictor --hs 512 --nz 56
    python main.py --gpu 0 --model generator --hs 56 --nz 56

The search (``--test``) is one step here: the generator loads the predictor and writes its
architectures sorted by predicted score to results/meta_test/<data>/<num-gen-arch>/generated_arch/.
"""

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # a fresh checkout without `pip install -e .`: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metad2a.cli import main

if __name__ == "__main__":
    raise SystemExit(main(space="ofa_mbv3"))
