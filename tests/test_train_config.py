"""h3_jax.train.config.config_tag: the name of a run's directory changes with what the run
trains, and not with fields the package adds later at their defaults."""

from __future__ import annotations

import dataclasses

from h3_jax.models import LMConfig
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides, config_tag
from h3_jax.train.fields import non_default_fields


@dataclasses.dataclass(frozen=True)
class LaterLMConfig(LMConfig):
    """LMConfig as a later version of the package might have it: one more field."""

    added_option: int = 0


def with_later_model(config, **fields):
    current = {f.name: getattr(config.model, f.name) for f in dataclasses.fields(config.model)}
    model = LaterLMConfig(**current, **fields)
    return dataclasses.replace(config, model=model)


def test_a_field_added_at_its_default_keeps_the_tag():
    config = get_preset("h3-ar")
    assert config_tag(with_later_model(config)) == config_tag(config)
    assert config_tag(with_later_model(config), [0, 1], 0.99) == config_tag(config, [0, 1], 0.99)
    assert config_tag(with_later_model(config, added_option=1)) != config_tag(config)


def test_the_tag_follows_the_run():
    config = get_preset("h3-ar")
    tag = config_tag(config, [0], 1.0)
    assert tag == config_tag(get_preset("h3-ar"), [0], 1.0)
    assert len(tag) == 10 and int(tag, 16) >= 0
    for changed in ("optim.lr=0.001", "train.micro_batches=2", "model.n_layer=3"):
        assert config_tag(apply_overrides(config, [changed]), [0], 1.0) != tag, changed
    assert config_tag(config, [0, 1], 1.0) != tag
    assert config_tag(config, [0], None) != tag
    assert config_tag(get_preset("h3-ih"), [0], 1.0) != tag


def test_non_default_fields_lists_changes_and_fields_without_default():
    config = apply_overrides(get_preset("h3-ar"), ["optim.weight_decay_ssm=0.1"])
    fields = non_default_fields(config)
    assert fields["optim"]["weight_decay_ssm"] == 0.1
    assert "micro_batches" not in fields["train"]  # at its default
    assert fields["model"]["vocab_size"] == config.model.vocab_size  # has no default
    assert fields["preset"] == "h3-ar" and fields["task_name"] == config.task_name
