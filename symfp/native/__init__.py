"""Native kernels: SymPy expressions printed as C, built with the system compiler, called through ctypes.

:mod:`~symfp.native.build` compiles, caches and loads; :mod:`~symfp.native.cprint` prints; the
kernels themselves live next to their users (the exact-SGD step in :mod:`symfp.particles.native`,
the data-mean reductions of the FE coefficients in :mod:`symfp.native.datamean`). Nothing here
imports torch or a finite-element backend; every kernel has a numpy/torch fallback.
"""
