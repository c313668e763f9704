"""JSON Schemas of custody's exported formats (package data, read with importlib.resources)."""
