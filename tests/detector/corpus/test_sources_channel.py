"""Bona fide inventory rules and the telephone channel."""

from __future__ import annotations

import os

import numpy as np
import pytest

from detector.audio import ALAW_TO_PCM, ULAW_TO_PCM
from detector.corpus.channel import ChannelParams, apply_channel
from detector.corpus.sources import _fillets_role, inventory
from detector.corpus.texts import bank, languages, make_texts


@pytest.fixture(scope="module")
def packs():
    p, _ = inventory()
    if not p:
        pytest.skip("no speech packages installed (./setup)")
    return p


def test_inventory_never_follows_absolute_symlinks(packs) -> None:
    for p in packs:
        for f in p.files:
            for q in [f, *f.parents]:
                assert not (q.is_symlink() and os.path.isabs(os.readlink(q))), f
    # /usr/share/asterisk/sounds/en -> /etc/alternatives/... would duplicate Allison
    assert not any("/sounds/en/" in f.as_posix() for p in packs for f in p.files)


def test_same_speaker_packs_share_a_group_and_gsm_is_flagged(packs) -> None:
    allison = [p for p in packs if p.speaker == "allison_smith"]
    if len(allison) == 2:
        assert {p.language for p in allison} == {"en", "es"} and len({p.group for p in allison}) == 1
    for p in packs:
        gsm_files = sum(f.suffix == ".gsm" for f in p.files)
        assert p.gsm == (gsm_files > len(p.files) / 2)
        assert p.licence and p.language
    assert len({p.speaker for p in packs}) >= 10


def test_fillets_roles_map_fish_and_skip_effects() -> None:
    from pathlib import Path

    assert _fillets_role(Path("city/cs/vit-m-hlava.ogg")) == "small_fish"
    assert _fillets_role(Path("city/cs/vit-v-proc.ogg")) == "big_fish"
    assert _fillets_role(Path("city/cs/vit-hs-klid1.ogg")) == "minor"
    assert _fillets_role(Path("barrel/en/bar-x-tup.ogg")) is None
    assert _fillets_role(Path("rush/cs/m-silou.ogg")) == "small_fish"
    assert _fillets_role(Path("rush/cs/v-chytra.ogg")) == "big_fish"
    assert _fillets_role(Path("hole/cs/l-halo0.ogg")) == "minor"


def test_channel_is_deterministic_8khz_g711() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + rng.standard_normal(t.size) * 0.01)).astype(np.float32)
    a, pa = apply_channel(x, 16000, 5)
    b, pb = apply_channel(x, 16000, 5)
    c, _ = apply_channel(x, 16000, 6)
    assert pa == pb and np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 16000 and a.dtype == np.float32
    levels = set(np.round(a * 32768).astype(int).tolist())
    table = ULAW_TO_PCM if pa.codec == "ulaw" else ALAW_TO_PCM
    assert levels <= set(table.astype(int).tolist())


def test_channel_sets_level_from_gain_whatever_the_input_level() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(16000) * np.repeat(rng.random(50) > 0.3, 320)).astype(np.float32)
    p = ChannelParams("ulaw", 40.0, "white", 0.0, -6.0, "none")
    loud, _ = apply_channel(x * 0.5, 8000, 1, p)
    soft, _ = apply_channel(x * 0.005, 8000, 1, p)
    ld = 10 * np.log10(np.mean(loud ** 2))
    sd = 10 * np.log10(np.mean(soft ** 2))
    assert abs(ld - sd) < 1.0


def test_text_banks_cover_the_bona_fide_languages() -> None:
    assert set(languages()) >= {"en", "es", "fr", "it", "ru", "de", "cs", "nl"}
    for lang in languages():
        assert len(set(bank(lang))) >= 40
    rng = np.random.default_rng(0)
    texts = make_texts("fr", rng, 50)
    assert len(set(texts)) >= 45
