"""Peer servers measured next to the gateway by `make bench`; they run in `.venv-bench`."""
