"""The one exception type that means "the user gave us bad input".

The CLI prints these as a single line and exits non-zero; anything else is a
bug in gexp and keeps its traceback.
"""


class GexpError(Exception):
    """A problem with the user's input or environment, stated in one line."""
