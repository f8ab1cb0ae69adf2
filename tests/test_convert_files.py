"""State dict files: .npz and .safetensors round trips, training-checkpoint unwrapping, errors."""

import sys

import numpy as np
import pytest

from h3_jax import convert
from h3_jax.convert.files import unwrap
from official_state_dict import official_state_dict


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_through_a_file(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    sd = official_state_dict(0, n_layer=2, attn_layer_idx=(1,))
    path = tmp_path / f"model{suffix}"
    convert.write_state_dict(path, sd)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    back = convert.read_state_dict(path)
    assert sorted(back) == sorted(sd)
    for key in sd:
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], sd[key], err_msg=key)
    # And through the converter: file -> ours -> official is the file's content.
    config, params = convert.from_official(back, n_heads=2)
    again = convert.to_official(config, params)
    for key in sd:
        np.testing.assert_array_equal(again[key], sd[key], err_msg=key)


def test_training_checkpoints_are_unwrapped():
    inner = {"model.backbone.ln_f.weight": np.ones(3), "model.lm_head.weight": np.ones((2, 3))}
    lightning = {"state_dict": inner, "epoch": 3, "pytorch-lightning_version": "1.8"}
    assert sorted(unwrap(lightning)) == ["backbone.ln_f.weight", "lm_head.weight"]
    plain = {"backbone.ln_f.weight": np.ones(3)}
    assert unwrap(plain) == plain


def test_torch_files_need_torch(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(ImportError, match=r"needs PyTorch: pip install 'h3-jax\[torch\]'"):
        convert.read_state_dict(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown state dict format '.h5'"):
        convert.read_state_dict(path)
    with pytest.raises(FileNotFoundError):
        convert.read_state_dict(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="can write .safetensors or .npz"):
        convert.write_state_dict(tmp_path / "model.pt", {})
