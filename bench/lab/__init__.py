"""One-off experiments behind decisions, kept to be rerun (`python -m bench.lab.<name>`), not maintained."""
