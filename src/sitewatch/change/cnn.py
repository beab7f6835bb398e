"""A small fully convolutional change network (FC-Siam-diff), trained on labelled pairs.

The gradient-boosting classifier (:mod:`~sitewatch.change.learned`) sees each pixel through
hand-made features of a few pixels around it; this network learns its own features from
patches, as the supervised networks published on OSCD do.  The architecture is
FC-Siam-diff (Daudt, Le Saux and Boulch, "Fully convolutional siamese networks for change
detection", ICIP 2018) at a reduced width: one encoder (four stages of two 3 x 3
convolution + batch norm + ReLU layers, 2 x 2 max pooling between them) applied with shared
weights to each date; a decoder that upsamples the second date's deepest features and, at
each scale, concatenates the absolute difference of the two dates' encoder features; a
1 x 1 convolution to one logit per pixel.

* :func:`train_cnn` trains it on ``(before, after, label, valid)`` arrays on one grid
  (random patches with the 8 flips/rotations, class-weighted binary cross-entropy, optional
  soft Dice, Adam), with per-band normalisation statistics from the training pairs; the
  decision threshold maximises F1 on a band of rows of each training pair that no training
  patch touched (:data:`THRESHOLD_RULE`).
* :class:`CnnModel` keeps architecture, bands, normalisation, threshold, training
  provenance and the weights (plain arrays); :meth:`CnnModel.save` writes the change model
  file (:mod:`~sitewatch.change.modelfile`, format version 3: a JSON header and an ``.npz``
  of the weights, loaded with ``allow_pickle=False``: data, not code).
* :class:`CnnDetector` is the model as a :class:`~sitewatch.change.base.Detector` (score =
  P(change)); :meth:`CnnModel.predict_proba` runs the network over tiles of
  :attr:`CnnModel.tile` pixels with a halo of :data:`HALO` pixels (more than the receptive
  field's radius), tile corners on multiples of 8 so the pooling grid is the whole scene's:
  any scene size, bounded memory, and the same result as one pass over the whole scene.

PyTorch is an optional dependency (the ``cnn`` extra), imported only inside the functions
that build, train or run the network; reading a model file's header and checking its
arrays need only numpy.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sitewatch.change.base import Detector, Fitted, MethodError, observed_both, pick_bands, with_nan
from sitewatch.errors import MissingExtraError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ARCH",
    "HALO",
    "CnnDetector",
    "CnnModel",
    "TrainOptions",
    "expected_shapes",
    "scene_stats",
    "torch_available",
    "train_cnn",
]

#: The architecture's name in model files.
ARCH = "fc-siam-diff"
#: Channel widths of the four encoder stages.
WIDTHS = (8, 16, 32, 64)
#: Context pixels a tile needs on each side: the receptive field is 96 pixels wide (radius
#: 48) for four stages; a multiple of 8 keeps tiles on the pooling grid.
HALO = 48
#: How the decision threshold is chosen (the training summary repeats it).
THRESHOLD_RULE = ("max F1 on a band of rows of each training pair (a fifth of its rows) that "
                  "no training patch touched")

ProgressFn = Callable[[str, int, int], None]

INSTALL_HINT = ("pip install 'sitewatch[cnn]' (on Linux first the CPU build: pip install torch "
                "--index-url https://download.pytorch.org/whl/cpu)")


def torch_available() -> bool:
    """Whether PyTorch can be imported (the ``cnn`` extra is installed)."""
    from importlib.util import find_spec

    return find_spec("torch") is not None


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError(f"the change network needs PyTorch: {INSTALL_HINT}") from None
    return torch


# --------------------------------------------------------------------------- the network


def expected_shapes(in_bands: int, widths: Sequence[int] = WIDTHS) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array of the network's state (pure Python: a model file
    is checked against it before PyTorch sees it)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def block(prefix: str, cin: int, cout: int) -> None:
        for k, (a, b) in enumerate(((cin, cout), (cout, cout))):
            p = f"{prefix}.{3 * k}"
            shapes[f"{p}.weight"] = (b, a, 3, 3)
            shapes[f"{p}.bias"] = (b,)
            n = f"{prefix}.{3 * k + 1}"
            for s in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{n}.{s}"] = (b,)
            shapes[f"{n}.num_batches_tracked"] = ()

    w = list(widths)
    cin = in_bands
    for i, c in enumerate(w):
        block(f"enc.{i}", cin, c)
        cin = c
    for i in range(len(w) - 1):
        hi, lo = w[-1 - i], w[-2 - i]
        shapes[f"up.{i}.weight"] = (hi, lo, 2, 2)
        shapes[f"up.{i}.bias"] = (lo,)
        block(f"dec.{i}", 2 * lo, lo)
    shapes["head.weight"] = (1, w[0], 1, 1)
    shapes["head.bias"] = (1,)
    return shapes


def _build(in_bands: int, widths: Sequence[int] = WIDTHS) -> Any:
    """The network (a ``torch.nn.Module``): ``net(before, after)`` -> logits (N, 1, H, W)
    for inputs (N, bands, H, W) with H and W multiples of 2 ** (stages - 1)."""
    torch = _torch()
    nn = torch.nn

    def block(cin: int, cout: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    w = list(widths)

    class SiamDiff(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.ModuleList(block(a, b) for a, b in zip([in_bands, *w[:-1]], w,
                                                                 strict=True))
            self.up = nn.ModuleList(nn.ConvTranspose2d(w[-1 - i], w[-2 - i], 2, stride=2)
                                    for i in range(len(w) - 1))
            self.dec = nn.ModuleList(block(2 * w[-2 - i], w[-2 - i])
                                     for i in range(len(w) - 1))
            self.head = nn.Conv2d(w[0], 1, 1)
            self.pool = nn.MaxPool2d(2)

        def encode(self, x: Any) -> tuple[list[Any], Any]:
            skips = []
            for i, stage in enumerate(self.enc):
                if i:
                    x = self.pool(x)
                x = stage(x)
                skips.append(x)
            return skips[:-1], x

        def forward(self, before: Any, after: Any) -> Any:
            s1, _ = self.encode(before)
            s2, x = self.encode(after)
            for i, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
                x = up(x)
                j = len(s1) - 1 - i
                x = dec(torch.cat([x, torch.abs(s1[j] - s2[j])], dim=1))
            return self.head(x)

    return SiamDiff()


def _multiple() -> int:
    return 2 ** (len(WIDTHS) - 1)


# --------------------------------------------------------------------------- the model


@dataclass
class CnnModel:
    """A trained change network with what is needed to use it again.

    ``weights`` maps the network's state names to arrays (:func:`expected_shapes`);
    ``mean``/``std`` are the per-band normalisation statistics of the training pairs (one
    pair of values per band, both dates pooled); ``threshold`` is the P(change) above which
    a pixel is change; ``summary`` says how it was trained.
    """

    bands: tuple[str, ...]
    weights: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    threshold: float
    widths: tuple[int, ...] = WIDTHS
    summary: dict[str, Any] = field(default_factory=dict)
    #: Core size of the inference tiles (a multiple of 8); memory grows with its square.
    tile: int = 512
    #: Where PyTorch runs the network ("cpu", "cuda"...).
    device: str = "cpu"
    #: How inputs are standardised: "global" (``mean``/``std`` of the training pairs) or
    #: "scene" (each date of each pair by its own per-band median and spread:
    #: :func:`scene_stats`; ``mean``/``std`` are then only a record of the training data).
    input_norm: str = "global"
    _net: Any = field(default=None, repr=False, compare=False)

    kind = "cnn"

    @property
    def halo(self) -> int:
        return HALO

    def header(self) -> dict[str, Any]:
        """The JSON-able description stored in front of the weights."""
        from sitewatch import __version__
        from sitewatch.change.modelfile import CNN_FORMAT_VERSION, FORMAT

        return {"format": FORMAT, "format_version": CNN_FORMAT_VERSION,
                "model_type": "cnn", "sitewatch_version": __version__,
                "architecture": {"name": ARCH, "widths": list(self.widths),
                                 "in_bands": len(self.bands), "input": "reflectance",
                                 "output": "logit of change"},
                "bands": list(self.bands),
                "normalisation": {"mode": self.input_norm,
                                  "mean": [float(v) for v in self.mean],
                                  "std": [float(v) for v in self.std]},
                "threshold": float(self.threshold), "halo": HALO,
                "training": self.summary, "payload": "npz"}

    def save(self, path: str | Path) -> Path:
        """Write the model file (:func:`sitewatch.change.modelfile.save_cnn`)."""
        from sitewatch.change.modelfile import save_cnn

        return save_cnn(self, path)

    def network(self) -> Any:
        """The network with this model's weights, in evaluation mode (built once)."""
        if self._net is None:
            torch = _torch()
            net = _build(len(self.bands), self.widths)
            state = {k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()}
            net.load_state_dict(state, strict=True)
            self._net = net.to(self.device).eval()
        return self._net

    def _pick(self, before: np.ndarray, after: np.ndarray, bands: Sequence[str]
              ) -> tuple[np.ndarray, np.ndarray]:
        return pick_bands(before, after, bands, self.bands, "the change network")

    def scene_stats(self, before: np.ndarray, after: np.ndarray, bands: Sequence[str]
                    ) -> dict[str, np.ndarray]:
        """The per-date input statistics of a pair (or of a sample of a scene):
        :func:`scene_stats` in "scene" mode, the training statistics in "global" mode."""
        if self.input_norm != "scene":
            return {"before": np.stack([self.mean, self.std]),
                    "after": np.stack([self.mean, self.std])}
        b, a = self._pick(before, after, bands)
        return scene_stats(b, a)

    def predict_proba(self, before: np.ndarray, after: np.ndarray, bands: Sequence[str],
                      tile: int | None = None,
                      stats: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """P(change) of every pixel of a pair: float32 (rows, cols), NaN where not observed
        on both dates.  ``bands`` must include the model's bands (extra bands are ignored,
        order does not matter).  Runs over tiles of ``tile`` pixels (default
        :attr:`tile`) with a :data:`HALO` of context.  ``stats``: the scene's input
        statistics (:meth:`scene_stats`; default: of this pair)."""
        st = stats if stats is not None else self.scene_stats(before, after, bands)
        b, a = self._pick(before, after, bands)
        obs = observed_both(b, a)
        out = np.full(obs.shape, np.nan, dtype=np.float32)
        if obs.any():
            xb = _normalised(b, *st["before"])
            xa = _normalised(a, *st["after"])
            out[:] = _tiled_proba(self.network(), xb, xa, tile or self.tile, self.device)
            out[~obs] = np.nan
        return out


def _normalised(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per band, 0 (the mean) where not observed."""
    z = (x - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _tiled_proba(net: Any, xb: np.ndarray, xa: np.ndarray, tile: int, device: str
                 ) -> np.ndarray:
    """Sigmoid of the network over (bands, rows, cols) inputs, tile by tile.

    Each tile's core (``tile`` pixels, corners on multiples of 8) is computed on the core
    plus :data:`HALO` pixels each side (clipped at the scene's edge, where the network pads
    as it did in training) and the core kept; the padded input is extended to a multiple
    of 8 by reflection at the scene's bottom/right edge.
    """
    torch = _torch()
    m = _multiple()
    tile = max(m, tile // m * m)
    _, rows, cols = xb.shape
    out = np.empty((rows, cols), np.float32)
    with torch.no_grad():
        for r0 in range(0, rows, tile):
            for c0 in range(0, cols, tile):
                r1, c1 = min(rows, r0 + tile), min(cols, c0 + tile)
                pr0, pc0 = max(0, r0 - HALO), max(0, c0 - HALO)
                pr1, pc1 = min(rows, r1 + HALO), min(cols, c1 + HALO)
                h, w = pr1 - pr0, pc1 - pc0
                ph, pw = -h % m, -w % m
                x = np.stack([xb[:, pr0:pr1, pc0:pc1], xa[:, pr0:pr1, pc0:pc1]])
                if ph or pw:
                    x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)),
                               mode="reflect" if min(h, w) > max(ph, pw) else "edge")
                t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
                p = torch.sigmoid(net(t[:1], t[1:2]))[0, 0].float().cpu().numpy()
                out[r0:r1, c0:c1] = p[r0 - pr0:r1 - pr0, c0 - pc0:c1 - pc0]
    return out


def scene_stats(before: np.ndarray, after: np.ndarray, limit: int = 200_000
                ) -> dict[str, np.ndarray]:
    """Each date's per-band median and spread ((84th - 16th percentile) / 2, the standard
    deviation of a normal distribution, robust to clouds and bright roofs) over pixels
    observed on both dates (a regular subsample of at most ``limit``): (2, bands) arrays
    "before" and "after"."""
    obs = np.flatnonzero(observed_both(before, after).ravel())
    if len(obs) < 10:
        raise MethodError(f"too few pixels observed on both dates ({len(obs)}) for the "
                          "scene statistics of the change network")
    obs = obs[:: max(1, len(obs) // limit)]
    out = {}
    for key, x in (("before", before), ("after", after)):
        v = x.reshape(x.shape[0], -1)[:, obs].astype(np.float64)
        lo, med, hi = np.percentile(v, [16, 50, 84], axis=1)
        spread = (hi - lo) / 2
        out[key] = np.stack([med, np.where(spread > 1e-6, spread, 1.0)]).astype(np.float32)
    return out


# --------------------------------------------------------------------------- training

Pair = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def norm_stats(pairs: Sequence[Pair], limit: int = 200_000, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of the training pairs (both dates, observed
    pixels; up to ``limit`` random pixels of each date of each pair)."""
    rng = np.random.default_rng(seed)
    parts = []
    for before, after, _, _ in pairs:
        obs = np.flatnonzero(observed_both(before, after).ravel())
        if len(obs) > limit:
            obs = rng.choice(obs, limit, replace=False)
        for x in (before, after):
            parts.append(x.reshape(x.shape[0], -1)[:, obs])
    v = np.concatenate(parts, axis=1).astype(np.float64)
    if v.shape[1] < 2:
        raise MethodError("train: no pixel is observed on both dates")
    std = v.std(axis=1)
    return v.mean(axis=1).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def best_f1_threshold(prob: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """The threshold on ``prob`` maximising F1 of ``label`` (see the gradient-boosting
    classifier's, which this is)."""
    from sitewatch.change.learned import best_f1_threshold as best

    return best(prob, label)


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train_cnn` trains (every value is stored in the model's summary)."""

    epochs: int = 15
    patch: int = 64
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: Share of the patches centred on a random change pixel (the rest anywhere).
    change_patches: float = 0.5
    #: Weight of the soft Dice loss added to the cross-entropy (0: none).
    dice: float = 0.0
    #: Share of each pair's rows held out for the threshold.
    holdout: float = 0.2
    seed: int = 0
    device: str = "cpu"
    #: CPU threads for PyTorch (None: the cores this process may use).
    threads: int | None = None
    #: Input standardisation: "global" or "scene" (see :attr:`CnnModel.input_norm`).
    input_norm: str = "global"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _holdout_rows(rows: int, frac: float, rng: np.random.Generator) -> tuple[int, int]:
    """A band of rows (start, stop) covering ``frac`` of ``rows``, at a random place."""
    n = max(1, round(rows * frac)) if frac > 0 else 0
    if n == 0 or n >= rows:
        return 0, 0
    r0 = int(rng.integers(0, rows - n + 1))
    return r0, r0 + n


def train_cnn(pairs: Sequence[Pair], bands: Sequence[str], *,
              options: TrainOptions | None = None,
              provenance: dict[str, Any] | None = None,
              progress: ProgressFn | None = None) -> CnnModel:
    """Train the change network on labelled pairs.

    ``pairs`` are ``(before, after, label, valid)``: two (bands, rows, cols) float arrays
    on one grid (NaN = not observed) and two boolean (rows, cols) maps, ``label`` True =
    change, ``valid`` True = labelled.  A band of rows of each pair (``options.holdout``
    of them, placed at random) is kept out of training; the threshold maximising F1 on
    those rows is the model's.  Each step draws ``options.batch`` patches from the pairs
    (a pair in proportion to its training area; ``options.change_patches`` of them centred
    on a change pixel), each flipped/rotated by one of the 8 symmetries of the square; the
    loss is binary cross-entropy over labelled observed pixels, change pixels weighted by
    the square root of the no-change : change ratio of the training rows (plus
    ``options.dice`` x soft Dice); Adam with cosine learning-rate decay.  An epoch is as
    many patches as cover the training rows once.  Deterministic for a seed on one device
    and PyTorch build.  ``provenance`` (such as the pair names) is stored in the summary;
    ``progress(stage, done, total)`` reports the epochs.
    """
    torch = _torch()
    opt = options or TrainOptions()
    bands = tuple(bands)
    tick = progress or (lambda *_: None)
    if not pairs:
        raise MethodError("train: no labelled pairs given")
    if opt.patch % _multiple() or opt.patch < 2 * _multiple():
        raise MethodError(f"train: the patch size must be a multiple of {_multiple()} of at "
                          f"least {2 * _multiple()}; got {opt.patch}")
    t0 = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(opt.threads or _cores())
    try:
        return _train(torch, pairs, bands, opt, provenance or {}, tick, t0)
    finally:
        torch.set_num_threads(threads_before)


def _train(torch: Any, pairs: Sequence[Pair], bands: tuple[str, ...], opt: TrainOptions,
           provenance: dict[str, Any], tick: ProgressFn, t0: float) -> CnnModel:
    fnn = torch.nn.functional
    rng = np.random.default_rng(opt.seed)
    torch.manual_seed(opt.seed)
    if opt.device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    dev = torch.device(opt.device)
    for i, (b, a, lab, val) in enumerate(pairs):
        if b.shape != a.shape or b.ndim != 3 or b.shape[0] != len(bands) or \
                lab.shape != b.shape[1:] or val.shape != lab.shape:
            raise MethodError(f"train: pair {i}: expected two ({len(bands)}, rows, cols) "
                              f"arrays and two (rows, cols) maps; got {b.shape}, {a.shape}, "
                              f"{lab.shape}, {val.shape}")
    if opt.input_norm not in ("global", "scene"):
        raise MethodError(f"train: input_norm must be 'global' or 'scene'; got "
                          f"{opt.input_norm!r}")
    mean, std = norm_stats(pairs, seed=opt.seed)
    p = opt.patch
    data, hold, sizes, change_px = [], [], [], []
    n_pos = n_neg = 0
    for b, a, lab, val in pairs:
        valid = np.asarray(val, bool) & observed_both(b, a)
        label = np.asarray(lab, bool) & valid
        rows, cols = label.shape
        h0, h1 = _holdout_rows(rows, opt.holdout, rng)
        if h0 < p and rows - h1 < p:  # no patch would fit beside it: train on all rows
            h0 = h1 = 0
        hold.append((h0, h1))
        train_rows = np.ones(rows, bool)
        train_rows[h0:h1] = False
        tv = valid & train_rows[:, None]
        n_pos += int((label & tv).sum())
        n_neg += int((~label & tv).sum())
        if opt.input_norm == "scene":
            st = scene_stats(b, a)
            x = np.concatenate([_normalised(b, *st["before"]), _normalised(a, *st["after"])])
        else:
            x = np.concatenate([_normalised(b, mean, std), _normalised(a, mean, std)])
        y = np.stack([label, tv]).astype(np.float32)
        if rows < p or cols < p:  # pad small pairs up to one patch (padding unlabelled)
            x = np.pad(x, ((0, 0), (0, max(0, p - rows)), (0, max(0, p - cols))))
            y = np.pad(y, ((0, 0), (0, max(0, p - rows)), (0, max(0, p - cols))))
        data.append((torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)))
        # Patch corners whose patch lies in the training rows: (top, left) ranges.
        tops = [t for t in range(0, max(1, x.shape[1] - p + 1))
                if not (t < h1 and t + p > h0)] if h1 > h0 else \
            list(range(0, max(1, x.shape[1] - p + 1)))
        sizes.append(len(tops) * max(1, x.shape[2] - p + 1))
        change_px.append((np.argwhere(label & train_rows[:, None]), np.array(tops)))
    if n_pos == 0 or n_neg == 0:
        raise MethodError("train: the training rows need both change and no-change pixels")
    pos_weight = float(math.sqrt(n_neg / n_pos))
    weights = np.array(sizes, np.float64)
    weights /= weights.sum()
    train_px = n_pos + n_neg
    steps_per_epoch = max(1, math.ceil(train_px / (p * p * opt.batch)))
    total = opt.epochs * steps_per_epoch
    net = _build(len(bands), WIDTHS).to(dev)
    optim = torch.optim.Adam(net.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, max(1, total))
    nb = len(bands)
    losses: list[float] = []
    tick("training", 0, opt.epochs)
    net.train()
    for epoch in range(opt.epochs):
        run = 0.0
        for _ in range(steps_per_epoch):
            xs, ys = [], []
            which = rng.choice(len(data), size=opt.batch, p=weights)
            centred = rng.random(opt.batch) < opt.change_patches
            for k, c in zip(which, centred, strict=True):
                x, y = data[k]
                tops = change_px[k][1]
                _, hh, ww = x.shape
                pos = change_px[k][0]
                if c and len(pos):
                    r, cc = pos[rng.integers(len(pos))]
                    top = int(np.clip(r - rng.integers(p), 0, hh - p))
                    # keep the patch out of the held-out rows: the nearest allowed top
                    top = int(tops[np.argmin(np.abs(tops - top))])
                    left = int(np.clip(cc - rng.integers(p), 0, ww - p))
                else:
                    top = int(tops[rng.integers(len(tops))])
                    left = int(rng.integers(0, ww - p + 1))
                xp = x[:, top:top + p, left:left + p]
                yp = y[:, top:top + p, left:left + p]
                s = int(rng.integers(8))
                if s & 4:
                    xp, yp = xp.flip(2), yp.flip(2)
                if s & 3:
                    xp, yp = torch.rot90(xp, s & 3, (1, 2)), torch.rot90(yp, s & 3, (1, 2))
                xs.append(xp)
                ys.append(yp)
            xb = torch.stack(xs)
            yb = torch.stack(ys)
            logit = net(xb[:, :nb], xb[:, nb:])[:, 0]
            lab, msk = yb[:, 0], yb[:, 1]
            w = msk * (1.0 + (pos_weight - 1.0) * lab)
            denom = msk.sum().clamp(min=1.0)
            loss = fnn.binary_cross_entropy_with_logits(logit, lab, weight=w,
                                                         reduction="sum") / denom
            if opt.dice > 0:
                prob = torch.sigmoid(logit) * msk
                inter = (prob * lab).sum()
                loss = loss + opt.dice * (1 - (2 * inter + 1) / (prob.sum() + lab.sum() + 1))
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            run += float(loss.detach())
        losses.append(run / steps_per_epoch)
        tick("training", epoch + 1, opt.epochs)
    net.eval()
    weights_np = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    model = CnnModel(bands, weights_np, mean, std, 0.5, WIDTHS, device=opt.device,
                     input_norm=opt.input_norm, _net=net)
    # The threshold: the held-out rows of every pair, at their natural change rate.
    probs, labs = [], []
    tick("threshold", 0, len(pairs))
    for i, ((b, a, lab, val), (h0, h1)) in enumerate(zip(pairs, hold, strict=True)):
        if h1 > h0:
            pr = model.predict_proba(b, a, bands)[h0:h1]
            v = np.asarray(val, bool)[h0:h1] & np.isfinite(pr)
            probs.append(pr[v])
            labs.append(np.asarray(lab, bool)[h0:h1][v])
        tick("threshold", i + 1, len(pairs))
    if probs and np.concatenate(labs).any():
        t, f1 = best_f1_threshold(np.concatenate(probs), np.concatenate(labs))
        rule = THRESHOLD_RULE
    else:
        t, f1, rule = 0.5, float("nan"), "0.5 (no change pixel in the held-out rows)"
    model.threshold = t
    model.summary = {
        **provenance, "pairs": len(pairs), "architecture": ARCH,
        "widths": list(WIDTHS), "seed": opt.seed, "epochs": opt.epochs,
        "steps": total, "patch": p, "batch": opt.batch, "lr": opt.lr,
        "weight_decay": opt.weight_decay, "optimiser": "Adam, cosine decay",
        "loss": "class-weighted BCE" + (f" + {opt.dice:g} x soft Dice" if opt.dice else ""),
        "pos_weight": round(pos_weight, 4), "change_patches": opt.change_patches,
        "augmentations": "random patches; flips and 90-degree rotations (8 symmetries)",
        "training_pixels": train_px, "change_pixels": n_pos,
        "holdout": opt.holdout, "threshold_rule": rule, "input_norm": opt.input_norm,
        "threshold_f1": None if math.isnan(f1) else round(f1, 4),
        "final_loss": round(losses[-1], 5) if losses else None,
        "loss_by_epoch": [round(v, 5) for v in losses],
        "device": str(dev), "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 1)}
    return model


# --------------------------------------------------------------------------- detector


class CnnDetector(Detector):
    """A trained :class:`CnnModel` as a detector: score = P(change).

    Not registered by name (it needs a model file): build it with
    ``CnnDetector(model=model)`` or :func:`sitewatch.change.learned.detector_from_file`.
    """

    name = "cnn"
    sensor = "optical"
    summary = ("Fully convolutional siamese change network (FC-Siam-diff) trained on "
               "labelled pairs; score = P(change).")
    reference = "Daudt, Le Saux and Boulch, ICIP 2018 (FC-Siam-diff)"
    # Trained on raw reflectance of both dates, as the gradient-boosting classifier.
    normalise = False
    halo = HALO

    @classmethod
    def params(cls) -> dict[str, Any]:
        return {"model": None}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        model = self.options["model"]
        if not isinstance(model, CnnModel):
            raise MethodError("the change network needs a trained model: "
                              "CnnDetector(model=load_model(path))")
        self.model = model
        self.default_threshold = f"{model.threshold:.6g}"  # type: ignore[misc]
        self.needs = tuple(model.bands)  # type: ignore[misc]

    def fit(self, before: np.ndarray, after: np.ndarray, bands: tuple[str, ...]) -> Fitted:
        self.check_bands(tuple(bands))
        return {"scene_stats": self.model.scene_stats(before, after, bands)}

    def score(self, before: np.ndarray, after: np.ndarray, bands: tuple[str, ...],
              fitted: Fitted) -> np.ndarray:
        self.check_bands(tuple(bands))
        p = self.model.predict_proba(before, after, bands, stats=fitted.get("scene_stats"))
        return with_nan(p, observed_both(np.asarray(before), np.asarray(after))
                        & np.isfinite(p))
