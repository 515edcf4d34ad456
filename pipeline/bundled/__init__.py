"""Where an installed wheel keeps the bundled default: `configs/` and `centroids/default/` of the source tree.

Empty in a checkout: pyproject.toml maps those two folders here when it builds the wheel, and
`pipeline.config.bundled_path` finds them in either place.
"""
