"""Workflow templates of the hand-designed baselines (see `w4s_ray.baselines`).

Each file is a complete workflow `solver(agent, task)`; the string literals "__NAME__" are
replaced per benchmark family when the registry renders it. Not imported by the package.
"""
