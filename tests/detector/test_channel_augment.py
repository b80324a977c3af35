import numpy as np
from scipy.signal import welch

from detector.channel_augment import random_channel


def _speechlike(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 8000
    x = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 30)) + 0.05 * rng.standard_normal(16000)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def test_a_random_channel_keeps_the_level_and_is_reproducible_from_its_seed():
    x = _speechlike()
    y = random_channel(x, np.random.default_rng(7))
    assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
    assert abs(np.sqrt(np.mean(y ** 2)) / np.sqrt(np.mean(x ** 2)) - 1) < 0.01
    np.testing.assert_array_equal(random_channel(x, np.random.default_rng(7)), y)


def test_random_channels_reshape_the_spectrum_differently_each_time():
    x = _speechlike()
    _, px = welch(x, fs=8000, nperseg=256)
    shapes = []
    for seed in range(5):
        _, py = welch(random_channel(x, np.random.default_rng(seed)), fs=8000, nperseg=256)
        band = slice(8, 110)  # 250-3400 Hz
        shapes.append(10 * np.log10(py[band] / px[band]))
    for s in shapes:
        assert np.ptp(s) > 3.0  # a real equaliser, at least 3 dB between its extremes
    assert min(np.abs(a - b).max() for i, a in enumerate(shapes) for b in shapes[i + 1:]) > 1.0
