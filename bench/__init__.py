"""Benchmarks of mini-forge, each measured side by side with its baseline in one run."""
