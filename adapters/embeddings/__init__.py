"""Embedders: the local MiniLM model (optional extra) and a feature-hashing embedder."""
