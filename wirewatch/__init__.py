"""The `wirewatch` command's home: serving commands from stream, training commands from training.

Neither package imports the other's commands: this one loads the training commands only when one
of them runs, so the serving image (stream/ only) has a working `wirewatch serve`.
"""
