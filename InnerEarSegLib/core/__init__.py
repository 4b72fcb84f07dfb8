"""The shared basics every other part builds on: labels, errors, image grids, reading scans,
progress and cancel, bundled resources and the in-memory result. Imports nothing else of the library."""
