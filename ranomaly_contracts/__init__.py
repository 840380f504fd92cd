"""Shared contracts of RANomaly: generated E2 stubs, dataset format, data-layer names.

The bottom of the dependency graph: imported by e2sim, xapp, rapp and models, importing none of them.
"""
