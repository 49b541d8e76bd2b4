"""Tests of stream/kafka/."""
