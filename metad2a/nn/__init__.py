"""Neural building blocks (torch only): Set Transformer, set pooling, D-VAE graph core."""
