"""The sbibm benchmark tasks (Lueckmann et al. 2021) as simulator plugins.

One module per task family (``gaussian``, ``slcp``, ``bernoulli_glm``, ``sir``,
``lotka_volterra``); ``reference`` gives every task sbibm's 10 observations, true
parameters and reference posterior samples (``data/``, provenance in
``data/PROVENANCE.md``).  ``gaussian_linear`` and ``two_moons`` live in their own packages
and use the same ``reference`` mixin.  Registered through the ``sbi_astro.simulators``
entry-point group like any plugin.
"""
