"""Training and search loops."""
