"""Loudness: measure speech as ITU-R BS.1770 does, bring it to one target, and keep its
peaks under a ceiling with a limiter that streams.

Piper scales every sentence so that its peak hits full scale: the loudness then jumps
from sentence to sentence (a short exclamation is several dB louder than a long
sentence) and leaves encoders no headroom. Here a sentence decoded whole is measured
(integrated loudness, gated) and given the gain that brings it to the target; a sentence
decoded in chunks, whose end is not known when its first audio leaves, gets its voice's
calibrated gain (the median of its calibration sentences' gains). Either way the limiter
then keeps every sample under the ceiling.

numpy only (no scipy in the install): the K-weighting filter's two biquads are applied
as their frequency response to short spectra (see `integrated_loudness`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

ABSOLUTE_GATE = -70.0
"""LUFS under which a block is silence (BS.1770-4)."""
RELATIVE_GATE = -10.0
"""LU under the ungated loudness under which a block is left out."""
BLOCK_SECONDS = 0.4
BLOCK_STEP = 0.1
"""400 ms blocks, 75 % overlap."""
_IMPULSE_SECONDS = 0.2


@dataclass(frozen=True)
class LoudnessTarget:
    """Where speech ends up: integrated loudness and the most any sample may reach."""

    lufs: float = -18.0
    ceiling_dbfs: float = -1.5
    """Sample peak ceiling. 0.5 dB under EBU R128's -1 dBTP: the inter-sample peaks a
    decoder finds between limited samples stay under -1 dBTP (tests check it)."""

    @property
    def ceiling(self) -> float:
        return float(10.0 ** (self.ceiling_dbfs / 20.0))


def _biquad(b: Sequence[float], a: Sequence[float], x: np.ndarray) -> np.ndarray:
    """Direct form I on a short signal (the impulse response only: a Python loop)."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for n, xn in enumerate(x.tolist()):
        yn = b[0] * xn + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, xn, y1, yn
        y[n] = yn
    return y


def _shelf(rate: int) -> tuple[list[float], list[float]]:
    """BS.1770's high-shelf (the head's acoustic effect), at any sample rate."""
    gain_db, q, fc = 3.999843853973347, 0.7071752369554196, 1681.974450955533
    k = math.tan(math.pi * fc / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    b = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return b, a


def _highpass(rate: int) -> tuple[list[float], list[float]]:
    """BS.1770's RLB high-pass, at any sample rate."""
    q, fc = 0.5003270373238773, 38.13547087602444
    k = math.tan(math.pi * fc / rate)
    a0 = 1.0 + k / q + k * k
    return [1.0, -2.0, 1.0], [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]


@lru_cache(maxsize=8)
def k_weighting_impulse(rate: int) -> np.ndarray:
    """The K-weighting filter's impulse response at `rate`, long enough to be exact."""
    impulse = np.zeros(int(_IMPULSE_SECONDS * rate))
    impulse[0] = 1.0
    shelved = _biquad(*_shelf(rate), impulse)
    response = _biquad(*_highpass(rate), shelved)
    response.flags.writeable = False
    return response


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS (BS.1770-4, mono); -inf for silence. A sound shorter
    than one 400 ms block is measured as one block of its own length.

    A block's mean square after K-weighting is taken in the frequency domain (Parseval):
    the sound is cut into 100 ms segments, each segment's spectrum weighted by the
    filter's response, and a block is four segments. That is one short FFT per segment
    instead of filtering in time (what the filter carries across a segment's edge is left
    out: below 0.1 LU on speech, which the tests check against pyloudnorm)."""
    samples = np.asarray(audio, dtype=np.float64).ravel()
    if samples.size == 0:
        return -math.inf
    step = int(BLOCK_STEP * rate)
    per_block = round(BLOCK_SECONDS / BLOCK_STEP)
    if samples.size < per_block * step:
        return _gated(
            np.array([_segment_energies(samples, samples.size, rate).sum()]) / samples.size
        )
    count = samples.size // step
    energies = _segment_energies(samples[: count * step], step, rate)
    sums = np.concatenate([[0.0], np.cumsum(energies)])
    blocks = sums[per_block:] - sums[:-per_block]
    return _gated(blocks / (per_block * step))


def _segment_energies(samples: np.ndarray, length: int, rate: int) -> np.ndarray:
    """The K-weighted energy of each `length`-sample segment of `samples`."""
    segments = samples.reshape(-1, length)
    spectra = np.abs(np.fft.rfft(segments, axis=1)) ** 2
    weights = _power_response(rate, length)
    energies: np.ndarray = spectra @ weights / length
    return energies


@lru_cache(maxsize=16)
def _power_response(rate: int, length: int) -> np.ndarray:
    """|H(f)|^2 of the K-weighting filter at a `length`-point rFFT's bins, times the
    one-sided spectrum's doubling (Parseval for real signals)."""
    impulse = k_weighting_impulse(rate)
    every = -(-impulse.size // length)  # the whole impulse, sampled at the segment's bins
    response = np.abs(np.fft.rfft(impulse, every * length)[::every]) ** 2
    doubling = np.full(response.size, 2.0)
    doubling[0] = 1.0
    if length % 2 == 0:
        doubling[-1] = 1.0
    weights: np.ndarray = response * doubling
    weights.flags.writeable = False
    return weights


def _gated(powers: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10.0 * np.log10(powers)
    kept = powers[loudness > ABSOLUTE_GATE]
    if kept.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(float(kept.mean())) + RELATIVE_GATE
    with np.errstate(divide="ignore"):
        kept = kept[-0.691 + 10.0 * np.log10(kept) > relative]
    return -0.691 + 10.0 * math.log10(float(kept.mean())) if kept.size else -math.inf


def gain_to(target: LoudnessTarget, loudness: float) -> float:
    """The factor that brings `loudness` to the target (1 for silence)."""
    if not math.isfinite(loudness):
        return 1.0
    return float(10.0 ** ((target.lufs - loudness) / 20.0))


def window_max(values: np.ndarray, span: int) -> np.ndarray:
    """out[i] = max(values[i : i + span]) for every full window, in O(n log span): maxima
    over windows of 1, 2, 4, ... samples, then two overlapping ones for the rest."""
    out = values
    width = 1
    while width * 2 <= span:
        out = np.maximum(out[:-width], out[width:])
        width *= 2
    if width < span:
        out = np.maximum(out[: out.size - (span - width)], out[span - width :])
    return out


@dataclass
class Limiter:
    """A peak limiter for one sentence that streams: the gain falls over `lookahead`
    samples before a peak above the ceiling (so the peak lands on the ceiling, not
    clipped) and recovers with `release_seconds`. It holds back `lookahead` samples: each
    `process` returns as many samples as it took, minus them the first time; `flush`
    returns the rest. Whole or in pieces, the output is the same."""

    ceiling: float
    rate: int
    lookahead_seconds: float = 0.003
    release_seconds: float = 0.08
    _held: np.ndarray = field(init=False)
    _gains: np.ndarray = field(init=False)
    _envelope: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._lookahead = max(1, int(self.lookahead_seconds * self.rate))
        self._decay = math.exp(-1.0 / (self.release_seconds * self.rate))
        self._held = np.zeros(0, dtype=np.float64)
        self._gains = np.ones(self._lookahead, dtype=np.float64)

    @property
    def delay(self) -> int:
        """Samples the limiter holds back until it sees what follows them."""
        return self._lookahead

    def process(self, audio: np.ndarray) -> np.ndarray:
        samples = np.concatenate([self._held, np.asarray(audio, dtype=np.float64).ravel()])
        ready = samples.size - self._lookahead
        if ready <= 0:
            self._held = samples
            return np.zeros(0, dtype=np.float64)
        out = self._limited(samples, ready)
        self._held = samples[ready:]
        return out

    def flush(self) -> np.ndarray:
        """The held-back samples (the sentence ended: silence follows them)."""
        samples = np.concatenate([self._held, np.zeros(self._lookahead)])
        out = self._limited(samples, self._held.size)
        self._held = np.zeros(0, dtype=np.float64)
        return out

    def _limited(self, samples: np.ndarray, ready: int) -> np.ndarray:
        """The first `ready` samples limited; `samples` has `lookahead` more after them."""
        if ready == 0:
            return np.zeros(0, dtype=np.float64)
        span = self._lookahead + 1
        magnitude = np.abs(samples[: ready + self._lookahead])
        if self._idle(magnitude):  # nothing near the ceiling: unity gain, exactly
            return samples[:ready].copy()
        ahead = window_max(magnitude, span)
        envelope = self._released(ahead)
        wanted = np.minimum(1.0, self.ceiling / np.maximum(envelope, 1e-12))
        # The gain each sample gets: the mean of the last `lookahead` wanted gains, so it
        # ramps down smoothly and still reaches the peak's gain at the peak.
        history = np.concatenate([self._gains, wanted])
        sums = np.concatenate([[0.0], np.cumsum(history)])
        gains = (sums[self._lookahead + 1 :] - sums[1 : ready + 1]) / self._lookahead
        self._gains = history[-self._lookahead :]
        # The running mean's rounding may land a peak 1e-11 over: clamp that away.
        out: np.ndarray = np.clip(samples[:ready] * gains, -self.ceiling, self.ceiling)
        return out

    def _idle(self, magnitude: np.ndarray) -> bool:
        """No gain below 1 is in force or coming: the envelope (whose exact value matters
        only above the ceiling) can then be forgotten."""
        quiet = self._envelope * self._decay <= self.ceiling and bool(self._gains.min() >= 1.0)
        if not quiet or float(magnitude.max(initial=0.0)) > self.ceiling:
            return False
        self._envelope = 0.0
        return True

    def _released(self, ahead: np.ndarray) -> np.ndarray:
        """envelope[n] = max(ahead[n], envelope[n-1] * decay), vectorised in the log domain
        (a running maximum of log(ahead[k]) - k log(decay), shifted back)."""
        log_decay = math.log(self._decay)
        index = np.arange(ahead.size, dtype=np.float64)
        with np.errstate(divide="ignore"):
            logs = np.log(np.maximum(ahead, 1e-30)) - index * log_decay
        start = math.log(max(self._envelope, 1e-30)) + log_decay
        envelope = np.exp(np.maximum.accumulate(np.maximum(logs, start)) + index * log_decay)
        self._envelope = float(envelope[-1])
        return envelope


def limited(audio: np.ndarray, target: LoudnessTarget, rate: int) -> np.ndarray:
    """A whole sound through a fresh limiter (the same as in pieces: see `Limiter`)."""
    limiter = Limiter(target.ceiling, rate)
    return np.concatenate([limiter.process(audio), limiter.flush()])


def leveled(audio: np.ndarray, rate: int, target: LoudnessTarget) -> np.ndarray:
    """A whole sentence at the target loudness, its peaks limited. The limiter takes a
    little loudness off peaky speech (up to ~1 LU at -18 LUFS), so a second pass adds it
    back from the measure of the limited sound."""
    raw = np.asarray(audio, dtype=np.float64).ravel()
    gain = gain_to(target, integrated_loudness(raw, rate))
    out = limited(raw * gain, target, rate)
    reached = integrated_loudness(out, rate)
    if math.isfinite(reached) and abs(reached - target.lufs) > 0.05:
        out = limited(raw * gain * gain_to(target, reached), target, rate)
    return out
