"""Tests of the LeRobot SmolVLA adapter: skipped when LeRobot is not installed (`make test`
installs it). Before LeRobot is imported, a torchvision stand-in goes into `sys.modules` when
no working torchvision is importable (torchvision_standin.py), and SmolVLM's processor is
replaced by its tokenizer: SmolVLA reads only the tokenizer, and the real processor's image
and video parts need torchvision."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))
import torchvision_standin  # noqa: E402

# without LeRobot the test modules skip (pytest.importorskip) and nothing is patched
if importlib.util.find_spec("lerobot") is not None and torchvision_standin.install():
    from lerobot.policies.smolvla import smolvlm_with_expert
    from transformers import AutoTokenizer

    class TokenizerOnlyProcessor:
        @staticmethod
        def from_pretrained(path, **kwargs):
            return SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(path))

    smolvlm_with_expert.AutoProcessor = TokenizerOnlyProcessor
