"""Optimizer groups: "ssm" for the SSM dynamics (A, dt, B of the diagonal SSM; B of the shift
SSM), trained without weight decay at their own learning rate; "rest" for everything else."""

from __future__ import annotations

from typing import Any

import jax

SSM = "ssm"
REST = "rest"

# Parameter names of the SSM dynamics, per SSM module name. C and D are not dynamics.
SSM_DYNAMICS = {
    "diag_ssm": ("log_dt", "inv_A_real", "A_imag", "B"),
    "shift_ssm": ("B",),
}
# Names a module of that kind may lack: the S4D block folds B into C.
OPTIONAL = {("diag_ssm", "B")}


def param_labels(params: Any) -> Any:
    """A pytree of "ssm" / "rest" strings with the structure of params (for optax.multi_transform).

    Raises ValueError when a declared name matches nothing: an SSM module (a dict named like a key
    of SSM_DYNAMICS) without one of its declared dynamics parameters means the names here and the
    modules have diverged, and the parameter would silently get weight decay.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if not flat:
        raise ValueError("param_labels: params has no leaves")
    leaves_by_module: dict[tuple[str, ...], set[str]] = {}
    for path, _ in flat:
        keys = _names(path)
        if len(keys) >= 2 and keys[-2] in SSM_DYNAMICS:
            leaves_by_module.setdefault(keys[:-1], set()).add(keys[-1])
    for module_path, present in leaves_by_module.items():
        module = module_path[-1]
        missing = [
            n for n in SSM_DYNAMICS[module] if n not in present and (module, n) not in OPTIONAL
        ]
        if missing:
            raise ValueError(
                f"param_labels: declared SSM parameters {missing} match nothing in "
                f"'{'/'.join(module_path)}' (it has {sorted(present)}); update SSM_DYNAMICS"
            )

    def label(path, _leaf) -> str:
        keys = _names(path)
        is_dynamics = len(keys) >= 2 and keys[-1] in SSM_DYNAMICS.get(keys[-2], ())
        return SSM if is_dynamics else REST

    return jax.tree_util.tree_map_with_path(label, params)


def _names(path) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
