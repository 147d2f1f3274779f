"""One module per method; each defines one registered dataclass (see methods/__init__.py)."""
