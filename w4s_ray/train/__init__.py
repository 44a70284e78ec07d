"""RWR training of the meta-agent: examples (`rwr`), loss (`loss`), the Ray Train job (`trainer`)."""

from w4s_ray import _callable_stage

_callable_stage(__name__)  # `w4s_ray.train(cfg)` is the stage (w4s_ray.api.train)
