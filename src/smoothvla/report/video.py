"""Rollout videos: annotated frames, MP4 (H.264) and animated WebP files, and their decoding.

An episode's video has one frame per recorded state (the reset state, then one per executed
action), played at the control rate, so frame i shows state i and second s shows step
s / control_dt. Each frame is scaled up to at least `MIN_WIDTH` pixels (nearest neighbour:
the pixels the policy saw, only bigger) and gets a text band under it with the step, the
outcome so far and the instruction the policy was given.

- MP4: H.264 through PyAV (libx264), yuv420p, even width and height (what browsers and
  players accept), `+faststart` so a browser can start playing before the end arrives.
- WebP: animated, lossy, for places that show images but not videos (markdown pages); at
  most `WEBP_MAX_FPS` frames per second (every other frame at 20 Hz), same speed. Made from
  the MP4 where a video is embedded (`webp_from_mp4`, the report's media/), not for every
  recorded episode: it would double the cost of recording.

Where the files of an evaluation go, and the JSON sidecar that says which episode a video
shows, are `video_stem` and `write_episode_video` (MP4 + sidecar). PyAV and imageio are imported only when a
video is written or read, so evaluation without videos does not load them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from smoothvla.io import atomic_path, atomic_write, atomic_write_json

MIN_WIDTH = 256
"""Frames narrower than this are scaled up by an integer factor (nearest neighbour)."""
BAND_LINES = 2
"""Text lines under each frame: step and outcome; instruction."""
_LINE_PX = 14
_FONT_PX = 11


@dataclass(frozen=True)
class VideoInfo:
    """What a decoded video holds: frame count, frame size in pixels, frames per second."""

    frames: int
    height: int
    width: int
    fps: float


@dataclass
class EpisodeVideo:
    """The sidecar of one episode's video (`<stem>.json`): which episode it shows.

    `mp4` is the video's file name, relative to the sidecar's folder."""

    policy: str
    train_seed: int
    task_id: str
    init_id: int
    seed: int
    perturbation: str
    strength: float
    success: bool
    steps: int
    fps: float
    camera: str
    instruction: str
    mp4: str

    @property
    def key(self) -> tuple:
        """(policy, train_seed, task_id, init_id, seed, perturbation, strength): the episode."""
        return (self.policy, self.train_seed, self.task_id, self.init_id, self.seed,
                self.perturbation, self.strength)


# -- frames ------------------------------------------------------------------------------------

def _font(size: int = _FONT_PX):
    from PIL import ImageFont  # Pillow comes with matplotlib

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _fit(text: str, font, width: int) -> str:
    """`text`, cut with an ellipsis so that it is at most `width` pixels wide."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def annotate(frames: np.ndarray, success: Sequence[bool], instruction: str,
             *, min_width: int = MIN_WIDTH) -> np.ndarray:
    """Frames with a text band under each: "step t/T" and "success" from the first state
    where the task succeeded, then the instruction.

    Args:
        frames: (N, H, W, 3) uint8, frame i showing state i (N = T + 1 for T steps).
        success: (N,) whether the task's success predicate held at state i.
        instruction: the instruction the policy was given (cut to the frame's width).
    Returns:
        (N, H', W', 3) uint8 with H' = s * H + band and W' = s * W rounded up to even sizes,
        s = ceil(min_width / W).
    """
    from PIL import Image, ImageDraw

    frames = _check_frames(frames)
    success = np.asarray(success, dtype=bool)
    if success.shape != (len(frames),):
        raise ValueError(f"success must have shape ({len(frames)},), got {success.shape}")
    n, h, w, _ = frames.shape
    scale = max(1, math.ceil(min_width / w))
    big_h, big_w = h * scale, w * scale
    band = BAND_LINES * _LINE_PX + 6
    out_h, out_w = big_h + band + (big_h + band) % 2, big_w + big_w % 2
    out = np.zeros((n, out_h, out_w, 3), dtype=np.uint8)
    out[:, :big_h, :big_w] = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    font = _font()
    base = Image.new("RGB", (out_w, out_h - big_h), (24, 24, 24))
    ImageDraw.Draw(base).text((4, 3 + _LINE_PX), _fit(instruction, font, out_w - 8),
                              fill=(200, 200, 200), font=font)
    done = np.maximum.accumulate(success)  # success, once reached, is what the episode shows
    for i in range(n):
        strip = base.copy()
        draw = ImageDraw.Draw(strip)
        draw.text((4, 3), f"step {i}/{n - 1}", fill=(235, 235, 235), font=font)
        if done[i]:
            draw.text((out_w - 4 - font.getlength("success"), 3), "success",
                      fill=(110, 220, 110), font=font)
        out[i, big_h:] = np.asarray(strip)
    return out


def _check_frames(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be uint8 (N, H, W, 3) with N >= 1, got {frames.dtype} "
                         f"{frames.shape}")
    return frames


# -- files -------------------------------------------------------------------------------------

def _rate(fps: float) -> Fraction:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, *, crf: int = 23) -> Path:
    """H.264 MP4 of `frames` (N, H, W, 3) uint8 at `fps`, yuv420p; odd sizes are padded by
    one black row/column (H.264 in yuv420p needs even sizes). Written atomically."""
    import av

    frames = _check_frames(frames)
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        h, w = h + h % 2, w + w % 2

    # by name, not through a file object: +faststart re-reads the file to move its index
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4",
                                           options={"movflags": "+faststart"}) as box:
        stream = box.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # one thread: evaluation runs beside env workers on few cores
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for frame in frames:
            box.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        box.mux(stream.encode())
    return Path(path)


WEBP_MAX_FPS = 10.0
"""The WebP keeps every k-th frame, k = ceil(fps / WEBP_MAX_FPS), shown k times as long: the
same real-time speed at half the size and encoding time of 20 Hz (WebP costs twice what
H.264 does per frame)."""


def webp_stride(fps: float) -> int:
    """k of `WEBP_MAX_FPS`: 2 at 20 Hz, 1 at 10 Hz or less."""
    return max(1, math.ceil(float(_rate(fps)) / WEBP_MAX_FPS - 1e-9))


def write_webp(path: str | Path, frames: np.ndarray, fps: float, *, quality: int = 50) -> Path:
    """Animated lossy WebP of `frames` (N, H, W, 3) uint8 played at `fps`, looping: frames
    0, k, 2k, ... each shown k / fps seconds (k = `webp_stride(fps)`). Written atomically."""
    import imageio.v3 as iio

    frames = _check_frames(frames)
    k = webp_stride(fps)
    data = iio.imwrite("<bytes>", frames[::k], extension=".webp",
                       duration=1000.0 * k / float(_rate(fps)), loop=0, quality=quality, method=0)
    return atomic_write(path, lambda f: f.write(data))


def webp_from_mp4(mp4: str | Path, path: str | Path) -> Path:
    """The animated WebP of an MP4 written by `write_mp4` (its decoded frames, at its rate)."""
    import av

    with av.open(str(mp4)) as box:
        fps = float(box.streams.video[0].average_rate)
    return write_webp(path, read_video(mp4), fps)


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video file (MP4 or animated WebP) as (N, H, W, 3) uint8."""
    path = Path(path)
    if path.suffix.lower() == ".webp":
        from PIL import Image, ImageSequence  # imageio's reader returns one WebP frame only

        with Image.open(path) as image:
            return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)])
    import av

    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])


def video_info(path: str | Path) -> VideoInfo:
    """Frame count, size and frame rate of an MP4, by decoding every frame."""
    import av

    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        count = sum(1 for _ in box.decode(stream))
        return VideoInfo(count, stream.height, stream.width, float(stream.average_rate or 0))


# -- an episode's files ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=,-]")


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def video_stem(folder: str | Path, policy: str, train_seed: int, task_id: str,
               perturbation: str, strength: float, init_id: int, seed: int) -> Path:
    """`folder/POLICY@TRAIN_SEED/SUITE/TASK/PERTURBATION/init{I}_seed{S}` (no suffix);
    characters outside [A-Za-z0-9._@+=,-] in names become '_'. A perturbation other than
    'none' carries its strength (light@0.5)."""
    suite, _, name = task_id.partition("/")
    pert = perturbation if perturbation == "none" else f"{perturbation}@{strength:g}"
    return (Path(folder) / _slug(f"{policy}@{train_seed}") / _slug(suite) / _slug(name or suite)
            / _slug(pert) / f"init{init_id}_seed{seed}")


def write_episode_video(stem: str | Path, frames: np.ndarray, success: Sequence[bool],
                        meta: dict[str, Any]) -> EpisodeVideo:
    """Write `stem`.mp4 (annotated frames) and the sidecar `stem`.json.

    Args:
        frames: (N, H, W, 3) uint8 camera frames, frame i at state i.
        success: (N,) success predicate at each state.
        meta: the `EpisodeVideo` fields other than steps and mp4 (policy, train_seed,
            task_id, init_id, seed, perturbation, strength, success, fps, camera,
            instruction).
    """
    stem = Path(stem)
    frames = annotate(frames, success, meta["instruction"])
    write_mp4(stem.with_suffix(".mp4"), frames, meta["fps"])
    video = EpisodeVideo(**meta, steps=len(frames) - 1, mp4=stem.name + ".mp4")
    atomic_write_json(stem.with_suffix(".json"), asdict(video))
    return video


def find_videos(folder: str | Path) -> list[tuple[EpisodeVideo, Path]]:
    """Every episode video under `folder` (its sidecars), with the sidecar's folder; sidecars
    whose MP4 is missing are left out."""
    out = []
    for sidecar in sorted(Path(folder).rglob("*.json")) if Path(folder).is_dir() else []:
        try:
            video = EpisodeVideo(**json.loads(sidecar.read_text()))
        except (ValueError, TypeError):
            continue  # not one of ours
        if (sidecar.parent / video.mp4).is_file():
            out.append((video, sidecar.parent))
    return out


def results_video_dir(results_path: str | Path) -> Path:
    """The folder beside a results file where its evaluation writes videos:
    `results.jsonl` -> `results_videos/`."""
    path = Path(results_path)
    return path.with_name(path.stem + "_videos")
