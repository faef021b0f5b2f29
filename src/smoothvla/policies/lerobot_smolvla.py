"""LeRobot's SmolVLA as a smoothvla `Policy`, with exact log-probabilities for RL.

The adapter wraps a `lerobot.policies.smolvla.SmolVLAPolicy` (LeRobot 0.4.4) and LeRobot's own
pre- and post-processor pipelines, so normalization, tokenization and the checkpoint format
stay LeRobot's: a folder this adapter saves loads back with `SmolVLAPolicy.from_pretrained(dir)`
and LeRobot's processor loaders unchanged; smoothvla adds `smoothvla_adapter.json` (the
adapter's options) and, with a value head, `smoothvla_value_head.safetensors`.

Observations -> LeRobot batch: `observation.images.<key>` float (B, 3, H, W) in [0, 1] from
obs['rgb'] (`SmolVLAAdapterConfig.camera_map`), `observation.state` (B, 8) from obs['proprio'],
`task` the instruction; LeRobot's preprocessor tokenizes and normalizes, its postprocessor
unnormalizes the action chunk. Actions are smoothvla's 7-D end-effector deltas, the
convention of LeRobot's LIBERO datasets; the chunk (B, k, 7) is SmolVLA's whole chunk
(`config.chunk_size`): how much of it runs is smoothvla's execution scheme, not LeRobot's
`n_action_steps` queue.

Sampling (Flow-SDE, as the compact VLA's flow head, docs/policies.md). SmolVLA integrates
x_t = t * noise + (1 - t) * actions from t = 1 to 0 with velocity v = noise - actions; in
smoothvla's convention tau = 1 - t runs from noise (0) to action (1) with velocity
u = -v(x, 1 - tau), computed by SmolVLA's `denoise_step` from the cached VLM prefix. Step i of
N (dt = 1/N, tau_i = i dt) is a Gaussian on the action dimensions A = 7:
    x_{i+1} ~ N(x_i + dt [u_i - g^2 (x_i - tau_i u_i) / (2 (1 - tau_i))], g^2 dt).
SmolVLA pads actions to `max_action_dim` D; the padded dimensions (always 0 in training) follow
their exact conditional path (1 - tau) z_pad, which does not depend on the weights, so the
density of the stored path is exact:
    log p = log N(x_0; 0, I) + log N(z_pad; 0, I) + sum_i log N(x_{i+1}; mean_i, g^2 dt).
`act(sample=True)` stores the path (B, N+1, k, A) in extras['flow_path'], z_pad
(B, k, D - A) in extras['flow_pad_noise'] and the mask of inpainted elements (prefix
conditioning, `act`) in extras['flow_given']; `log_prob` recomputes the VLM prefix from the
observations and the Gaussian terms with gradients. Greedy acting is the ODE from z = 0.

Real-time chunking (the evaluation-only 'rtc' execution scheme): `act(..., leftover, rtc)`
samples with LeRobot's own `predict_action_chunk` and an `RTCConfig` enabled for the call, so
LeRobot's `RTCProcessor` guides the denoiser towards the previous chunk's unexecuted actions;
such chunks have no density (log_prob zeros).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from smoothvla.errors import UserError, UserFileNotFoundError
from smoothvla.policies.base import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.policies.heads import gaussian_log_density, randn
from smoothvla.policies.normalizer import MissingStatisticsError
from smoothvla.types import ACTION_DIM, Observation

FORMAT = "smoothvla-lerobot-smolvla"
FORMAT_VERSION = 1
ADAPTER_FILE = "smoothvla_adapter.json"
VALUE_HEAD_FILE = "smoothvla_value_head.safetensors"
STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."
ACTION_KEY = "action"
PROPRIO_DIM = 8
# LeRobot's LIBERO datasets name their cameras 'image' and 'wrist_image' (or 'image2').
KNOWN_CAMERAS = {"image": "agentview", "wrist_image": "eye_in_hand", "image2": "eye_in_hand"}
SMOOTHVLA_CAMERAS = ("agentview", "eye_in_hand")
"""The cameras of smoothvla's suites (tabletop and LIBERO)."""


@dataclass
class SmolVLAAdapterConfig:
    """How smoothvla drives a LeRobot SmolVLA (saved as smoothvla_adapter.json)."""

    camera_map: dict[str, str] = field(default_factory=dict)
    """LeRobot image key suffix (observation.images.KEY) -> smoothvla camera (obs['rgb'] name).
    Empty: from the checkpoint's image features, a KEY that is a smoothvla camera name maps to
    itself and LeRobot's LIBERO names map as image -> agentview, wrist_image/image2 ->
    eye_in_hand."""
    image_size: int = 0
    """Square image side the env renders (0: the checkpoint's first image feature's height;
    SmolVLA resizes with padding to its own resolution)."""
    flow_sde_sigma: float = 0.5
    """Noise scale g of the sampling SDE, in LeRobot's normalized action units."""
    canonical_gripper: bool = True
    """Give the policy both gripper values of obs['proprio'] positive, as smoothvla's SFT data
    does (`canonical_proprio`); False passes obs['proprio'] unchanged (a LeRobot LIBERO
    fine-tune saw the second finger negative, as LIBERO stores it)."""

    def __post_init__(self) -> None:
        if not self.flow_sde_sigma > 0:
            raise UserError(f"flow_sde_sigma must be > 0 (the SDE needs noise for a density), "
                            f"got {self.flow_sde_sigma}")
        if self.image_size < 0:
            raise UserError(f"image_size must be >= 0, got {self.image_size}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SmolVLAAdapterConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown LeRobot SmolVLA adapter options {unknown}; known: "
                            f"{sorted(known)}")
        return cls(**d)


def is_lerobot_smolvla(directory: str | Path) -> bool:
    """Whether `directory` holds a LeRobot SmolVLA checkpoint (config.json with type 'smolvla')."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("type") == "smolvla"


def _lerobot():
    """LeRobot's SmolVLA modules, with a clear error when LeRobot is not installed."""
    try:
        from lerobot.policies.smolvla import modeling_smolvla, processor_smolvla
    except ImportError as err:
        raise UserError(f"a LeRobot SmolVLA checkpoint needs LeRobot: pip install "
                        f"'smoothvla[lerobot]' ({err})") from None
    return modeling_smolvla, processor_smolvla


class LeRobotSmolVLA(Policy):
    """LeRobot's SmolVLA behind smoothvla's `Policy` contract (module docstring): acting,
    exact Flow-SDE log-probabilities, SFT loss, LeRobot-format checkpoints and an optional
    value head (PPO) on the mean of the VLM's prefix states."""

    lerobot_rtc = True
    """`act(..., leftover, rtc)` runs LeRobot's real-time chunking (the 'rtc' scheme)."""

    def __init__(self, inner: nn.Module, preprocessor: Any, postprocessor: Any,
                 cfg: SmolVLAAdapterConfig | None = None):
        super().__init__()
        self.inner = inner
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.cfg = cfg or SmolVLAAdapterConfig()
        config = inner.config
        if not fits_smoothvla(config):
            raise UserError(_misfit(config, "this SmolVLA"))
        self.camera_map = self.cfg.camera_map or guess_camera_map(list(config.image_features))
        missing = [k for k in self.camera_map if IMAGE_PREFIX + k not in config.image_features]
        if missing:
            raise UserError(f"camera_map names {missing}, not image features of the checkpoint "
                            f"({sorted(config.image_features)})")
        self.value_head: nn.Module | None = None

    # -- the contract's properties ----------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        return int(self.inner.config.chunk_size)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.camera_map.values())

    @property
    def image_size(self) -> int | None:
        if self.cfg.image_size:
            return self.cfg.image_size
        first = self.inner.config.image_features[IMAGE_PREFIX + next(iter(self.camera_map))]
        return int(first.shape[1])

    @property
    def num_steps(self) -> int:
        """N, Euler steps of the sampler (SmolVLA's `num_steps`)."""
        return int(self.inner.config.num_steps)

    def reset(self) -> None:
        self.inner.reset()

    # -- observations -> LeRobot batch ------------------------------------------------------
    def missing_statistics(self) -> list[str]:
        """Features that LeRobot's normalizer would pass through unnormalized for lack of
        statistics (it does so silently)."""
        stats = _normalizer(self.preprocessor).stats or {}
        return [k for k in (STATE_KEY, ACTION_KEY) if k not in stats]

    def _check_statistics(self) -> None:
        missing = self.missing_statistics()
        if missing:
            raise MissingStatisticsError(
                f"the SmolVLA's normalizer has no statistics for {missing}; refusing to run "
                "unnormalized (SFT takes them from its demonstrations: smoothvla sft --init-from)")

    def lerobot_batch(self, obs: list[Observation],
                      actions: torch.Tensor | None = None) -> dict[str, Any]:
        """B observations (and optionally target chunks (B, k, 7) in env units) -> the
        preprocessed LeRobot batch on the policy's device (tokens, normalized state and
        actions)."""
        from smoothvla.policies.vla import camera_image, canonical_proprio

        self._check_statistics()
        proprio = np.stack([np.asarray(o["proprio"], np.float32) for o in obs])
        if proprio.shape[1] != PROPRIO_DIM:
            raise ValueError(f"obs['proprio'] must be ({PROPRIO_DIM},), got {proprio.shape[1:]}")
        if self.cfg.canonical_gripper:
            proprio = canonical_proprio(proprio)
        batch: dict[str, Any] = {STATE_KEY: torch.as_tensor(proprio),
                                 "task": [str(o["instruction"]) for o in obs]}
        for key, camera in self.camera_map.items():
            images = np.stack([camera_image(o["rgb"], camera) for o in obs])  # (B, H, W, 3) uint8
            batch[IMAGE_PREFIX + key] = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0
        if actions is not None:
            batch[ACTION_KEY] = torch.as_tensor(actions, dtype=torch.float32).cpu()
        out = self.preprocessor(batch)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    def prefix(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """The VLM prefix of a preprocessed batch: pad masks (B, L), the key/value cache the
        action expert attends to, and the prefix's hidden states (B, L, d) (value head)."""
        from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

        model = self.inner.model
        images, img_masks = self.inner.prepare_images(batch)
        state = self.inner.prepare_state(batch)
        embs, pad_masks, att_masks = model.embed_prefix(
            images, img_masks, batch["observation.language.tokens"],
            batch["observation.language.attention_mask"], state=state)
        (hidden, _), cache = model.vlm_with_expert.forward(
            attention_mask=make_att_2d_masks(pad_masks, att_masks),
            position_ids=torch.cumsum(pad_masks, dim=1) - 1, past_key_values=None,
            inputs_embeds=[embs, None], use_cache=True, fill_kv_cache=True)
        return pad_masks, cache, hidden

    def velocity(self, pad_masks: torch.Tensor, cache: Any, x: torch.Tensor,
                 tau: float) -> torch.Tensor:
        """u (B, k, D): smoothvla's flow velocity at flow time tau (noise 0 -> action 1) of the
        padded chunk x (B, k, D), i.e. minus SmolVLA's `denoise_step` at t = 1 - tau."""
        t = torch.full((x.shape[0],), 1.0 - tau, dtype=torch.float32, device=x.device)
        return -self.inner.model.denoise_step(pad_masks, cache, x, t)

    def sde_step(self, pad_masks, cache, x_action: torch.Tensor, pad_noise: torch.Tensor,
                 i: int) -> tuple[torch.Tensor, float]:
        """Mean (B, k, A) and std of step i of the Flow-SDE from x_action (B, k, A), the padded
        dimensions at their path point (1 - tau_i) pad_noise."""
        dt = 1.0 / self.num_steps
        tau = i * dt
        x = torch.cat([x_action, (1.0 - tau) * pad_noise], -1)
        u = self.velocity(pad_masks, cache, x, tau)[..., :x_action.shape[-1]]
        sigma = self.cfg.flow_sde_sigma
        drift = u - sigma ** 2 * (x_action - tau * u) / (2 * (1 - tau))
        return x_action + dt * drift, sigma * math.sqrt(dt)

    def _pad_dim(self) -> int:
        return int(self.inner.config.max_action_dim) - ACTION_DIM

    # -- acting and log-probabilities -------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: list[Observation], *, sample: bool = True,
            prefix: np.ndarray | None = None,
            generator: torch.Generator | None = None,
            leftover: np.ndarray | None = None,
            rtc: dict[str, Any] | None = None) -> ActionChunk:
        """A chunk per observation (module docstring): actions (B, k, 7) in env units clipped
        to [-1, 1] on the CPU, the path's log-probability (zeros when greedy), extras
        {'flow_path' (B, N+1, k, 7), 'flow_pad_noise' (B, k, D - 7), 'flow_given' (B, k, 7)}
        when sampled. `prefix` (B, n, 7) env units, NaN rows for none: prefix conditioning as
        the compact VLA's flow head does it (the 'prefix' execution scheme): at every step the
        given elements sit at their point tau * a + (1 - tau) * z of the noise-to-action path,
        so the chunk ends with them; they are not sampled and their terms are left out of the
        log-probability. `leftover` (B, n, 7) env units, NaN rows for none, with `rtc`
        (`ExecutionConfig.rtc_settings()`): LeRobot's real-time chunking instead (`_act_rtc`)."""
        if leftover is not None:
            if prefix is not None:
                raise ValueError("give prefix (prefix conditioning) or leftover (rtc), not both")
            return self._act_rtc(obs, sample, leftover, rtc or {}, generator)
        b, k = len(obs), self.chunk_size
        shape, pad_shape = (b, k, ACTION_DIM), (b, k, self._pad_dim())
        target, given = None, torch.zeros(shape, dtype=torch.bool, device=self.device)
        if prefix is not None:
            target, given = self._prefix_target(prefix)
            batch = self.lerobot_batch(obs, target.cpu())  # LeRobot normalizes the prefix
            target = batch["action"].float()
        else:
            batch = self.lerobot_batch(obs)
        pad_masks, cache, _ = self.prefix(batch)

        def inpaint(x, z, tau):
            return x if target is None else torch.where(given, tau * target + (1 - tau) * z, x)

        if sample:
            x = randn(shape, generator, self.device)
            pad_noise = randn(pad_shape, generator, self.device)
        else:
            x = torch.zeros(shape, device=self.device)
            pad_noise = torch.zeros(pad_shape, device=self.device)
        z, free = x, (~given).float()
        logp = _start_log_density(x, pad_noise, free)
        path = [x]
        for i in range(self.num_steps):
            if sample:
                mean, std = self.sde_step(pad_masks, cache, x, pad_noise, i)
                x = mean + std * randn(shape, generator, self.device)
                logp = logp + (gaussian_log_density(x, mean, std, 0) * free).flatten(1).sum(-1)
            else:  # the ODE: SmolVLA's own Euler step
                tau = i / self.num_steps
                full = torch.cat([x, (1.0 - tau) * pad_noise], -1)
                x = x + self.velocity(pad_masks, cache, full, tau)[..., :ACTION_DIM] / self.num_steps
            x = inpaint(x, z, (i + 1) / self.num_steps)
            path.append(x)
        actions = self.postprocessor(x).float().cpu().clamp(-1.0, 1.0)
        if not sample:
            return ActionChunk(actions, torch.zeros(b), {})
        extras = {"flow_path": torch.stack(path, 1).cpu(), "flow_pad_noise": pad_noise.cpu(),
                  "flow_given": given.cpu()}
        return ActionChunk(actions, logp.float().cpu(), extras)

    def _act_rtc(self, obs: list[Observation], sample: bool, leftover: np.ndarray,
                 rtc: dict[str, Any], generator: torch.Generator | None) -> ActionChunk:
        """LeRobot's real-time chunking (evaluation only): SmolVLA's own sampler,
        `SmolVLAPolicy.predict_action_chunk` with an enabled `RTCConfig`, whose `RTCProcessor`
        guides each denoising step towards the previous chunk's leftover (B, n, 7) (env units,
        normalized here by LeRobot's preprocessor; NaN rows: no guidance) with
        `inference_delay` = rtc['inference_delay'] and `execution_horizon` = n. Greedy starts
        from z = 0, sampled from z ~ N(0, I) (LeRobot's deterministic Euler loop either way);
        the chunk has no density: log_prob zeros, no extras."""
        from lerobot.configs.types import RTCAttentionSchedule
        from lerobot.policies.rtc.configuration_rtc import RTCConfig

        left = np.asarray(leftover, np.float32)
        b, k = len(obs), self.chunk_size
        if left.ndim != 3 or left.shape[0] != b or not 1 <= left.shape[1] <= k \
                or left.shape[2] != ACTION_DIM:
            raise ValueError(f"leftover must be ({b}, 1 <= n <= {k}, {ACTION_DIM}), got "
                             f"{left.shape}")
        n = left.shape[1]
        settings = dict(rtc)
        delay = int(settings.pop("inference_delay", 0))
        schedule = RTCAttentionSchedule(settings.pop("prefix_attention_schedule", "LINEAR"))
        config = RTCConfig(enabled=True, execution_horizon=n, prefix_attention_schedule=schedule,
                           **settings)
        shape = (b, k, int(self.inner.config.max_action_dim))
        noise = (randn(shape, generator, self.device) if sample
                 else torch.zeros(shape, device=self.device))
        guided = ~np.isnan(left).any(axis=(1, 2))
        out = torch.zeros((b, k, ACTION_DIM))
        with _rtc_enabled(self.inner, config):
            for rows in (np.flatnonzero(guided), np.flatnonzero(~guided)):
                if not len(rows):
                    continue
                padded = np.zeros((len(rows), k, ACTION_DIM), np.float32)
                padded[:, :n] = np.nan_to_num(left[rows])
                batch = self.lerobot_batch([obs[i] for i in rows], torch.as_tensor(padded))
                target = batch.pop(ACTION_KEY).float()[:, :n]  # LeRobot-normalized leftover
                x = self.inner.predict_action_chunk(
                    batch, noise=noise[rows], inference_delay=delay, execution_horizon=n,
                    prev_chunk_left_over=target if guided[rows[0]] else None)
                out[rows] = self.postprocessor(x).float().cpu()
        return ActionChunk(out.clamp(-1.0, 1.0), torch.zeros(b), {})

    def _prefix_target(self, prefix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, 7) env-unit prefix -> (B, k, 7) env units with zeros where free, and the
        (B, k, 7) mask of given elements."""
        p = torch.as_tensor(np.asarray(prefix, np.float32))
        if p.ndim != 3 or p.shape[1] > self.chunk_size or p.shape[2] != ACTION_DIM:
            raise ValueError(f"prefix must be (B, n <= {self.chunk_size}, {ACTION_DIM}), got "
                             f"{tuple(p.shape)}")
        given = torch.zeros((p.shape[0], self.chunk_size, ACTION_DIM), dtype=torch.bool)
        given[:, : p.shape[1]] = ~torch.isnan(p)
        target = torch.zeros(given.shape)
        target[:, : p.shape[1]] = torch.nan_to_num(p)
        return target, given.to(self.device)

    def log_prob(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B,) log-density of the stored path with its gradient (module docstring)."""
        return self.log_prob_terms(obs, chunk).sum(-1)

    def log_prob_terms(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B, 1 + (N+1) * k * 7): the padded start's log-density, then one Gaussian term per
        denoising step and action element (the first is the N(0, 1) start); they sum to
        `log_prob`."""
        if obs is None:
            raise ValueError("LeRobotSmolVLA.log_prob needs the observations (it re-runs the VLM)")
        path, pad_noise = chunk.extras.get("flow_path"), chunk.extras.get("flow_pad_noise")
        if path is None or pad_noise is None:
            raise ValueError("log_prob needs chunk.extras['flow_path'] and ['flow_pad_noise'] "
                             "(recorded by act(sample=True)); a greedy chunk has no density")
        if path.shape[1] != self.num_steps + 1:
            raise ValueError(f"flow_path has {path.shape[1] - 1} steps, the policy uses "
                             f"{self.num_steps}")
        path, pad_noise = path.to(self.device).float(), pad_noise.to(self.device).float()
        given = chunk.extras.get("flow_given")
        free = 1.0 if given is None else (~given.to(self.device).bool()).float()
        pad_masks, cache, _ = self.prefix(self.lerobot_batch(obs))
        zero = torch.zeros((), device=self.device)
        terms = [gaussian_log_density(pad_noise, zero, 1.0, 2)[:, None],
                 (gaussian_log_density(path[:, 0], zero, 1.0, 0) * free).flatten(1)]
        for i in range(self.num_steps):
            mean, std = self.sde_step(pad_masks, cache, path[:, i], pad_noise, i)
            terms.append((gaussian_log_density(path[:, i + 1], mean, std, 0) * free).flatten(1))
        return torch.cat(terms, 1)

    # -- SFT ---------------------------------------------------------------------------------
    def fit_statistics(self, actions: np.ndarray, proprio: np.ndarray, chunks: np.ndarray) -> None:
        """Statistics for a SmolVLA that has none for smoothvla's state and actions (one started
        from another robot's checkpoint): mean, std, min and max of the demo frames' actions
        (N, 7) and proprio (N, 8), written into LeRobot's normalizer and unnormalizer. A policy
        that has its statistics keeps them."""
        if not self.missing_statistics():
            return
        _, processor = _lerobot()
        stats = dict(_normalizer(self.preprocessor).stats or {})
        for key, values in ((ACTION_KEY, actions), (STATE_KEY, proprio)):
            v = torch.as_tensor(np.asarray(values, np.float32))
            stats[key] = {"mean": v.mean(0), "std": v.std(0), "min": v.amin(0), "max": v.amax(0)}
        self.preprocessor, self.postprocessor = _processors(processor, self.inner.config, stats)

    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        """SmolVLA's flow-matching loss (its `VLAFlowMatching.forward`: squared velocity error
        over all `max_action_dim` dimensions, as LeRobot trains) averaged over the real steps
        of `batch.mask`."""
        if batch.obs is None:
            raise ValueError("LeRobotSmolVLA.sft_loss needs observations (DemoBatch.obs)")
        actions = torch.as_tensor(batch.actions, dtype=torch.float32)
        if actions.ndim != 3 or actions.shape[1:] != (self.chunk_size, ACTION_DIM):
            raise ValueError(f"batch actions must be (B, {self.chunk_size}, {ACTION_DIM}), got "
                             f"{tuple(actions.shape)}")
        lb = self.lerobot_batch(batch.obs, actions)
        images, img_masks = self.inner.prepare_images(lb)
        losses = self.inner.model.forward(
            images, img_masks, lb["observation.language.tokens"],
            lb["observation.language.attention_mask"], self.inner.prepare_state(lb),
            self.inner.prepare_action(lb))  # (B, k, D)
        mask = (torch.ones(actions.shape[:2]) if batch.mask is None
                else torch.as_tensor(batch.mask, dtype=torch.float32)).to(losses.device)
        loss = (losses * mask[..., None]).sum() / (mask.sum() * losses.shape[-1]).clamp(min=1.0)
        return SFTOutput(loss, {"loss": float(loss.detach()), "flow_mse": float(loss.detach())})

    # -- value head (PPO) --------------------------------------------------------------------
    @property
    def has_value_head(self) -> bool:
        return self.value_head is not None

    def attach_value_head(self) -> None:
        """A fresh MLP on the mean of the VLM's prefix states (images, instruction, state)."""
        d = int(self.inner.model.vlm_with_expert.config.text_config.hidden_size)
        self.value_head = _value_head(d).to(self.device)

    def value(self, obs: list[Observation] | None,
              extras: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(B,) V(s) from the mean of the prefix states over their real positions."""
        if self.value_head is None:
            raise UserError("LeRobotSmolVLA has no value head: attach_value_head() first")
        if obs is None:
            raise ValueError("LeRobotSmolVLA.value needs the observations")
        pad_masks, _, hidden = self.prefix(self.lerobot_batch(obs))
        m = pad_masks.float()[..., None]
        pooled = (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.value_head(pooled).squeeze(-1)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """LeRobot's files (config.json, model.safetensors, policy_preprocessor.json,
        policy_postprocessor.json and their statistics) plus smoothvla_adapter.json (and the
        value head), written in a temporary folder renamed into place."""
        from safetensors.torch import save

        from smoothvla.io import atomic_path, atomic_write_bytes

        with atomic_path(directory, folder=True) as tmp:
            self.inner.save_pretrained(str(tmp))
            self.preprocessor.save_pretrained(str(tmp))
            self.postprocessor.save_pretrained(str(tmp))
            meta = {"format": FORMAT, "version": FORMAT_VERSION,
                    "config": {**asdict(self.cfg), "camera_map": self.camera_map}}
            (tmp / ADAPTER_FILE).write_text(json.dumps(meta, indent=1))
            if self.value_head is not None:
                state = {k: v.detach().cpu().contiguous()
                         for k, v in self.value_head.state_dict().items()}
                atomic_write_bytes(tmp / VALUE_HEAD_FILE, save(state))

    @classmethod
    def load(cls, directory: str | Path, *, retarget: bool = False,
             **overrides: Any) -> "LeRobotSmolVLA":
        """A LeRobot SmolVLA folder (LeRobot's own, or one this adapter saved); `overrides`
        replace `SmolVLAAdapterConfig` fields (e.g. flow_sde_sigma), and `flow_steps` SmolVLA's
        `num_steps` (N, `smoothvla eval --overrides.flow-steps`). `retarget` (SFT's start
        from another robot's checkpoint, e.g. lerobot/smolvla_base) replaces its state, action
        and image features by smoothvla's (weights are unchanged: SmolVLA pads both) and drops
        their statistics, which `fit_statistics` then takes from the demonstrations."""
        modeling, processor = _lerobot()
        directory = Path(directory)
        if not is_lerobot_smolvla(directory):
            raise UserFileNotFoundError(f"{directory}: not a LeRobot SmolVLA checkpoint "
                                        "(config.json with type 'smolvla')")
        meta: dict[str, Any] = {}
        if (directory / ADAPTER_FILE).is_file():
            try:
                meta = json.loads((directory / ADAPTER_FILE).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise UserError(f"{directory}/{ADAPTER_FILE} is corrupt: {err}") from None
            if not isinstance(meta, dict):
                raise UserError(f"{directory}/{ADAPTER_FILE} is not a JSON object")
            if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
                raise UserError(f"{directory}/{ADAPTER_FILE}: format {meta.get('format')!r} "
                                f"version {meta.get('version')}, this code reads {FORMAT} "
                                f"version {FORMAT_VERSION}")
        steps = overrides.pop("flow_steps", None)
        if "temperature" in overrides:
            raise UserError("temperature samples a token head; a SmolVLA samples with the "
                            "Flow-SDE, whose noise is flow_sde_sigma (--overrides.flow-sde-sigma)")
        cfg = SmolVLAAdapterConfig.from_dict({**meta.get("config", {}), **overrides})
        inner = modeling.SmolVLAPolicy.from_pretrained(str(directory))
        inner.eval()
        if steps is not None:
            if int(steps) < 1:
                raise UserError(f"flow_steps must be >= 1, got {steps}")
            inner.config.num_steps = int(steps)
        if retarget:
            cameras = list(cfg.camera_map.values()) or ["agentview", "eye_in_hand"]
            size = cfg.image_size or 128
            cfg.camera_map = {c: c for c in cameras}
            retarget_features(inner.config, cameras, size)
            pre, post = _processors(processor, inner.config, None)
        else:
            if not fits_smoothvla(inner.config):
                raise UserError(_misfit(inner.config, str(directory)))
            pre, post = _load_processors(processor, directory)
        policy = cls(inner, pre, post, cfg)
        if (directory / VALUE_HEAD_FILE).is_file():
            from safetensors.torch import load_file

            policy.attach_value_head()
            policy.value_head.load_state_dict(load_file(str(directory / VALUE_HEAD_FILE)))
        return policy


def fits_smoothvla(config: Any) -> bool:
    """Whether a SmolVLA config reads an 8-D state and predicts 7-D actions."""
    state, action = config.input_features.get(STATE_KEY), config.output_features.get(ACTION_KEY)
    return (state is not None and tuple(state.shape) == (PROPRIO_DIM,)
            and action is not None and tuple(action.shape) == (ACTION_DIM,))


def start_from(directory: str | Path) -> LeRobotSmolVLA:
    """The policy `smoothvla sft --init-from DIR` trains: the SmolVLA in DIR as it is when its
    state and action fit smoothvla's (a LIBERO fine-tune), else retargeted (`load`'s
    `retarget`: another robot's checkpoint such as lerobot/smolvla_base)."""
    _lerobot()  # a clear error without LeRobot
    from lerobot.configs.policies import PreTrainedConfig

    config = PreTrainedConfig.from_pretrained(str(directory))
    return LeRobotSmolVLA.load(directory, retarget=not fits_smoothvla(config))


def retarget_features(config: Any, cameras: list[str], image_size: int) -> None:
    """Set a SmolVLA config's features to smoothvla's: state (8,), action (7,), one
    (3, S, S) image per camera (observation.images.CAMERA)."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    config.input_features = {
        STATE_KEY: PolicyFeature(FeatureType.STATE, (PROPRIO_DIM,)),
        **{IMAGE_PREFIX + c: PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size))
           for c in cameras}}
    config.output_features = {ACTION_KEY: PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}
    config.empty_cameras = 0


def guess_camera_map(image_keys: list[str]) -> dict[str, str]:
    """LeRobot image feature keys -> {key suffix: smoothvla camera} (see
    `SmolVLAAdapterConfig.camera_map`); UserError when a key has no known counterpart."""
    out, unknown = {}, []
    for key in image_keys:
        name = key.removeprefix(IMAGE_PREFIX)
        if name.startswith("empty_camera_"):
            continue
        camera = name if name in SMOOTHVLA_CAMERAS else KNOWN_CAMERAS.get(name)
        if camera is None:
            unknown.append(name)
        else:
            out[name] = camera
    if unknown or not out:
        raise UserError(f"cannot tell which smoothvla cameras the SmolVLA's images {unknown or image_keys} "
                        f"are; write {ADAPTER_FILE} with {{\"format\": \"{FORMAT}\", \"version\": "
                        f"{FORMAT_VERSION}, \"config\": {{\"camera_map\": {{KEY: CAMERA}}}}}} "
                        f"(cameras: {list(SMOOTHVLA_CAMERAS)})")
    return out


def _misfit(config: Any, what: str) -> str:
    state, action = config.input_features.get(STATE_KEY), config.output_features.get(ACTION_KEY)
    return (f"{what} reads a state of shape {None if state is None else tuple(state.shape)} and "
            f"predicts actions of shape {None if action is None else tuple(action.shape)}; "
            f"smoothvla's envs give an {PROPRIO_DIM}-D proprio and take {ACTION_DIM}-D "
            "end-effector deltas. Start from it with `smoothvla sft --init-from DIR`, which sets "
            "smoothvla's features and fits their statistics")


def _normalizer(pipeline: Any) -> Any:
    from lerobot.processor import NormalizerProcessorStep

    for step in pipeline.steps:
        if isinstance(step, NormalizerProcessorStep):
            return step
    raise UserError("the SmolVLA's preprocessor has no normalizer step")


def _processors(processor: Any, config: Any, stats: dict | None) -> tuple[Any, Any]:
    """LeRobot's SmolVLA processors for `config`, preprocessing on the CPU."""
    device = config.device
    config.device = "cpu"
    try:
        return processor.make_smolvla_pre_post_processors(config, stats)
    finally:
        config.device = device


def _load_processors(processor: Any, directory: Path) -> tuple[Any, Any]:
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import (batch_to_transition, policy_action_to_transition,
                                              transition_to_batch, transition_to_policy_action)

    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        if not (directory / name).is_file():
            raise UserFileNotFoundError(f"{directory}: checkpoint lacks {name} (LeRobot's "
                                        "processors with the normalization statistics)")
    cpu = {"device_processor": {"device": "cpu"}}
    pre = PolicyProcessorPipeline.from_pretrained(
        str(directory), config_filename="policy_preprocessor.json", overrides=cpu,
        to_transition=batch_to_transition, to_output=transition_to_batch)
    post = PolicyProcessorPipeline.from_pretrained(
        str(directory), config_filename="policy_postprocessor.json", overrides=cpu,
        to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
    return pre, post


@contextlib.contextmanager
def _rtc_enabled(inner: nn.Module, config: Any):
    """`inner` (a SmolVLAPolicy) with `config` as its `rtc_config` (LeRobot's
    `init_rtc_processor` builds the `RTCProcessor` its model calls), restored afterwards, so a
    saved checkpoint never carries it."""
    before = inner.config.rtc_config
    inner.config.rtc_config = config
    inner.init_rtc_processor()
    try:
        yield
    finally:
        inner.config.rtc_config = before
        inner.init_rtc_processor()
        inner.model.rtc_processor = inner.rtc_processor  # LeRobot sets it only when not None


def _value_head(d: int, hidden: int = 256) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, 1))


def _start_log_density(x: torch.Tensor, pad_noise: torch.Tensor,
                       free: torch.Tensor) -> torch.Tensor:
    """(B,) log N(x; 0, I) over the free elements + log N(pad_noise; 0, I); x and free
    (B, k, A), pad_noise (B, k, D - A)."""
    zero = torch.zeros((), device=x.device)
    start = (gaussian_log_density(x, zero, 1.0, 0) * free).flatten(1).sum(-1)
    return start + gaussian_log_density(pad_noise, zero, 1.0, 2)
