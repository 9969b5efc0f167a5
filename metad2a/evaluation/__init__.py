"""Evaluating networks: accuracy metrics and report statistics, parameter and FLOP counters.

Space-specific evaluation (training a searched NB201 cell, fine-tuning an OFA subnet) lives in that
space's package under ``search_spaces/``.
"""
