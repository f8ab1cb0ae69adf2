"""Official H3 (PyTorch) checkpoints <-> h3-jax models, exactly.

    from h3_jax import convert, generate
    state_dict = convert.read_state_dict("H3-125M/model.pt")     # or .safetensors / .npz
    config, params = convert.from_official(state_dict)            # released sizes: no arguments
    official = convert.to_official(config, params)                # and back, bit for bit

    # or once, on the command line: h3-jax convert H3-125M/model.pt h3-125m
    config, params = convert.load("h3-125m")
    tokens = generate.generate(config, params, prompt, max_new_tokens=32, key=key)

- from_official / to_official: h3_jax.convert.official; the per-key table and each convention
  difference (A parameterisation, complex storage, (out, in) weights, tied head, LayerNorm
  weight -> scale): h3_jax.convert.keys.
- The released models (heads, rotary, which sources give which attention layers):
  h3_jax.convert.releases.
- Files: h3_jax.convert.files. Checkpoints: h3_jax.convert.checkpoint. Command: h3_jax.convert.cli.
"""

from h3_jax.convert.checkpoint import load, save
from h3_jax.convert.files import read_state_dict, write_state_dict
from h3_jax.convert.infer import Structure, infer_structure
from h3_jax.convert.official import from_official, to_official
from h3_jax.convert.releases import RELEASES, ReleasedModel, get_release

__all__ = [
    "RELEASES",
    "ReleasedModel",
    "Structure",
    "from_official",
    "get_release",
    "infer_structure",
    "load",
    "read_state_dict",
    "save",
    "to_official",
    "write_state_dict",
]
