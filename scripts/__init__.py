"""Repository scripts (importable from the repository root for their tests and benchmarks)."""
