"""Build the OFA/MobileNetV3 meta-training databases from ImageNet (the original command lines), e.g.

    python build_database.py --gpu 0 --model_name predictor --index 0 --imgnet $IMGNET_PATH --hs 512 --nz 56
    python build_database.py --model_name predictor --collect

Shards go to data/<model_name>/database_<index>.pt; --collect merges them into
data/<model_name>/processed/collected_database.pt, which main.py meta-trains on. See --help.
"""

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # a fresh checkout without `pip install -e .`: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metad2a.build.ofa_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
