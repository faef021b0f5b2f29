"""Options removed from VLAConfig (issue 25: recorded worse or never trained): checkpoints
written before hold them at their defaults and still load; any other value is refused."""

import json

import pytest
import torch
from policy_helpers import make_obs, tiny_policy

from smoothvla.errors import UserError
from smoothvla.policies import VLAConfig, load_policy
from smoothvla.policies.vla import RETIRED_FIELDS

torch.set_num_threads(1)
OLD_DEFAULTS = {"vision_stride": 32, "vision_keypoints": 0, "vision_film": False}


def _with_config(path, **fields):
    meta = json.loads((path / "config.json").read_text())
    meta["config"].update(fields)
    (path / "config.json").write_text(json.dumps(meta))


def test_the_retired_fields_and_their_old_defaults():
    assert {k: v for k, (v, _) in RETIRED_FIELDS.items()} == OLD_DEFAULTS
    assert not set(OLD_DEFAULTS) & set(VLAConfig.__dataclass_fields__)


def test_an_old_checkpoint_with_the_default_values_loads_and_acts_the_same(tmp_path):
    policy = tiny_policy(head="gaussian")
    policy.save(tmp_path / "ckpt")
    _with_config(tmp_path / "ckpt", **OLD_DEFAULTS)
    loaded = load_policy(tmp_path / "ckpt")
    obs = make_obs(2)
    torch.testing.assert_close(loaded.act(obs, sample=False).actions,
                               policy.act(obs, sample=False).actions)
    loaded.save(tmp_path / "again")  # written without them
    assert not set(OLD_DEFAULTS) & set(json.loads((tmp_path / "again" / "config.json").read_text())["config"])


@pytest.mark.parametrize("name,value", [("vision_film", True), ("vision_keypoints", 16),
                                        ("vision_stride", 16)])
def test_a_checkpoint_that_used_a_removed_option_is_refused(tmp_path, name, value):
    tiny_policy(head="gaussian").save(tmp_path / "ckpt")
    _with_config(tmp_path / "ckpt", **{name: value})
    with pytest.raises(UserError, match=f"{name}={value!r}: that option was removed"):
        load_policy(tmp_path / "ckpt")
    with pytest.raises(UserError, match="removed"):
        VLAConfig.from_dict({name: value})
