"""Tests of stream/serve/."""
