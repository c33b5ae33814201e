"""The only place where the two numeric worlds meet: finite-element solutions and particle clouds.

- :mod:`.compare`: :func:`compare` of a solution (or cloud) with a cloud, with noise floors;
- :mod:`.histogram`: particle histograms on a finite-element mesh.
"""
