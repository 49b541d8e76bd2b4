"""Checks of the whole repository: import boundaries, docs, deploy files."""
