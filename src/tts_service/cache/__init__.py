"""Synthesized sentences kept for the next request that says the same thing (issue 21)."""
