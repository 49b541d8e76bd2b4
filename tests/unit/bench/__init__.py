"""Tests of bench/ (the benchmark modules)."""
