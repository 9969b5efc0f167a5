"""Fine-tune the searched MobileNetV3 subnet (the original command lines, run from MetaD2A_ofa/evaluation/), e.g.

    python main.py --data-name cifar10 --num-gen-arch 200
    python main.py --data-name cifar10 --num-gen-arch 200 --bound 300

It reads ../results/meta_test/<data>/<num-gen-arch>/generated_arch/run_1.txt and the supernet
weights ../.torch/ofa_nets/ofa_mbv3_d234_e346_k357_w1.0 (python get_files/get_ofa_supernet.py in
MetaD2A_ofa/), and writes ../results/evaluation/<data>-metaD2A-<bound>-<seed>/. See --help.
"""

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # a fresh checkout without `pip install -e .`: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metad2a.search_spaces.ofa_mbv3.finetune import main

if __name__ == "__main__":
    raise SystemExit(main())
