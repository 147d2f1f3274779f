"""LVLM Atlas site generator and catalog tooling.

Data flows one way: YAML catalog -> validated models (`lvlm_atlas.catalog.models`) -> derived indexes and
graphs -> rendered pages. Importing this package never imports torch.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
