"""Tests of stream/scoring/."""
