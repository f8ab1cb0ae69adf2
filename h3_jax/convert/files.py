"""Reading and writing state dicts: .safetensors and .npz without PyTorch, .pt/.bin with it.

- `.safetensors`: the `safetensors` package's NumPy API (install extra `convert`).
- `.npz`: NumPy alone, loaded with allow_pickle=False.
- `.pt`, `.pth`, `.bin`, `.ckpt`: `torch.load` (install extra `torch`), with weights_only=True
  unless the file is trusted (`trust_pickle=True`), since a pickle can run code.

A PyTorch Lightning checkpoint (`{"state_dict": {"model.backbone...": ...}, ...}`, as the official
training scripts save) is unwrapped to the plain state dict.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SUFFIXES = (".safetensors", ".npz") + TORCH_SUFFIXES


def read_state_dict(
    path: str | os.PathLike, *, trust_pickle: bool = False
) -> dict[str, np.ndarray]:
    """{key: NumPy array} from a state dict file, by its suffix (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    suffix = _suffix(path)
    if suffix == ".safetensors":
        return unwrap(_safetensors().load_file(path))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return unwrap({name: archive[name] for name in archive.files})
    return _torch_load(path, trust_pickle)


def write_state_dict(path: str | os.PathLike, state_dict: Mapping[str, Any]) -> None:
    """Write {key: array} as .safetensors or .npz (chosen by the suffix of path)."""
    path = os.fspath(path)
    suffix = _suffix(path)
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in state_dict.items()}
    if suffix == ".safetensors":
        _safetensors().save_file(arrays, path)
    elif suffix == ".npz":
        with open(path, "wb") as f:  # a file object, so NumPy does not append a second suffix
            np.savez(f, **arrays)
    else:
        raise ValueError(f"{path}: can write .safetensors or .npz, not {suffix}")


def unwrap(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The plain state dict inside a training checkpoint; the mapping itself otherwise."""
    state = checkpoint
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    keys = list(state)
    if keys and all(k.startswith("model.") for k in keys):
        state = {k[len("model."):]: v for k, v in state.items()}
    return dict(state)


def _suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown state dict format {suffix!r}; allowed are {SUFFIXES}")
    return suffix


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            "reading or writing .safetensors needs the safetensors package: "
            "pip install 'h3-jax[convert]' (or pip install safetensors)"
        ) from None
    return safetensors.numpy


def _torch_load(path: str, trust_pickle: bool) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading {path} needs PyTorch: pip install 'h3-jax[torch]' (or convert the file to "
            ".safetensors or .npz where PyTorch is installed)"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:
        if trust_pickle:
            raise
        raise ValueError(
            f"{path}: torch.load(weights_only=True) refused it ({type(err).__name__}: {err}); "
            "if you trust the file, pass trust_pickle=True (--trust-pickle)"
        ) from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict (a mapping), got {type(obj).__name__}")
    return {k: _tensor_to_numpy(v, torch) for k, v in unwrap(obj).items()}


def _tensor_to_numpy(value: Any, torch) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
        value = value.float()  # bfloat16 has no NumPy dtype; float32 holds it exactly
    return value.numpy()
