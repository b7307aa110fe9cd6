"""svs: keep RLVR math training from collapsing onto memorized prompts."""

__version__ = "0.1.0"
