"""What storage's exporters write, by name, importable without their dependencies: the CLI
builds its choices from here while `ovseg --help` stays fast (see flows.cli)."""

EXPORT_FORMATS = ("png", "tiff", "coco", "yolo")
"""The formats of `storage.export.export_round` (`ovseg export --format`)."""
