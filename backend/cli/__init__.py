"""``tricklab``: one module per command; ``main`` builds the parser and dispatches.

Empty of imports on purpose: a command loads only what it needs.
"""
