"""Tests of stream/feed/."""
