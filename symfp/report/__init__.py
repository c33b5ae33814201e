"""The report of ``symfp run``: figures (matplotlib, Agg), JSON summaries and an HTML page.

The figure functions take plain numpy arrays and return the :class:`matplotlib.figure.Figure`, so that
tests can check the plotted data; :mod:`symfp.app.run` writes a whole report folder.
"""
