"""Bona fide sources added in corpus v3: Tux Paint read speech, Flight of the Amazon Queen (QTBL archive of
MP3s) and Drascula (8-bit ALS files): decoders, speaker/group mapping, split ties, missing-source notes."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from detector.corpus import sources
from detector.corpus.game_audio import (
    ALS_RATE,
    ArchiveError,
    decode_als,
    dog_talk_keys,
    load_recording,
    member_path,
    parse_qtbl,
    read_member,
    read_qtbl,
    recording_duration,
    recording_rate,
)
from detector.corpus.report import codec_history_lines
from detector.corpus.sources import drascula_role, fotaq_role, tuxpaint_voice
from detector.corpus.splits import GROUP_SPLIT, SAME_SPLIT, check_disjoint, group_splits

PACKAGES = sources.default_packages_dir()


def _tone(seconds: float, rate: int = 11025, f0: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _mp3(seconds: float) -> bytes:
    buf = io.BytesIO()
    try:
        sf.write(buf, _tone(seconds), 11025, format="MP3", subtype="MPEG_LAYER_III")
    except Exception:  # libsndfile built without LAME: a FLAC payload exercises the same archive path
        buf = io.BytesIO()
        sf.write(buf, _tone(seconds), 11025, format="FLAC")
    return buf.getvalue()


def _dog(talk_key: int) -> bytes:
    # 20-byte header, then levelMax, uniqueKey, talkKey (int16 big-endian), then dialogue data
    return b"\0" * 20 + struct.pack(">hhh", 1, 7, talk_key) + b"\0" * 10


def make_qtbl(members: dict[str, bytes], compression: int = 1) -> bytes:
    """A QTBL archive as ScummVM's queen.1c: magic, version, flags, compression, count, table, data."""
    head = b"QTBL" + b"CEM10\0" + b"\0\0" + bytes([compression]) + struct.pack(">H", len(members))
    offset = len(head) + 21 * len(members)
    table, data = b"", b""
    for name, payload in members.items():
        table += name.encode("latin-1").ljust(12, b"\0") + struct.pack(">BII", 1, offset + len(data), len(payload))
        data += payload
    return head + table + data


@pytest.fixture()
def fake_fotaq(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    members = {
        "020006J1.SB": _mp3(1.5),    # Joe in dialogue FAYE2 (talkKey 2)
        "02SSSSJ1.SB": _mp3(1.0),    # Joe's opening line of that dialogue
        "JOE00011.SB": _mp3(1.2),    # Joe's response / look-at line (makeJoeSpeak)
        "020006P1.SB": _mp3(2.0),    # Faye
        "1200B3PA.SB": _mp3(0.8),    # person line, segment 10
        "C12A_061.SB": _mp3(1.1),    # cut-scene C12A, line 061: pooled in the cast
        "1001SSSS.SB": _mp3(0.7),    # sound effect (stone door grind): not speech
        "TOM_0826.SB": _mp3(0.5),    # unknown: left out
        "FAYE2.DOG": _dog(2),
        "C12A.CUT": b"\0" * 40,
    }
    root = tmp_path / "packages" / sources.FOTAQ / sources.FOTAQ_ARCHIVE
    root.parent.mkdir(parents=True)
    root.write_bytes(make_qtbl(members))
    return root, members


def test_qtbl_parser_lists_entries_and_reads_members(fake_fotaq) -> None:
    archive_path, members = fake_fotaq
    archive = read_qtbl(archive_path)
    assert archive.version == "CEM10" and archive.compression == "mp3"
    assert [e.name for e in archive.entries] == list(members)
    for name, payload in members.items():
        assert read_member(archive_path, name) == payload
    assert dog_talk_keys(archive_path) == {2: "faye"}


def test_qtbl_parser_rejects_other_files_and_truncated_tables(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        parse_qtbl(b"RIFF" + b"\0" * 20)
    good = make_qtbl({"A.SB": b"x" * 10, "B.SB": b"y" * 10})
    with pytest.raises(ArchiveError):
        parse_qtbl(good[:30])                  # table cut short
    short = tmp_path / "queen.1c"
    short.write_bytes(good[:-5])               # last entry runs past the end of the file
    with pytest.raises(ArchiveError):
        read_qtbl(short)


def test_archive_members_decode_to_audio_at_any_rate(fake_fotaq) -> None:
    archive_path, _ = fake_fotaq
    member = member_path(archive_path, "020006P1.SB")
    assert recording_rate(member) == 11025
    assert recording_duration(member) == pytest.approx(2.0, abs=0.1)
    x8 = load_recording(member, 8000)
    assert x8.dtype == np.float32 and abs(len(x8) / 8000 - 2.0) < 0.1
    assert 0.1 < np.max(np.abs(x8)) < 1.0
    # the same member twice gives the same samples (the build hashes the audio)
    assert np.array_equal(x8, load_recording(member, 8000))


def test_fotaq_inventory_maps_joe_and_pools_the_cast(fake_fotaq) -> None:
    archive_path, _ = fake_fotaq
    packs, missing = sources._fotaq_packs(archive_path.parents[5])
    assert missing == []
    by = {p.speaker: p for p in packs}
    assert set(by) == {"fotaq_joe", "fotaq_cast"}
    assert {f.name.split("::")[1] for f in by["fotaq_joe"].files} == {"020006J1.SB", "02SSSSJ1.SB", "JOE00011.SB"}
    assert {f.name.split("::")[1] for f in by["fotaq_cast"].files} == {"020006P1.SB", "1200B3PA.SB", "C12A_061.SB"}
    for p in packs:
        assert p.group == p.speaker and p.language == "en" and p.package == sources.FOTAQ
        assert p.codec_history == "mp3-16k" and not p.gsm and p.max_minutes


def test_fotaq_names_map_to_roles() -> None:
    cut = {"C12A", "C9C", "CDINT", "COMIC"}
    assert fotaq_role("020006J1.SB", cut) == "joe"
    assert fotaq_role("84XXXXJ1.SB", cut) == "joe"
    assert fotaq_role("JOE00011.SB", cut) == "joe"
    assert fotaq_role("JOE0123A.SB", cut) == "joe"
    assert fotaq_role("020006P2.SB", cut) == "cast"
    assert fotaq_role("84XXXXP1.SB", cut) == "cast"
    assert fotaq_role("120023PB.SB", cut) == "cast"
    assert fotaq_role("C9C__011.SB", cut) == "cast"
    assert fotaq_role("CDINT061.SB", cut) == "cast"
    assert fotaq_role("C77A_011.SB", cut) is None           # no such cut-scene in the archive
    for sfx in ("1001SSSS.SB", "10SSSSSS.SB", "116BSSSS.SB", "3SSSSSSS.SB", "UNTITLED.SB", "FAYE2.DOG"):
        assert fotaq_role(sfx, cut) is None, sfx


def test_als_decoder_reads_unsigned_8bit_pcm(tmp_path: Path) -> None:
    x = decode_als(bytes([0, 64, 128, 192, 255]))
    assert x.dtype == np.float32
    assert x.tolist() == [-1.0, -0.5, 0.0, 0.5, 127 / 128]
    tone = _tone(1.0)
    path = tmp_path / "VB12.ALS"
    path.write_bytes(np.clip(np.round(tone * 128 + 128), 0, 255).astype(np.uint8).tobytes())
    assert recording_rate(path) == ALS_RATE and recording_duration(path) == pytest.approx(1.0)
    y = load_recording(path, 8000)
    assert len(y) == 8000 and np.max(np.abs(y - _tone(1.0, 8000))) < 0.05


def test_drascula_file_names_map_to_roles() -> None:
    assert drascula_role("1") == drascula_role("463") == "hacker"
    assert drascula_role("D3") == drascula_role("D56") == "drascula"
    assert drascula_role("D57") == drascula_role("D64") == "hacker"      # blind-man scene: talk_hacker
    assert drascula_role("D70") == drascula_role("D83") == drascula_role("D65") == "minor"
    assert drascula_role("D82") == drascula_role("T4") == "bartender"
    assert drascula_role("VB12") == "vonbraun" and drascula_role("BJ3") == "bj" and drascula_role("I4") == "igor"
    assert drascula_role("B5") == "drunk" and drascula_role("P1") == "pianist"
    assert drascula_role("L3") == drascula_role("E2") == drascula_role("S1") == drascula_role("F2") == "minor"
    assert drascula_role("ICONS") is None and drascula_role("AN11_") is None


def test_drascula_inventory_skips_symlinks_and_never_reads_the_italian_package(tmp_path: Path) -> None:
    pk = tmp_path / "packages"
    en = pk / "drascula" / "usr/share/scummvm/drascula/en"
    es = pk / "drascula-spanish" / "usr/share/scummvm/drascula/es"
    it = pk / "drascula-italian" / "usr/share/scummvm/drascula/it"
    for d in (en, es, it):
        d.mkdir(parents=True)
    for name in ("1.ALS", "366.ALS", "D3.ALS", "VB1.ALS", "L2.ALS"):
        (en / name).write_bytes(b"\x80" * 2000)
    (en / "5.ALG").write_bytes(b"\0" * 100)     # graphics, not speech
    (en / "7.ALS").write_bytes(b"")             # empty file
    (es / "1.ALS").write_bytes(b"\x80" * 1000)
    os.symlink("../en/366.ALS", es / "366.ALS")  # as drascula-spanish ships it
    (it / "1.ALS").write_bytes(b"\x80" * 2013)
    packs, missing = sources._drascula_packs(pk)
    assert missing == []
    got = {(p.speaker, p.group, p.language, tuple(f.name for f in p.files)) for p in packs}
    assert got == {
        ("drascula_en_hacker", "drascula_en", "en", ("1.ALS", "366.ALS")),
        ("drascula_en_drascula", "drascula_en", "en", ("D3.ALS",)),
        ("drascula_en_vonbraun", "drascula_en", "en", ("VB1.ALS",)),
        ("drascula_en_minor", "drascula_en", "en", ("L2.ALS",)),
        ("drascula_es_hacker", "drascula_es", "es", ("1.ALS",)),
    }
    assert all(p.codec_history == "pcm-u8" for p in packs)
    assert not any("italian" in f.as_posix() for p in packs for f in p.files)


def test_tuxpaint_clips_map_to_one_reader_per_language() -> None:
    stamps = Path("/x/usr/share/tuxpaint/stamps/animals")
    assert tuxpaint_voice(stamps / "cat_desc_el.ogg")[:3] == ("kiriaki_serafeim", "kiriaki_serafeim", "el")
    assert tuxpaint_voice(stamps / "cat_desc_da.ogg.ogg")[:3] == ("joe_dalton", "joe_dalton", "da")
    assert tuxpaint_voice(stamps / "cat_desc_ro.wav")[:2] == ("tuxpaint_ro_tabbytha", "tuxpaint_ro_tabbytha")
    assert tuxpaint_voice(stamps / "cat_desc.ogg")[:3] == ("tuxpaint_en", "tuxpaint_en", "en")
    assert tuxpaint_voice(stamps / "cat_desc_nl.ogg")[:3] == ("tuxpaint_nl", "tuxpaint_nl", "nl")
    assert tuxpaint_voice(stamps / "cat_desc_pt_BR.ogg") is None          # children: left out
    assert tuxpaint_voice(stamps / "cat.ogg") is None and tuxpaint_voice(stamps / "cat_desc_el.txt") is None


def test_tuxpaint_inventory_groups_clips_by_reader(tmp_path: Path) -> None:
    pk = tmp_path / "packages"
    d = pk / sources.TUXPAINT / sources.TUXPAINT_DIR / "animals" / "birds"
    d.mkdir(parents=True)
    for name in ("owl_desc_bg.ogg", "duck_desc_bg.ogg", "owl_desc_pt_BR.ogg", "owl_desc.ogg"):
        sf.write(d / name, _tone(0.5, 8000), 8000, format="OGG")
    (d / "owl.png").write_bytes(b"")
    os.symlink("owl_desc_bg.ogg", d / "hen_desc_bg.ogg")
    packs, missing = sources._tuxpaint_packs(pk)
    assert missing == []
    got = {p.speaker: sorted(f.name for f in p.files) for p in packs}
    assert got == {"krasimir_petkov": ["duck_desc_bg.ogg", "owl_desc_bg.ogg"], "tuxpaint_en": ["owl_desc.ogg"]}
    assert all(p.licence == "GPL-2" and p.codec_history == "" for p in packs)



def test_ktuberling_words_come_only_from_languages_with_no_dev_or_eval_voice(tmp_path: Path) -> None:
    pk = tmp_path / "packages"
    root = pk / sources.KTUBERLING / sources.KTUBERLING_DIR
    for lang, name in (("en", "ball.ogg"), ("nn", "ball.opus"), ("fr", "bouche.wav"), ("sr@latin", "brkovi.ogg")):
        (root / lang).mkdir(parents=True, exist_ok=True)
        (root / lang / name).write_bytes(b"")
    (root / "en.soundtheme").write_text("<language/>")
    os.symlink("ball.ogg", root / "en" / "hat.ogg")
    packs, missing = sources._ktuberling_packs(pk)
    assert missing == []
    # fr's reader may be the dev split's French KLettres / Tux Paint voice; sr@latin repeats sr's files
    assert {p.group: [f.name for f in p.files] for p in packs} == {"ktuberling_en": ["ball.ogg"],
                                                                   "ktuberling_nn": ["ball.opus"]}
    assert all(GROUP_SPLIT[p.group] == "train" for p in packs)
    tied = {g for tie in SAME_SPLIT for g in tie}
    assert {"ktuberling_en", "ktuberling_nn"} <= tied

def test_missing_game_packages_give_a_clear_note(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    for fn, pkgs in ((sources._tuxpaint_packs, [sources.TUXPAINT]), (sources._fotaq_packs, [sources.FOTAQ]),
                     (sources._drascula_packs, ["drascula", "drascula-spanish"]),
                     (sources._bass_packs, [sources.BASS])):
        packs, missing = fn(empty)
        assert packs == []
        assert [m.split(":")[0] for m in missing] == pkgs
        assert all("not found" in m and "./setup" in m for m in missing)


def test_new_groups_have_fixed_splits_ties_hold_and_old_splits_are_unchanged() -> None:
    v2 = {  # the published corpus v2 (data/corpus_v2/build_info.json): must never move
        "allison_smith": "train", "june_wallack": "train", "ivrvoice_ru": "train", "fillets_cs": "train",
        "beronet_de": "train", "paola_dal_zot": "dev", "july_jimenez": "dev", "proformatique_fr": "dev",
        "carlo_flora": "eval", "armelle_desjardins": "eval", "fillets_nl": "eval",
        "klettres_ar": "train", "klettres_cs": "dev", "klettres_da": "train", "klettres_de": "eval",
        "klettres_en": "train", "klettres_es": "train", "klettres_fr": "dev", "klettres_he": "train",
        "klettres_hu": "eval", "klettres_it": "train", "klettres_lt": "train", "klettres_ml": "dev",
        "klettres_nb": "train", "klettres_nds": "eval", "klettres_nl": "train", "klettres_pt": "train",
        "klettres_ru": "dev", "klettres_tn": "train", "klettres_uk": "eval",
    }
    new = ["fotaq_joe", "fotaq_cast", "drascula_en", "drascula_es", "kiriaki_serafeim", "krasimir_petkov",
           "tuxpaint_fr", "edwin_veber", "kseniya_buraya", "tuxpaint_ca", "tuxpaint_ml"]
    got = group_splits(sorted(v2) + new)
    assert {g: got[g] for g in v2} == v2
    assert group_splits(sorted(v2)) == v2
    for tie in SAME_SPLIT:
        assert len({GROUP_SPLIT[g] for g in tie}) == 1, tie
    # eval keeps unseen human voices among the new ones
    assert got["kiriaki_serafeim"] == got["krasimir_petkov"] == "eval"
    assert got["fotaq_joe"] == got["fotaq_cast"] == "train"
    for speaker, (group, _) in sources.TUXPAINT_SPEAKERS.items():
        assert group in GROUP_SPLIT, speaker


def test_split_check_flags_tied_groups_in_different_splits() -> None:
    rows = [dict(label="bonafide", group="fotaq_joe", split="train", generator="bonafide"),
            dict(label="bonafide", group="fotaq_cast", split="eval", generator="bonafide")]
    problems = check_disjoint(rows)
    assert len(problems) == 1 and "fotaq_joe" in problems[0]
    rows[1]["split"] = "train"
    assert check_disjoint(rows) == []


def test_report_lists_codec_histories_also_for_old_build_info() -> None:
    info = {"sources": [{"speaker": "july_jimenez", "gsm": True},                      # corpus v2 style
                        {"speaker": "fotaq_joe", "gsm": False, "codec_history": "mp3-16k"},
                        {"speaker": "drascula_en_igor", "gsm": False, "codec_history": "pcm-u8"},
                        {"speaker": "allison_smith", "gsm": False, "codec_history": ""}]}
    text = "\n".join(codec_history_lines(info))
    assert "GSM-coded bona fide packs" in text and "july_jimenez" in text
    assert "MP3-coded" in text and "fotaq_joe" in text and "8-bit PCM" in text
    assert "allison_smith" not in text


def test_vocoder_training_data_leaves_out_the_later_sources() -> None:
    from detector.corpus.neural_vocoders.dsp import LATER_SOURCES

    assert LATER_SOURCES == {sources.TUXPAINT, sources.FOTAQ, *sources.DRASCULA, sources.BASS}
    assert sources.DRASCULA_NEVER not in sources.DRASCULA


# --- the real packages (skipped when data/packages lacks them; ./setup unpacks them) -------------------

def _need(pkg: str) -> Path:
    root = PACKAGES / pkg
    if not root.is_dir():
        pytest.skip(f"{pkg} not unpacked in {PACKAGES} (run ./setup)")
    return root


def test_real_fotaq_archive_holds_joe_and_the_cast_as_11khz_mp3() -> None:
    _need(sources.FOTAQ)
    packs, missing = sources._fotaq_packs(PACKAGES)
    assert missing == []
    by = {p.speaker: p for p in packs}
    assert len(by["fotaq_joe"].files) > 1500 and len(by["fotaq_cast"].files) > 4000
    member = by["fotaq_joe"].files[0]
    assert recording_rate(member) == 11025
    assert recording_duration(member) > 0.3
    assert load_recording(member, 8000).size > 2000


def test_real_drascula_packages_give_two_casts_without_links_or_italian() -> None:
    _need("drascula")
    _need("drascula-spanish")
    packs, missing = sources._drascula_packs(PACKAGES)
    assert missing == []
    by = {p.speaker: p for p in packs}
    assert {"drascula_en_hacker", "drascula_es_hacker", "drascula_en_vonbraun", "drascula_es_bj"} <= set(by)
    assert len(by["drascula_en_hacker"].files) > 400
    for p in packs:
        assert not any(f.is_symlink() or "italian" in f.as_posix() for f in p.files)
    assert all(p.language == p.group[-2:] for p in packs)


def test_real_tuxpaint_package_has_the_credited_readers_and_no_children() -> None:
    _need(sources.TUXPAINT)
    packs, _ = sources._tuxpaint_packs(PACKAGES)
    speakers = {p.speaker for p in packs}
    assert {s for s, _ in sources.TUXPAINT_SPEAKERS.values()} <= speakers
    assert not any("pt_BR" in f.name for p in packs for f in p.files)
    assert sum(len(p.files) for p in packs) > 7000
