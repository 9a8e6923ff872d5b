"""Training Sat2Sound: the config, the Lightning module and data, the fit loop, the pipeline.

``geosound train`` calls :func:`~geosound.training.pipeline.run_training`: pairs (sonified dev
tiles, or a manifest of real pairs) → frozen-encoder features → the codebook model and its
no-codebook ablation → evaluation → checkpoints.
"""
