"""optscale: best-of-N sampling that stops as soon as the OptScale bound is met.

The algorithm lives in small pure modules (``stats``, ``policies``, ``grading``); everything
that does I/O talks to it through the seams in ``ports``.
"""

__version__ = "0.1.0"
