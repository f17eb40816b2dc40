"""medresearcher: build, train and evaluate medical deep-research agents.

Research software, not clinical advice. See the README for the pipeline and quickstart.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
