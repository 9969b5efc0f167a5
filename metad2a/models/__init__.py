"""MetaD2A models: the graph generator and the meta-performance predictor."""
