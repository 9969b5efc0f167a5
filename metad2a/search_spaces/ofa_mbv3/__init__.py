"""MobileNetV3 / Once-for-All: the subnet codec (``subnet``), the space's facts and hooks
(``space``), the meta-training database format (``collected_database``), the supernet and subnet
evaluation (``supernet``, ``finetune``), OFA's accuracy predictor as an oracle (``oracle``) and a
synthetic data directory for tests (``synthetic``)."""
