"""Audit bundles: a deterministic tar.gz of all evidence, and its offline verification."""
