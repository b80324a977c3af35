"""Hand-crafted features of one 2-second speech chunk for the boosting detector.

Groups (each feature name starts with its group, so LightGBM's per-feature contributions can be summed
into an explanation a person can read):

- ``bispec``: bispectrum / bicoherence statistics (magnitude and phase moments over frequency regions).
  Natural speech production is a nonlinear process with characteristic quadratic phase coupling; vocoders
  and concatenation change it. This is the first seed's idea.
- ``lfcc``, ``cqcc``, ``mfcc``: cepstra from linear, log-spaced (constant-Q-like) and mel filterbanks, with
  deltas. LFCC/CQCC keep the high-frequency detail where synthesis artefacts live.
- ``spectral``: flatness, flux, centroid, roll-off, bandwidth; ``subband``: relative band energies.
- ``modulation``: modulation spectrum of band envelopes (synthetic prosody is too regular or too smooth).
- ``phase``: group delay and instantaneous-frequency deviation statistics.
- ``periodicity``: autocorrelation-based voicing strength and its variability (vocoder excitation).
- ``lpc``: LPC residual statistics (excitation shape).

No feature describes the long-term spectral envelope of the chunk (since schema 2): cepstral medians, median
sub-band energies, median centroid / roll-off / bandwidth and the first LPC coefficients were dropped. They
identify the speaker and the recording chain (microphone, studio, codec) more than the synthesis, so a model
could learn "these voices are real". On the crossed leave-one-family-out × leave-speakers-out protocol over
train+dev of corpus v8 (docs/generalisation.md, "Envelope-free features"), dropping them lowered the mean
held-out family EER from 27.4 to 25.8 % and the worst from 49.0 to 44.5 %. Their spreads and deltas stay.

Canonical polarity (schema 3). A telephone line may deliver the voice inverted (x -> -x): a PBX, a codec or
a microphone's wiring can flip it, and nothing about the speech changes. Every feature but the bispectral
phase moments and the LPC residual's skewness is blind to the sign; those 17 are not, and the schema-2 model
gave one speaker's chunks a mean score of 0.58 as recorded and 0.63 inverted, another's 0.54 and 0.21
(docs/generalisation.md, "The shipped GBM reads the waveform's polarity"). So every feature is taken of the
chunk turned upright (``detector.polarity.upright``: the LPC residual skewed positive) and is exactly the same
for x and -x.

Everything is computed after normalising the chunk to unit RMS, and every feature is a ratio, a
log-ratio, a cepstral shape coefficient (c0 excluded) or a statistic robust to one lost 20 ms frame
(medians and trimmed spreads where a mean would be dragged), so the level of the line carries no signal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dct, irfft, rfft

from detector.polarity import upright_with_residual

FEATURE_SCHEMA_VERSION = 3
EPS = 1e-10


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    n = 1 + max(0, (len(x) - size) // hop)
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


@lru_cache(maxsize=8)
def _window(size: int) -> np.ndarray:
    return np.hanning(size + 2)[1:-1].astype(np.float64)


@lru_cache(maxsize=16)
def _triangular_bank(n_bins: int, edges_key: tuple[float, ...], rate: int) -> np.ndarray:
    edges = np.asarray(edges_key)
    freqs = np.linspace(0, rate / 2, n_bins)
    bank = np.zeros((len(edges) - 2, n_bins))
    for i in range(len(edges) - 2):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / max(mid - lo, EPS)
        down = (hi - freqs) / max(hi - mid, EPS)
        bank[i] = np.clip(np.minimum(up, down), 0, None)
    bank /= bank.sum(axis=1, keepdims=True) + EPS
    return bank


def _linear_edges(n: int, rate: int) -> tuple[float, ...]:
    return tuple(np.linspace(0, rate / 2, n + 2).round(3))


def _mel_edges(n: int, rate: int) -> tuple[float, ...]:
    mel = np.linspace(0, 2595 * np.log10(1 + (rate / 2) / 700), n + 2)
    return tuple((700 * (10 ** (mel / 2595) - 1)).round(3))


def _log_edges(n: int, rate: int, fmin: float = 60.0) -> tuple[float, ...]:
    return tuple(np.geomspace(fmin, rate / 2, n + 2).round(3))


@lru_cache(maxsize=4)
def _phase_rotation(nbins: int, hop: int, size: int) -> np.ndarray:
    """exp(-i * the phase a stationary sinusoid at each bin advances in one hop)."""
    return np.exp(-1j * 2 * np.pi * hop * np.arange(nbins) / size)


def _quantiles(v: np.ndarray, qs: tuple[float, ...], axis: int = 0) -> list[np.ndarray]:
    """Nearest-rank quantiles from one sort (np.percentile costs ~0.1 ms a call; this is one sort)."""
    srt = np.sort(v, axis=axis)
    n = srt.shape[axis]
    return [np.take(srt, min(n - 1, int(round(q * (n - 1)))), axis=axis) for q in qs]


def _moments(v: np.ndarray, axis: int | None = None) -> list:
    """Mean, standard deviation, skewness and excess kurtosis (floats, or arrays along ``axis``)."""
    m = v.mean(axis=axis)
    d = v - (m if axis is None else np.expand_dims(m, axis))
    d2 = d * d  # explicit products: ``d ** 3`` goes through pow() and is ten times slower
    var = d2.mean(axis=axis)
    sd = np.sqrt(var) + EPS
    skew = (d2 * d).mean(axis=axis) / (sd * sd * sd)
    kurt = (d2 * d2).mean(axis=axis) / (var * var + EPS) - 3.0
    if axis is None:
        return [float(m), float(np.sqrt(var)), float(skew), float(kurt)]
    return [m, np.sqrt(var), skew, kurt]


# (prefix, filterbank edges, cepstra kept): linear (LFCC), log-spaced (CQCC-like) and mel (MFCC), 24 filters each
CEPSTRA = (("lfcc", _linear_edges, 16), ("cqcc", _log_edges, 16), ("mfcc", _mel_edges, 12))


@lru_cache(maxsize=4)
def _stacked_banks(n_bins: int, rate: int) -> np.ndarray:
    """The three 24-filter banks side by side ``[n_bins, 72]``: one matrix product for all three cepstra."""
    return np.concatenate([_triangular_bank(n_bins, edges(24, rate), rate) for _, edges, _ in CEPSTRA]).T.copy()


def _cepstral(power: np.ndarray, rate: int) -> dict[str, float]:
    """Spread and delta spread of each cepstral coefficient (c0 excluded) of the three filterbanks (no median:
    that is the envelope, see the module docstring)."""
    energies = np.log(power @ _stacked_banks(power.shape[1], rate) + EPS).reshape(len(power), len(CEPSTRA), 24)
    n_max = max(n for _, _, n in CEPSTRA)
    ceps = dct(energies, type=2, norm="ortho", axis=2)[:, :, 1: n_max + 1].reshape(len(power), -1)
    delta = np.gradient(ceps, axis=0)
    hi, lo = _quantiles(ceps, (0.84, 0.16))
    spread = (hi - lo) / 2
    dhi, dlo = _quantiles(delta, (0.84, 0.16))
    dspread = (dhi - dlo) / 2
    out: dict[str, float] = {}
    for b, (prefix, _, n_ceps) in enumerate(CEPSTRA):
        for i in range(n_ceps):
            c = b * n_max + i
            out[f"{prefix}_c{i + 1}_sd"] = float(spread[c])
            out[f"{prefix}_d{i + 1}_sd"] = float(dspread[c])
    return out


@lru_cache(maxsize=4)
def _bispectral_plan(nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Index pairs (f1 <= f2, f1 + f2 below Nyquist), their sum bin, frequency regions and the diagonal."""
    i, j = np.triu_indices(nb)
    keep = i + j + 1 < nb  # f1 + f2 must stay below Nyquist (indices are offset by the dropped DC)
    i, j = i[keep], j[keep]
    k = i + j + 1
    f_hi = k / nb  # normalised frequency of the sum component
    regions = {"low": f_hi < 0.35, "mid": (f_hi >= 0.35) & (f_hi < 0.7), "high": f_hi >= 0.7,
               "all": np.ones_like(f_hi, dtype=bool)}
    return i, j, k, regions, i == j


def _bispectrum(spec: np.ndarray) -> np.ndarray:
    """Mean over frames of X(f1) X(f2) X*(f1 + f2), in ``_bispectral_plan`` pair order (f1 major).

    For a fixed f1 the f2 and f1 + f2 bins are contiguous, so each row is one slice product and one
    matrix-vector product; gathering the ~1000 pairs with fancy indexing cost ten times more."""
    rows = np.ascontiguousarray(spec.T)  # [bins, frames]
    conj = np.conj(rows)
    nb, parts = rows.shape[0], []
    for f1 in range(nb):
        last = nb - f1 - 1  # f2 < last keeps f1 + f2 below Nyquist
        if last <= f1:
            break
        parts.append((rows[f1:last] * conj[2 * f1 + 1: f1 + last + 1]) @ rows[f1])
    return np.concatenate(parts) / rows.shape[1]


def _bispectral(x: np.ndarray, size: int = 128, hop: int = 96) -> dict[str, float]:
    frames = _frames(x, size, hop) * _window(size)
    spec = rfft(frames, axis=1)[:, 1: size // 2].astype(np.complex64)  # drop DC
    nb = spec.shape[1]
    i, j, k, regions, diag = _bispectral_plan(nb)
    bis = _bispectrum(spec)
    power = spec.real ** 2 + spec.imag ** 2
    pair_power = (power.T @ power) / len(spec)  # mean over frames of |X(f1)|^2 |X(f2)|^2 for every pair at once
    denom = pair_power[i, j].astype(np.float64) * power.mean(axis=0)[k]
    abs_bis = np.abs(bis)
    bicoh = abs_bis ** 2 / (denom + EPS)
    mag = np.log(abs_bis + EPS) - np.log(np.mean(abs_bis) + EPS)
    phase = np.arctan2(bis.imag, bis.real)
    unit = np.exp(1j * phase)
    out: dict[str, float] = {}
    for name, sel in regions.items():
        stats = _moments(np.stack([bicoh[sel], mag[sel], phase[sel]]), axis=1)
        for q, quantity in enumerate(("bicoh", "logmag")):
            for stat, val in zip(("mean", "sd", "skew", "kurt"), stats, strict=True):
                out[f"bispec_{quantity}_{name}_{stat}"] = float(val[q])
        out[f"bispec_phase_{name}_resultant"] = float(np.abs(np.mean(unit[sel])))
        for stat, val in zip(("mean", "sd", "skew", "kurt"), stats, strict=True):
            out[f"bispec_phase_{name}_{stat}"] = float(val[2])
    # diagonal slice (f1 == f2) captures harmonic coupling of voiced speech
    out["bispec_diag_bicoh_mean"] = float(bicoh[diag].mean())
    out["bispec_diag_over_all"] = float(np.log((bicoh[diag].mean() + EPS) / (bicoh.mean() + EPS)))
    return out


def _periodicity(frames: np.ndarray, rate: int) -> dict[str, float]:
    spec = rfft(frames, n=2 * frames.shape[1], axis=1)
    ac = irfft(spec.real ** 2 + spec.imag ** 2, axis=1)[:, : frames.shape[1]]
    ac = ac / (ac[:, :1] + EPS)
    lo, hi = int(rate / 400), int(rate / 60)
    peak = ac[:, lo:hi].max(axis=1)
    lag = ac[:, lo:hi].argmax(axis=1) + lo
    voiced = peak > 0.5
    p50, p90 = _quantiles(peak, (0.5, 0.9))
    out = {"periodicity_peak_med": float(p50), "periodicity_peak_p90": float(p90),
           "periodicity_voiced_frac": float(voiced.mean())}
    if voiced.sum() >= 3:
        f0 = rate / lag[voiced]
        jump = np.abs(np.diff(np.log(f0)))
        out["periodicity_f0_logsd"] = float(np.std(np.log(f0)))
        out["periodicity_f0_jitter_med"] = float(np.median(jump))
        out["periodicity_peak_voiced_sd"] = float(np.std(peak[voiced]))
    else:
        out["periodicity_f0_logsd"] = out["periodicity_f0_jitter_med"] = out["periodicity_peak_voiced_sd"] = 0.0
    return out


def _lpc_residual(x: np.ndarray, res: np.ndarray) -> dict[str, float]:
    """Statistics of ``res``, the LPC residual of ``x`` (``detector.polarity.upright_with_residual``)."""
    frames = _frames(res, 160, 80)
    e = np.log((frames ** 2).mean(axis=1) + EPS)
    m = _moments(res)
    return {"lpc_gain_log": float(np.log((x ** 2).mean() + EPS) - np.log((res ** 2).mean() + EPS)),
            "lpc_res_skew": m[2], "lpc_res_kurt": float(np.log1p(max(m[3] + 3.0, 0.0))),
            "lpc_res_energy_sd": float(np.std(e))}


def extract_features(chunk: np.ndarray, rate: int = 8000) -> dict[str, float]:
    """Named features of one chunk (float32 in [-1, 1] at 8 or 16 kHz)."""
    if rate != 8000:
        from detector.audio import resample

        chunk = resample(chunk, rate, 8000)
        rate = 8000
    x = np.asarray(chunk, dtype=np.float64)
    x = x - x.mean()
    x, residual = upright_with_residual(x / (np.sqrt((x ** 2).mean()) + EPS))

    size, hop = 256, 80
    frames = _frames(x, size, hop)
    spec = rfft(frames * _window(size), axis=1)
    power = spec.real ** 2 + spec.imag ** 2 + EPS
    nbins = power.shape[1]
    feats: dict[str, float] = {}

    feats.update(_cepstral(power, rate))

    # spectral shape
    freqs = np.linspace(0, rate / 2, nbins)
    total = power.sum(axis=1)
    energy_db = 10 * np.log10(total)
    active = energy_db > _quantiles(energy_db, (0.3,))[0]  # skip the quietest frames (gaps, lost frames)
    p = power[active] if active.sum() >= 5 else power
    pn = p / p.sum(axis=1, keepdims=True)
    flatness = np.exp(np.log(p).mean(axis=1)) / p.mean(axis=1)
    centroid = pn @ freqs
    bandwidth = np.sqrt(pn @ freqs ** 2 - centroid ** 2)
    rolloff = freqs[np.minimum((np.cumsum(pn, axis=1) < 0.9).sum(axis=1), nbins - 1)]
    logp = np.log(p)
    flux = np.sqrt((np.diff(logp, axis=0) ** 2).mean(axis=1))
    for name, v in (("flatness", np.log(flatness)), ("centroid", centroid / rate), ("bandwidth", bandwidth / rate),
                    ("rolloff", rolloff / rate), ("flux", flux)):
        q75, q50, q25 = _quantiles(v, (0.75, 0.5, 0.25))
        if name in ("flatness", "flux"):  # the medians of the others are envelope (module docstring)
            feats[f"spectral_{name}_med"] = float(q50)
        feats[f"spectral_{name}_iqr"] = float(q75 - q25)
    # high-frequency detail: spectral fine structure (ripple) above 2 kHz
    hf = logp[:, freqs > 2000]
    feats["spectral_hf_ripple"] = float(np.median(np.abs(np.diff(hf, 2, axis=1)).mean(axis=1)))
    lf = logp[:, (freqs > 100) & (freqs <= 2000)]
    feats["spectral_lf_ripple"] = float(np.median(np.abs(np.diff(lf, 2, axis=1)).mean(axis=1)))

    # sub-band relative energies and their dynamics
    band_edges = [0, 300, 600, 1000, 1500, 2000, 2500, 3000, 3400, 4001]
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
                      for lo, hi in zip(band_edges[:-1], band_edges[1:], strict=True)], axis=1)
    rel = np.log(bands / total[:, None] + EPS)
    q75, q25 = _quantiles(rel, (0.75, 0.25))
    for b in range(rel.shape[1]):
        feats[f"subband_b{b}_iqr"] = float(q75[b] - q25[b])

    # modulation spectrum of band envelopes (frame rate 100 Hz)
    env = np.log(bands + EPS)
    env = env - env.mean(axis=0)
    mod = np.abs(rfft(env * np.hanning(env.shape[0])[:, None], axis=0)) ** 2
    mfreq = np.fft.rfftfreq(env.shape[0], d=hop / rate)
    mod_total = mod.sum(axis=0) + EPS
    for lo, hi in ((0.5, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 50)):
        sel = (mfreq >= lo) & (mfreq < hi)
        share = mod[sel].sum(axis=0) / mod_total
        feats[f"modulation_{lo:g}_{hi:g}hz_mean"] = float(share.mean())
        feats[f"modulation_{lo:g}_{hi:g}hz_lowhigh"] = float(share[:4].mean() - share[4:].mean())

    # phase: group delay via the time-weighted spectrum, and instantaneous-frequency deviation
    n = np.arange(size)
    spec_n = rfft(frames * _window(size) * n, axis=1)
    gd = (spec.real * spec_n.real + spec.imag * spec_n.imag) / power
    gd = gd[active] if active.sum() >= 5 else gd
    gd_c = np.clip(gd - size / 2, -size, size) / size
    for region, sel in (("low", freqs < 1000), ("mid", (freqs >= 1000) & (freqs < 2500)), ("high", freqs >= 2500)):
        v = gd_c[:, sel]
        feats[f"phase_gd_{region}_sd"] = float(np.median(v.std(axis=1)))
        feats[f"phase_gd_{region}_absmean"] = float(np.median(np.abs(v).mean(axis=1)))
    # wrapped (phase advance - expected advance), from one complex product: no per-bin angle() and exp()
    turn = spec[1:] * np.conj(spec[:-1]) * _phase_rotation(nbins, hop, size)
    dev = np.arctan2(turn.imag, turn.real)
    w = power[1:] / power[1:].sum(axis=1, keepdims=True)
    feats["phase_ifdev_weighted"] = float(np.median((np.abs(dev) * w).sum(axis=1)))
    feats["phase_ifdev_hf"] = float(np.median(np.abs(dev[:, freqs > 2500]).mean(axis=1)))

    feats.update(_periodicity(_frames(x, 320, 160), rate))
    feats.update(_lpc_residual(x, residual))
    feats.update(_bispectral(x))
    return feats


@lru_cache(maxsize=1)
def feature_names() -> tuple[str, ...]:
    rng = np.random.default_rng(0)
    return tuple(extract_features(rng.standard_normal(16000).astype(np.float32) * 0.1).keys())


def feature_group(name: str) -> str:
    return name.split("_", 1)[0]


def extract_matrix(chunks: list[np.ndarray] | np.ndarray, rate: int = 8000) -> np.ndarray:
    """Feature matrix [n_chunks, n_features] in ``feature_names()`` order; non-finite values become 0."""
    names = feature_names()
    out = np.zeros((len(chunks), len(names)), dtype=np.float32)
    for r, chunk in enumerate(chunks):
        f = extract_features(chunk, rate)
        out[r] = [f[n] for n in names]
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out
