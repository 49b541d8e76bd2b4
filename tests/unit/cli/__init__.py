"""Tests of wirewatch/cli.py: the command table."""
