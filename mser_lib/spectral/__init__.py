"""Spectral decompositions: the DFT low/high split (FEMF) and path-graph Laplacian bands (Atsuko)."""
