"""The symbolic core of symfp: pure SymPy, it imports nothing from the numeric layers.

Stages, each an immutable object a user can print, substitute into and render as LaTeX:

- :mod:`.data` (:class:`Dataset`, :class:`Population`) and :mod:`.recursion` (:class:`SGD`,
  :class:`Recursion`): the learning algorithm as a one-step map with named random inputs;
- :mod:`.moments` and :mod:`.sme`: one-step moments and the stochastic modified equation;
- :mod:`.sde` and :mod:`.fokker_planck`: the Itô SDE and its Fokker–Planck equation;
- :mod:`.weakform`: the weak-form IR, the only road to a finite-element backend;
- :mod:`.backward_error`, :mod:`.regularizer`: modified equations of deterministic maps;
- :mod:`.latex`, :mod:`.parsing`, :mod:`.functions`, :mod:`.stage`: printing, input, helpers.
"""
