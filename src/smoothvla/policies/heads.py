"""Transformer block, the action heads (token, flow, Gaussian, DCT) and the value head.

Every action head works on the backbone's hidden states at the k action-query positions,
h (B, k, d), and on actions in the normalizer's space (x in [-1, 1] between the 1st and 99th
percentile). Each implements:

    loss(h, target (B,k,A), mask (B,k)) -> (loss, metrics, predicted chunk (B,k,A))
    sample(h, sample, generator)        -> (x (B,k,A), log_prob (B,), extras)
    log_prob(h, x (B,k,A), extras)      -> (B,) differentiable

Log-probabilities are densities (or probabilities) in normalized action space; the map to
env units is a fixed affine one, so ratios between two policies are unaffected.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from smoothvla.policies.normalizer import MissingStatisticsError

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float,
                         dims: int) -> torch.Tensor:
    """Sum over the last `dims` dimensions of log N(x; mean, std^2)."""
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    logp = -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * _LOG_2PI
    return logp.flatten(-dims).sum(-1) if dims else logp


def randn(shape: tuple[int, ...], generator: torch.Generator | None,
          device: torch.device) -> torch.Tensor:
    """Standard normal noise on `device`; drawn from `generator` on its own device (a CPU
    generator gives the same numbers whatever device the policy runs on)."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, k) over entries where mask (B, k) is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


class Block(nn.Module):
    """Pre-norm transformer block with plain Linear layers (qkv, proj, fc1, fc2), so LoRA
    can target them by name."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} must be divisible by n_heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(self._self_attention(x))

    def _self_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a.transpose(1, 2).reshape(b, t, d))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ExpertBlock(Block):
    """A `Block` that can also cross-attend to a context sequence (pi0's action expert reading
    the backbone): self-attention over the chunk, then cross-attention from the chunk to the
    context (B, T, d), then the MLP. Without a context it is a plain `Block`."""

    def __init__(self, d: int, heads: int, ff: int, cross: bool = False):
        super().__init__(d, heads, ff)
        self.cross = cross
        if cross:
            self.cross_norm = nn.LayerNorm(d)
            self.cross_q, self.cross_kv = nn.Linear(d, d), nn.Linear(d, 2 * d)
            self.cross_proj = nn.Linear(d, d)

    def context_kv(self, context: torch.Tensor) -> torch.Tensor:
        """Keys and values of the context (B, T, d) -> (2, B, heads, T, d / heads); they do not
        depend on the chunk, so one computation serves every denoising step."""
        b, t, d = context.shape
        return self.cross_kv(context).view(b, t, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, k, d); kv from `context_kv` (required when the block cross-attends)."""
        x = self._self_attention(x)
        if self.cross:
            b, t, d = x.shape
            q = self.cross_q(self.cross_norm(x)).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, kv[0], kv[1])
            x = x + self.cross_proj(a.transpose(1, 2).reshape(b, t, d))
        return self._mlp(x)


class TokenHead(nn.Module):
    """OpenVLA-style discretization (RL4VLA §3.2): each action dimension in one of `n_bins`
    uniform bins over [-1, 1] (= the 1st..99th percentile in env units); cross-entropy for SFT.
    Sampling draws every (step, dim) token independently from softmax(logits / temperature);
    the reported log-probability is under that same tempered distribution."""

    def __init__(self, d: int, action_dim: int, n_bins: int = 256, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.action_dim, self.n_bins, self.temperature = action_dim, n_bins, temperature
        self.out = nn.Linear(d, action_dim * n_bins)
        edges = torch.linspace(-1, 1, n_bins + 1)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("centers", (edges[1:] + edges[:-1]) / 2, persistent=False)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, k, d) -> (B, k, A, n_bins)."""
        return self.out(h).view(*h.shape[:2], self.action_dim, self.n_bins)

    def bins_of(self, x: torch.Tensor) -> torch.Tensor:
        """Bin index (long, same shape) of normalized actions: bin i is [edge_i, edge_{i+1});
        values outside [-1, 1] go to the end bins."""
        return torch.bucketize(x.contiguous(), self.edges[1:-1], right=True)

    def loss(self, h, target, mask):
        logits = self.logits(h)
        bins = self.bins_of(target)
        ce = F.cross_entropy(logits.flatten(0, 2), bins.flatten(), reduction="none")
        ce = ce.view(bins.shape).mean(-1)
        pred = logits.softmax(-1) @ self.centers
        acc = masked_mean((logits.argmax(-1) == bins).float().mean(-1), mask)
        return masked_mean(ce, mask), {"token_accuracy": float(acc)}, pred

    def sample(self, h, sample: bool, generator=None):
        logits = self.logits(h) / self.temperature
        if not sample:
            bins = logits.argmax(-1)
            return self.centers[bins], torch.zeros(h.shape[0], device=h.device), {"token_bins": bins}
        probs = logits.softmax(-1).flatten(0, 2)
        if generator is not None and generator.device != probs.device:
            probs = probs.to(generator.device)  # draw from the caller's generator
        bins = torch.multinomial(probs, 1, generator=generator).to(h.device).view(logits.shape[:-1])
        logp = logits.log_softmax(-1).gather(-1, bins.unsqueeze(-1)).squeeze(-1).flatten(1).sum(-1)
        return self.centers[bins], logp, {"token_bins": bins}

    def log_prob(self, h, x, extras):
        return self.log_prob_terms(h, x, extras).sum(-1)

    def log_prob_terms(self, h, x, extras):
        """(B, k * A): the log-probability of each action token; they sum to `log_prob`."""
        bins = extras.get("token_bins")
        bins = self.bins_of(x) if bins is None else bins.long()
        logp = (self.logits(h) / self.temperature).log_softmax(-1)
        return logp.gather(-1, bins.unsqueeze(-1)).squeeze(-1).flatten(1)


def _time_features(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow time tau (B,) in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=tau.dtype, device=tau.device) * (-math.log(1000.0) / max(half - 1, 1)))
    ang = tau[:, None] * freqs[None] * 2 * math.pi
    return torch.cat([ang.sin(), ang.cos()], -1)


class FlowHead(nn.Module):
    """Flow-matching action expert (pi0 / SmolVLA, the SmolVLA GRPO report §2.3), conditioned on h.

    Path x_tau = tau * a + (1 - tau) * z, z ~ N(0, I), target velocity a - z; the expert is a
    small transformer over the k chunk positions with input h + W x_tau + time embedding.
    With `context=True`, h is the backbone's whole hidden sequence (B, T, d) whose last
    `chunk_size` rows are the action queries; every expert block then also cross-attends to
    all T states (vision, language, proprio, queries), as pi0's expert attends to the VLM.

    Deterministic acting (`sample=False`): z = 0 and N Euler steps of the ODE.
    Stochastic acting (for RL): the Flow-SDE with the same marginals as the ODE (the
    reverse-time SDE dx = [v + g^2/2 * score] dtau + g dW, with score = -(x - tau v)/(1 - tau)
    for this path), discretized with Euler-Maruyama, so step i is Gaussian:
        x_{i+1} ~ N(x_i + dt [v_i - g^2 (x_i - tau_i v_i) / (2 (1 - tau_i))], g^2 dt).
    The chunk's log-probability is log N(x_0; 0, I) + sum_i log N(x_{i+1}; mean_i, g^2 dt),
    summed over (k, A); the whole path (B, N+1, k, A) goes in extras["flow_path"].
    """

    def __init__(self, d: int, action_dim: int, heads: int, ff: int, steps: int = 10,
                 sde_sigma: float = 0.5, layers: int = 2, context: bool = False,
                 chunk_size: int = 0):
        super().__init__()
        if context and chunk_size < 1:
            raise ValueError("a flow head with context needs chunk_size (the action positions at "
                             "the end of the hidden sequence)")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if sde_sigma <= 0:
            raise ValueError(f"sde_sigma must be > 0 (the SDE needs noise for a density), got {sde_sigma}")
        self.d, self.steps, self.sigma = d, steps, sde_sigma
        self.context, self.chunk_size = context, chunk_size
        self.in_proj = nn.Linear(action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(ExpertBlock(d, heads, ff, context) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, action_dim)

    def context_kv(self, h: torch.Tensor) -> list[torch.Tensor | None]:
        """Per expert block, the keys and values of the context (None without context)."""
        return [block.context_kv(h) if self.context else None for block in self.blocks]

    def velocity(self, h: torch.Tensor, x: torch.Tensor, tau: torch.Tensor,
                 kv: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """h (B,k,d) (with context: (B,T,d)), x (B,k,A), tau (B,) -> v (B,k,A). `kv`: the
        context's `context_kv(h)`, passed in by callers that integrate many steps."""
        kv = self.context_kv(h) if kv is None else kv
        z = h[:, -x.shape[1]:] + self.in_proj(x) + self.time_mlp(_time_features(tau, self.d))[:, None]
        for block, block_kv in zip(self.blocks, kv):
            z = block(z, block_kv)
        return self.out(self.norm(z))

    def loss(self, h, target, mask, tau: torch.Tensor | None = None):
        """Flow-matching loss at flow times `tau` (B,), drawn uniformly from [0, 1) when None."""
        b = h.shape[0]
        noise = torch.randn(target.shape).to(target.device)  # CPU stream, as tau
        if tau is None:
            tau = torch.rand(b)  # CPU stream: the same draws on every device
        tau = tau.to(h.device)
        t = tau[:, None, None]
        x_tau = t * target + (1 - t) * noise
        v = self.velocity(h, x_tau, tau)
        mse = ((v - (target - noise)) ** 2).mean(-1)
        pred = x_tau + (1 - t) * v  # one-step estimate of the clean chunk
        return masked_mean(mse, mask), {"flow_mse": float(masked_mean(mse, mask).detach())}, pred

    def _step(self, h, x, i: int, kv=None):
        """Mean and std of step i of the SDE from x."""
        dt = 1.0 / self.steps
        tau = torch.full((x.shape[0],), i * dt, device=x.device)
        v = self.velocity(h, x, tau, kv)
        drift = v - self.sigma ** 2 * (x - i * dt * v) / (2 * (1 - i * dt))
        return x + dt * drift, self.sigma * math.sqrt(dt)

    def sample(self, h, sample: bool, generator=None, prefix=None):
        """`prefix` (B, k, A) with NaN where free: prefix conditioning (real-time chunking's
        inpainting, rollout/execution.py). At every step the given elements are set to their
        point on the noise-to-action path, tau * a + (1 - tau) * z, so the free elements are
        denoised conditioned on them; the chunk ends with them exactly. They are not sampled,
        so the log-probability covers the free elements only (their mask goes in extras)."""
        b = h.shape[0]
        shape = (b, self.chunk_size if self.context else h.shape[1], self.out.out_features)
        kv = self.context_kv(h)
        given = None if prefix is None else ~torch.isnan(prefix)
        target = None if prefix is None else torch.nan_to_num(prefix)

        def inpaint(x, z, tau):
            return x if given is None else torch.where(given, tau * target + (1 - tau) * z, x)

        if not sample:
            x = torch.zeros(shape, device=h.device)
            for i in range(self.steps):
                x = inpaint(x, 0.0, i / self.steps)
                tau = torch.full((b,), i / self.steps, device=h.device)
                x = x + self.velocity(h, x, tau, kv) / self.steps
            return inpaint(x, 0.0, 1.0), torch.zeros(b, device=h.device), {}
        z = x = randn(shape, generator, h.device)
        path = [x]
        free = torch.ones(shape, device=h.device) if given is None else (~given).float()
        logp = (gaussian_log_density(x, torch.zeros_like(x), 1.0, 0) * free).flatten(1).sum(-1)
        for i in range(self.steps):
            mean, std = self._step(h, x, i, kv)
            x = mean + std * randn(shape, generator, h.device)
            logp = logp + (gaussian_log_density(x, mean, std, 0) * free).flatten(1).sum(-1)
            x = inpaint(x, z, (i + 1) / self.steps)
            path.append(x)
        given = torch.zeros(shape, dtype=torch.bool, device=h.device) if given is None else given
        return x, logp, {"flow_path": torch.stack(path, 1), "flow_given": given}

    def log_prob(self, h, x, extras):
        return self.log_prob_terms(h, x, extras).sum(-1)

    def log_prob_terms(self, h, x, extras):
        """(B, (steps + 1) * k * A): one Gaussian term per denoising step and action element
        (the first is the N(0, 1) start); they sum to `log_prob`."""
        path = extras.get("flow_path")
        if path is None:
            raise ValueError("flow head: log_prob needs chunk.extras['flow_path'] (the denoising "
                             "path recorded by act(sample=True)); a deterministic chunk has no density")
        if path.shape[1] != self.steps + 1:
            raise ValueError(f"flow_path has {path.shape[1] - 1} steps, the head uses {self.steps}")
        given = extras.get("flow_given")
        free = 1.0 if given is None else (~given.bool()).float()
        terms = [gaussian_log_density(path[:, 0], torch.zeros_like(path[:, 0]), 1.0, 0) * free]
        kv = self.context_kv(h)
        for i in range(self.steps):
            mean, std = self._step(h, path[:, i], i, kv)
            terms.append(gaussian_log_density(path[:, i + 1], mean, std, 0) * free)
        return torch.stack(terms, 1).flatten(1)


class GaussianHead(nn.Module):
    """Diagonal Gaussian over the chunk: mean from h, log-std either a learned
    state-independent vector (A,) or a linear function of h. SFT minimizes the NLL."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, d: int, action_dim: int, state_dependent: bool = False,
                 init_log_std: float = -1.0):
        super().__init__()
        self.mean = nn.Linear(d, action_dim)
        self.state_dependent = state_dependent
        if state_dependent:
            self.log_std_layer = nn.Linear(d, action_dim)
            nn.init.zeros_(self.log_std_layer.weight)
            nn.init.constant_(self.log_std_layer.bias, init_log_std)
        else:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def dist(self, h):
        mean = self.mean(h)
        log_std = self.log_std_layer(h) if self.state_dependent else self.log_std.expand_as(mean)
        return mean, log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX).exp()

    def loss(self, h, target, mask):
        mean, std = self.dist(h)
        nll = -gaussian_log_density(target, mean, std, 0).mean(-1)
        mse = ((mean - target) ** 2).mean(-1)
        return masked_mean(nll, mask), {"mse": float(masked_mean(mse, mask).detach()),
                                        "std": float(std.mean().detach())}, mean

    def sample(self, h, sample: bool, generator=None):
        mean, std = self.dist(h)
        if not sample:
            return mean, torch.zeros(h.shape[0], device=h.device), {}
        x = mean + std * randn(mean.shape, generator, h.device)
        return x, gaussian_log_density(x, mean, std, 2), {"gaussian_sample": x}

    def log_prob(self, h, x, extras):
        return self.log_prob_terms(h, x, extras).sum(-1)

    def log_prob_terms(self, h, x, extras):
        """(B, k * A): one Gaussian term per action element; they sum to `log_prob`."""
        x = extras.get("gaussian_sample", x)
        mean, std = self.dist(h)
        return gaussian_log_density(x, mean, std, 0).flatten(1)


class ValueHead(nn.Module):
    """Three-layer MLP on the hidden state at the first action position (RL4VLA §4.2)."""

    def __init__(self, d: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B,)."""
        return self.net(h0).squeeze(-1)


def dct_matrix(k: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (k, k): D[m, t] = s_m cos(pi (t + 1/2) m / k), s_0 = sqrt(1/k),
    s_m = sqrt(2/k). Coefficients of a chunk x (B, k, A) are D @ x; D^T undoes it (D D^T = I)."""
    t = torch.arange(k, dtype=torch.float64)
    m = torch.arange(k, dtype=torch.float64)[:, None]
    d = torch.cos(math.pi * (t + 0.5) * m / k) * math.sqrt(2.0 / k)
    d[0] = math.sqrt(1.0 / k)
    return d.float()


class MissingBinRangesError(MissingStatisticsError):
    """A head whose bins come from training data was used before they were set."""


# A (coefficient, dimension) whose 1st-99th percentile range is narrower than twice this
# (e.g. a dimension the demonstrations never move) gets this half-range around its middle.
_MIN_COEF_HALF_RANGE = 1e-2


class DCTHead(nn.Module):
    """A chunk that is smooth by construction: the k steps of each normalized action dimension
    are the inverse orthonormal DCT-II of M <= k coefficients, and every kept coefficient is
    one token over `n_bins` uniform bins (a FAST-like discretization without BPE, so SFT keeps
    the token head's cross-entropy). Coefficient m of every smooth dimension is read from the
    m-th action-query state.

    Bins: uniform per (coefficient, dimension) between the 1st and 99th percentile of the
    training chunks' coefficients, in the persistent buffers `coef_low`, `coef_high` (M, A_s)
    set once by `fit` (SFT calls it through `CompactVLA.fit_action_head`) and saved with the
    weights; NaN until then, and every use raises `MissingBinRangesError`. Coefficients out
    of the range go to the end bins.

    Gripper (`gripper_dim`, the last dimension by default): a binary open/close switch that a
    low-frequency basis would smear over the chunk and delay, so it stays one token per step
    over uniform bins in [-1, 1] as in `TokenHead` (None: every dimension is smooth).

    Sampling draws every token independently from softmax(logits / temperature); the
    log-probability is under that tempered distribution: M * A_s coefficient terms then k
    gripper terms (`log_prob_terms`), whose sum is `log_prob`. The chosen tokens travel in
    extras["dct_tokens"] (B, M * A_s + k) so the log-probability is recomputed exactly even
    when the executed chunk was clipped.
    """

    def __init__(self, d: int, action_dim: int, chunk_size: int, n_coefficients: int,
                 n_bins: int = 256, temperature: float = 1.0, gripper_dim: int | None = None):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 1 <= n_coefficients <= chunk_size:
            raise ValueError(f"n_coefficients must be in [1, chunk_size={chunk_size}], "
                             f"got {n_coefficients}")
        self.k, self.m, self.n_bins, self.temperature = chunk_size, n_coefficients, n_bins, temperature
        self.action_dim, self.gripper_dim = action_dim, gripper_dim
        self.smooth_dims = [a for a in range(action_dim) if a != gripper_dim]
        n_smooth = len(self.smooth_dims)
        self.coef_out = nn.Linear(d, n_smooth * n_bins)
        self.gripper_out = nn.Linear(d, n_bins) if gripper_dim is not None else None
        self.register_buffer("basis", dct_matrix(chunk_size)[:n_coefficients], persistent=False)
        self.register_buffer("coef_low", torch.full((n_coefficients, n_smooth), float("nan")))
        self.register_buffer("coef_high", torch.full((n_coefficients, n_smooth), float("nan")))
        edges = torch.linspace(-1, 1, n_bins + 1)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("centers", (edges[1:] + edges[:-1]) / 2, persistent=False)

    # -- bins -------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(torch.isfinite(self.coef_low).all() and torch.isfinite(self.coef_high).all())

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized chunk (B, k, A) -> kept DCT coefficients of the smooth dims (B, M, A_s)."""
        return torch.einsum("mt,bta->bma", self.basis, x[..., self.smooth_dims])

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the bin ranges from training chunks x (N, k, A), normalized: the 1st and 99th
        percentile of each kept coefficient of each smooth dimension."""
        if x.ndim != 3 or x.shape[1:] != (self.k, self.action_dim) or len(x) == 0:
            raise ValueError(f"fit needs chunks (N > 0, {self.k}, {self.action_dim}), got {tuple(x.shape)}")
        c = self.coefficients(x.float().to(self.basis.device)).flatten(1).double()
        low = torch.quantile(c, 0.01, dim=0).view(self.coef_low.shape)
        high = torch.quantile(c, 0.99, dim=0).view(self.coef_low.shape)
        mid, half = (low + high) / 2, ((high - low) / 2).clamp(min=_MIN_COEF_HALF_RANGE)
        self.coef_low.copy_(mid - half)
        self.coef_high.copy_(mid + half)

    def _ranges(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.fitted:
            raise MissingBinRangesError(
                "the dct head has no coefficient bin ranges: SFT sets them from the training "
                "chunks (CompactVLA.fit_action_head), and checkpoints carry them; a fresh dct "
                "policy must be fitted before it acts or trains")
        return self.coef_low, self.coef_high

    def coef_bins_of(self, c: torch.Tensor) -> torch.Tensor:
        """Bin index (long) of coefficients c (B, M, A_s); out-of-range values go to the end bins."""
        low, high = self._ranges()
        u = (c - low) / (high - low) * self.n_bins
        return u.floor().clamp(0, self.n_bins - 1).long()

    def coef_centers(self, bins: torch.Tensor) -> torch.Tensor:
        """Bin centres (B, M, A_s) of coefficient bins (B, M, A_s)."""
        low, high = self._ranges()
        return low + (bins.float() + 0.5) / self.n_bins * (high - low)

    def gripper_bins_of(self, g: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(g.contiguous(), self.edges[1:-1], right=True)

    # -- logits and tokens ------------------------------------------------------------------
    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, k, d) -> logits of every token (B, M * A_s + k, n_bins) (gripper tokens last)."""
        b = h.shape[0]
        out = [self.coef_out(h[:, :self.m]).view(b, -1, self.n_bins)]
        if self.gripper_out is not None:
            out.append(self.gripper_out(h))
        return torch.cat(out, 1)

    def tokens_of(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, M * A_s + k) of a normalized chunk x (B, k, A)."""
        tokens = [self.coef_bins_of(self.coefficients(x)).flatten(1)]
        if self.gripper_dim is not None:
            tokens.append(self.gripper_bins_of(x[..., self.gripper_dim]))
        return torch.cat(tokens, 1)

    def chunk_of(self, coef: torch.Tensor, gripper: torch.Tensor | None) -> torch.Tensor:
        """Normalized chunk (B, k, A) from coefficient values (B, M, A_s) and gripper values
        (B, k) (None without a gripper dimension): the inverse DCT of the kept coefficients."""
        smooth = torch.einsum("mt,bma->bta", self.basis, coef)
        x = smooth.new_zeros(coef.shape[0], self.k, self.action_dim)
        x[..., self.smooth_dims] = smooth
        if self.gripper_dim is not None:
            x[..., self.gripper_dim] = gripper
        return x

    def _split(self, tokens_or_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = self.m * len(self.smooth_dims)
        coef = tokens_or_values[:, :n].unflatten(1, (self.m, len(self.smooth_dims)))
        return coef, (tokens_or_values[:, n:] if self.gripper_dim is not None else None)

    def chunk_of_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normalized chunk (B, k, A) of tokens (B, M * A_s + k): bin centres, inverse DCT."""
        coef, grip = self._split(tokens)
        return self.chunk_of(self.coef_centers(coef), None if grip is None else self.centers[grip])

    # -- the head interface -----------------------------------------------------------------
    def loss(self, h, target, mask):
        """Cross-entropy over every token. Coefficient tokens are not masked: a chunk padded
        past the episode end (with the last action) is still the chunk to predict, and a
        coefficient belongs to every step; gripper tokens are masked per step."""
        logits = self.logits(h)
        tokens = self.tokens_of(target)
        ce = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="none").view(tokens.shape)
        weight = torch.ones_like(ce)
        if self.gripper_dim is not None:
            weight[:, -self.k:] = mask
        loss = (ce * weight).sum() / weight.sum().clamp(min=1.0)
        hit = (logits.argmax(-1) == tokens).float()
        probs = logits.softmax(-1)
        coef_p, grip_p = self._split(probs)
        low, high = self._ranges()
        steps = (torch.arange(self.n_bins, device=h.device) + 0.5) / self.n_bins
        coef_values = low[..., None] + steps * (high - low)[..., None]  # (M, A_s, n_bins)
        pred = self.chunk_of((coef_p * coef_values).sum(-1), None if grip_p is None else grip_p @ self.centers)
        mse = masked_mean(((pred - target) ** 2).mean(-1), mask)
        return loss, {"token_accuracy": float((hit * weight).sum() / weight.sum().clamp(min=1.0)),
                      "chunk_mse": float(mse.detach())}, pred

    def sample(self, h, sample: bool, generator=None):
        logits = self.logits(h) / self.temperature
        if not sample:
            tokens = logits.argmax(-1)
            return self.chunk_of_tokens(tokens), torch.zeros(h.shape[0], device=h.device), {"dct_tokens": tokens}
        probs = logits.softmax(-1).flatten(0, 1)
        if generator is not None and generator.device != probs.device:
            probs = probs.to(generator.device)
        tokens = torch.multinomial(probs, 1, generator=generator).to(h.device).view(logits.shape[:-1])
        logp = logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(-1)
        return self.chunk_of_tokens(tokens), logp, {"dct_tokens": tokens}

    def log_prob(self, h, x, extras):
        return self.log_prob_terms(h, x, extras).sum(-1)

    def log_prob_terms(self, h, x, extras):
        """(B, M * A_s + k): the log-probability of each coefficient token, then of each
        gripper token; they sum to `log_prob`. Without extras["dct_tokens"] the tokens are
        re-derived from x (exact unless the executed chunk was clipped)."""
        tokens = extras.get("dct_tokens")
        tokens = self.tokens_of(x) if tokens is None else tokens.long()
        logp = (self.logits(h) / self.temperature).log_softmax(-1)
        return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
