"""storage: pseudo-label tables, lineage and checkpoint records under one fsspec root (no torch)."""
