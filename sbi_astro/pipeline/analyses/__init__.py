"""The built-in study analyses, one module per kind (registered in the ``sbi_astro.analyses``
entry-point group, like a plugin's; see :mod:`sbi_astro.analysis`):

* ``observed`` (:mod:`.observed`) - the posterior of the simulator's real observation next to
  its reference posterior, with posterior predictive counts over the data.
* ``mock`` (:mod:`.mock`) - the posterior of one observation simulated at given parameters
  (a named, typical mock), with the fractional precision of every parameter.
"""
