# Shared helpers for shell tests: sourced, never run.
