"""Evaluating searched architectures: the NAS-Bench-201 network and its training (optional extras)."""
