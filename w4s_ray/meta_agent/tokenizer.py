"""The meta-agent's tokenizer loader; it lives in `w4s_ray.models.tokenizer` (one loader for the
local backend, training and serving), re-exported here for the callers that know it by this name.
"""

from w4s_ray.models.tokenizer import MARKER_FILE, load_tokenizer

__all__ = ["MARKER_FILE", "load_tokenizer"]
