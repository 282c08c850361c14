"""ovseg_core: the STSeg model, data, training, evaluation and self-training, in plain PyTorch.

Kept free of Prefect, DuckDB and the storage layer (see docs/architecture.md).
"""
