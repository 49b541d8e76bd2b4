"""Tests of stream/devtools/."""
