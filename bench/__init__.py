"""Benchmarks that measure tricklab's paths side by side; each ends with a ``RESULT key=value`` line."""
