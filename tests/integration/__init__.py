"""Integration tests: drive the runtime CLI as a caller would and look inside containers."""
