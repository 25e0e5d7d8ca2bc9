"""Benchmarks that print comparable figures (ratios against a baseline measured in the same run)."""
