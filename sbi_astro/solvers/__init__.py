"""Learned inverse solvers: score-based priors and likelihoods, recurrent inference machines."""
