"""Data: original file formats, meta-train/meta-test datasets, downloads, feature extraction."""
