"""gexp: predict gene expression from chromatin accessibility."""

from . import kernels

kernels.pin()  # before anything imports numpy: the same bytes on every machine (kernels.py)

__version__ = "0.1.0"
