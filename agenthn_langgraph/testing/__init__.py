"""Test support: tiny random checkpoints of real architectures (``random_models``)."""
