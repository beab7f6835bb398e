"""Change detection between images on a common grid.

For now one simple, robust measure (:func:`~sitewatch.change.difference.robust_difference`);
the full engine (co-registration, IR-MAD normalisation, CVA, MAD, PCA-k-means, SAR tests)
lands here as one module per family.
"""

from .difference import ChangeResult, robust_difference

__all__ = ["ChangeResult", "robust_difference"]
