"""Tests of stream/subscribers/."""
