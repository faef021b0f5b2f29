"""`smoothvla train --policy runs/sft/checkpoints/step_0002000 --tasks TASK ... --algorithm grpo --reward.name smooth`:
RL fine-tuning of an SFT checkpoint. The flags are `FinetuneConfig`'s and the work is
`smoothvla.algorithms.finetune.finetune`, which the study calls too; the policy's
directory is printed on stdout.
"""

from __future__ import annotations

from smoothvla.algorithms.finetune import FinetuneConfig as Config
from smoothvla.algorithms.finetune import finetune


def run(cfg: Config) -> int:
    finetune(cfg)
    print(f"{cfg.out_dir}/policy")
    return 0
