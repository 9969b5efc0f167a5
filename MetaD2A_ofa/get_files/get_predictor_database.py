"""Explain that the OFA predictor database was never published; downloads nothing, exits 2.

The original script fetched the predictor checkpoint into
data/predictor/processed/collected_database.pt by mistake (docs/fidelity.md#ofa-predictor-database).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import metad2a  # noqa: F401
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from metad2a.download import unavailable_main
from metad2a.search_spaces.ofa_mbv3.downloads import PREDICTOR_DATABASE_UNAVAILABLE

if __name__ == "__main__":
    sys.exit(unavailable_main(PREDICTOR_DATABASE_UNAVAILABLE, description=__doc__.splitlines()[0]))
