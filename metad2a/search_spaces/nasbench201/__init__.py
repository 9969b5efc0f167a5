"""NAS-Bench-201: the cell codec (``cell``), the space's facts and hooks (``space``), the accuracy
tables (``table``), the network and its training (``network``, ``train``, ``seeds``, ``info``) and a
synthetic data directory for tests (``synthetic``)."""
