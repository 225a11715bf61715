"""Operational checks run one module at a time by ./ops/test (not collected by default)."""
