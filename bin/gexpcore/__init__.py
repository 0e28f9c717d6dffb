"""gexp: predict gene expression from chromatin accessibility."""

__version__ = "0.1.0"
