"""Beneath a Steel Sky (corpus v8): sky.dnr parsing, the RNC ProPack method-1 decoder and its CRCs, speech
file numbers and durations, the script-based speaker labels, the bona fide packs (robots, holograms and the
phone left out) and member decoding through game_audio; on a synthetic game built here and, when present, on
the real package."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from detector.audio import AudioError
from detector.corpus import sky_audio as sky
from detector.corpus import sources
from detector.corpus.game_audio import load_recording, member_path, recording_duration, recording_rate
from detector.corpus.splits import GROUP_SPLIT, group_splits

# ---------------------------------------------------------------------------------------------------------
# An RNC method-1 packer for tests (fixed-length canonical codes, no match search: tokens are given)
# ---------------------------------------------------------------------------------------------------------


def crc16_reference(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class BitWriter:
    """LSB-first bits in 16-bit LE words; raw bytes go after the word being filled, as the decoder reads."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.word = 0
        self.used = 16

    def bits(self, value: int, k: int) -> None:
        for i in range(k):
            if self.used == 16:
                self.word, self.used = len(self.out), 0
                self.out += b"\0\0"
            if value >> i & 1:
                self.out[self.word + self.used // 8] |= 1 << (self.used % 8)
            self.used += 1

    def raw(self, data: bytes) -> None:
        self.out += data


def _value_symbol(v: int) -> tuple[int, int, int]:
    """(symbol, extra bits, number of extra bits) of an RNC value."""
    if v < 2:
        return v, 0, 0
    sym = v.bit_length()
    return sym, v - (1 << (sym - 1)), sym - 1


def _code_table(symbols: set[int], width: int = 0) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """Lengths per symbol and {symbol: (bit-reversed code, length)} of a canonical code: fixed-length, or if
    ``width`` is given a 1-bit code for the largest symbol and ``width``-bit codes for the others (a short
    code read after a long look-ahead leaves the decoder a whole unread word before a literal run)."""
    fixed = max(1, (len(symbols) - 1).bit_length())
    ordered = sorted(symbols, reverse=True)
    size = {s: (1 if i == 0 else width) if width and len(ordered) > 1 else fixed for i, s in enumerate(ordered)}
    lengths = [size.get(s, 0) for s in range(max(symbols) + 1)]
    codes, code = {}, 0
    for s in sorted(ordered, key=lambda s: (size[s], s)):
        length = size[s]
        c = code >> (16 - length)
        codes[s] = (int(f"{c:0{length}b}"[::-1], 2), length)
        code += 1 << (16 - length)
    return lengths, codes


def rnc1_pack(blocks: list[list[tuple[bytes, tuple[int, int] | None]]], reuse_tables: bool = False,
              width: int = 0) -> tuple[bytes, bytes]:
    """(RNC1 stream, unpacked bytes) for blocks of tokens (literal bytes, (offset, length) or None for the
    block's last token). ``reuse_tables``: blocks after the first send empty tables (keep the previous);
    ``width``: see :func:`_code_table`."""
    tokens = [t for b in blocks for t in b]
    raw_syms = {_value_symbol(len(lit))[0] for lit, _ in tokens}
    pos_syms = {_value_symbol(m[0] - 1)[0] for _, m in tokens if m} or {0}
    len_syms = {_value_symbol(m[1] - 2)[0] for _, m in tokens if m} or {0}
    tables = [_code_table(raw_syms, width), _code_table(pos_syms, width), _code_table(len_syms, width)]
    w = BitWriter()
    out = bytearray()

    def value(table: dict[int, tuple[int, int]], v: int) -> None:
        sym, extra, n = _value_symbol(v)
        code, length = table[sym]
        w.bits(code, length)
        w.bits(extra, n)

    w.bits(0, 2)
    for bi, block in enumerate(blocks):
        for lengths, _ in tables:
            if reuse_tables and bi > 0:
                w.bits(0, 5)
            else:
                w.bits(len(lengths), 5)
                for n in lengths:
                    w.bits(n, 4)
        w.bits(len(block), 16)
        for ti, (lit, match) in enumerate(block):
            assert (match is None) == (ti == len(block) - 1)
            value(tables[0][1], len(lit))
            w.raw(lit)
            out += lit
            if match:
                offset, length = match
                value(tables[1][1], offset - 1)
                value(tables[2][1], length - 2)
                for _ in range(length):
                    out.append(out[-offset])
    packed = bytes(w.out)
    head = b"RNC\x01" + struct.pack(">IIHH", len(out), len(packed), crc16_reference(bytes(out)),
                                    crc16_reference(packed)) + bytes([0, len(blocks)])
    return head + packed, bytes(out)


# ---------------------------------------------------------------------------------------------------------
# CRC and RNC decoder
# ---------------------------------------------------------------------------------------------------------


def test_vectorised_crc_equals_the_bytewise_crc() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4096, 20001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert sky.rnc_crc(data) == crc16_reference(data), n
    assert sky.rnc_crc(b"123456789") == 0xBB3D      # CRC-16/ARC check value


def test_rnc1_decoder_unpacks_literals_matches_and_blocks() -> None:
    speech = bytes(range(40, 140))
    blocks = [
        [(b"ABCDEFGHIJ", (10, 10)),            # plain copy of the last 10 bytes
         (b"x", (1, 17)),                      # overlapping copy: a run of 17 'x'
         (b"", (3, 9)),                        # no literal before a match
         (speech, None)],
        [(b"tail!", (5, 5)), (b"END", None)],
    ]
    stream, expected = rnc1_pack(blocks)
    assert expected.startswith(b"ABCDEFGHIJABCDEFGHIJx" + b"x" * 17)
    assert sky.rnc1_unpack(stream) == expected
    # an empty table keeps the previous block's table
    stream2, expected2 = rnc1_pack(blocks, reuse_tables=True)
    assert expected2 == expected and stream2 != stream
    assert sky.rnc1_unpack(stream2) == expected
    # 1-bit and 11- to 15-bit codes (4-bit lengths): the decoder reads a word ahead that it must hand back
    # before a literal run
    rng = np.random.default_rng(5)
    for width in range(11, 16):
        stream3, _ = rnc1_pack(blocks, width=width)
        assert sky.rnc1_unpack(stream3) == expected, width
        for _ in range(5):     # random tokens: literal runs of 0-300 bytes, matches into what is there
            tokens, have = [], 0
            for _ in range(int(rng.integers(2, 12))):
                lit = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes() or b"z" * (not have)
                have += len(lit)
                match = (int(rng.integers(1, have + 1)), int(rng.integers(2, 40)))
                tokens.append((lit, match))
                have += match[1]
            tokens.append((b"last", None))
            stream4, expected4 = rnc1_pack([tokens], width=width)
            assert sky.rnc1_unpack(stream4) == expected4


def test_rnc1_literal_only_stream_round_trips_odd_lengths() -> None:
    for n in (1, 2, 3, 17, 255, 256, 4099):
        data = bytes((i * 37 + 11) % 256 for i in range(n))
        stream, expected = rnc1_pack([[(data, None)]])
        assert expected == data and sky.rnc1_unpack(stream) == data, n


def test_corrupt_rnc_streams_raise_clear_errors() -> None:
    stream, expected = rnc1_pack([[(b"hello world, " * 5, (13, 26)), (b"bye", None)]])
    assert sky.rnc1_unpack(stream) == expected
    with pytest.raises(sky.RncError, match="signature"):
        sky.rnc1_unpack(b"RNC\x02" + stream[4:])
    with pytest.raises(sky.RncError, match="truncated"):
        sky.rnc1_unpack(stream[:-3])
    flipped = bytearray(stream)
    flipped[-2] ^= 0x40
    with pytest.raises(sky.RncError, match="CRC of the packed data"):
        sky.rnc1_unpack(bytes(flipped))
    bad_crc = bytearray(stream)
    bad_crc[12] ^= 0xFF                         # CRC of the unpacked data
    with pytest.raises(sky.RncError, match="CRC of the unpacked data"):
        sky.rnc1_unpack(bytes(bad_crc))
    longer = bytearray(stream)
    longer[4:8] = struct.pack(">I", len(expected) + 5)
    with pytest.raises(sky.RncError, match="header says"):
        sky.rnc1_unpack(bytes(longer), check_crc=False)
    # garbage that passes no CRC check must still fail cleanly, never with IndexError & co.
    rng = np.random.default_rng(3)
    for _ in range(50):
        junk = bytearray(stream)
        junk[18:] = rng.integers(0, 256, len(junk) - 18, dtype=np.uint8).tobytes()
        try:
            out = sky.rnc1_unpack(bytes(junk), check_crc=False)
        except sky.RncError:
            continue
        assert len(out) == len(expected)


# ---------------------------------------------------------------------------------------------------------
# A synthetic game: sky.dnr, sky.dsk, sky.cpt with a talk table and one script module
# ---------------------------------------------------------------------------------------------------------

TALK = {1: "smlfost_conv", 3: "joey_talk_up", 4: "lamb_normal", 5: "monitor_talk", 6: "anita_holo_talk",
        8: "lamb_talk_right", 9: "sc36_juke_talk"}            # entries 0, 2, 7 empty (0 = no animation)


def _tone_u8(seconds: float, f0: float = 150.0) -> bytes:
    t = np.arange(int(seconds * sky.SPEECH_RATE)) / sky.SPEECH_RATE
    x = 0.4 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()


def _header(flag: int, total: int) -> bytes:
    return struct.pack("<H10xH8x", flag, total)


def _packed_file(payload: bytes) -> bytes:
    total = sky.HEADER_LEN + len(payload)
    stream, _ = rnc1_pack([[(payload, None)]])
    return _header(0x80 | (total >> 16) << 8, total & 0xFFFF) + stream


def _raw_file(payload: bytes) -> bytes:
    return _header(0, sky.HEADER_LEN + len(payload)) + payload


def make_dnr(entries: list[tuple[int, int, int]]) -> bytes:
    """(number, offset, flags) -> sky.dnr bytes; offsets that are multiples of 16 use the shifted form."""
    out = struct.pack("<I", len(entries))
    for number, offset, flags in entries:
        off = (offset >> 4) | 1 << 23 if offset % 16 == 0 and offset else offset
        out += struct.pack("<H", number) + off.to_bytes(3, "little") + flags.to_bytes(3, "little")
    return out


def make_cpt(talk: dict[int, str], size: int = 12) -> bytes:
    """sky.cpt v0: list 0 holds the talk table at index 0xBC, list 1 one compact per animation name."""
    names = sorted(set(talk.values()))
    ids = {n: 1 << 12 | i for i, n in enumerate(names)}
    table = [ids[talk[i]] if i in talk else 0 for i in range(size)]
    words = [0] * sky.TALK_TABLE_ID + [len(table), 0, *table]
    for _ in names:
        words += [1, 0, 7]
    text = b"talk_table\0" + b"".join(n.encode() + b"\0" for n in names)
    lens = [sky.TALK_TABLE_ID + 1, len(names)]
    return (struct.pack("<HH", 0, 2) + struct.pack("<2H", *lens) + struct.pack("<II", 0, len(words))
            + struct.pack(f"<{len(words)}H", *words) + struct.pack("<I", len(text)) + text)


def _speak(target: int, text: int, anim: int, mcode: int = 35) -> list[int]:
    return [2, target, 2, text, 2, anim, 11, 3, mcode * 4]


SCRIPT = (
    _speak(0x1000, 1, 1) + _speak(0, 2, 3) + _speak(0, 3, 4) + _speak(0, 4, 5) + _speak(0, 5, 6)
    + _speak(0, 6, 1) + _speak(0, 6, 4)                  # line 6: Foster and Lamb -> conflicting
    + [2, 7, 2, 0, 11, 2, 70 * 4]                        # fnAskThis: Foster
    + _speak(0, 8, 0)                                    # animation 0: unknown speaker
    + _speak(0, 10, 7)                                   # empty entry 7 -> entry 8 (Lamb, mega-set 1)
    + _speak(0, 0x1000 | 5, 4)                           # section 1, line 5: file 50605, Lamb
    + _speak(0, 11, 9)                                   # the jukebox
)
LINES = {  # speech file -> (seconds, what the labeller must say)
    50001: (1.0, "foster"), 50002: (0.6, "joey"), 50003: (1.2, "lamb"), 50004: (0.5, "monitor"),
    50005: (0.7, "anita(holo)"), 50006: (0.4, ""), 50007: (0.8, "foster"), 50008: (0.5, ""),
    50009: (0.3, ""), 50010: (0.9, "lamb"), 50011: (0.6, "jukebox"), 50605: (1.1, "lamb"),
    59500: (1.5, "foster"), 59527: (0.9, "joey"),
}


@pytest.fixture()
def fake_bass(tmp_path: Path) -> Path:
    """<tmp>/packages with a small Beneath a Steel Sky; returns the packages folder."""
    folder = tmp_path / "packages" / sources.BASS / sources.BASS_DIR
    folder.mkdir(parents=True)
    files: dict[int, tuple[bytes, int]] = {}
    for number, (seconds, _) in LINES.items():
        pcm = _tone_u8(seconds, 120 + number % 97)
        files[number] = (_raw_file(pcm), 0) if number in sky.INTRO_VOICES else (_packed_file(pcm), 0)
    files[59495] = (_raw_file(b"\x80" * 3000), 0)                  # helicopter: never speech
    script = b"".join(struct.pack("<H", w) for w in SCRIPT)
    files[60400] = (_packed_file(script), 0)
    files[60600] = (b"x" * 40, 1 << 23)                             # stored as is (bit 23)
    dsk, entries = bytearray(), []
    for number, (data, flags) in files.items():
        dsk += b"\0" * (-len(dsk) % 16)                             # 16-byte aligned: shifted offsets
        entries.append((number, len(dsk), len(data) | flags))
        dsk += data
    entries.append((50001, 0, 5))                                   # a second 50001 entry: the first wins
    (folder / "sky.dsk").write_bytes(bytes(dsk))
    (folder / "sky.dnr").write_bytes(make_dnr(entries))
    (folder / "sky.cpt").write_bytes(make_cpt(TALK))
    return tmp_path / "packages"


def _dsk(packages: Path) -> Path:
    return packages / sources.BASS / sources.BASS_DIR / "sky.dsk"


def test_dnr_parser_reads_offsets_sizes_and_flags() -> None:
    raw = make_dnr([(50001, 5, 300), (60600, 4096, 40 | 1 << 23), (50002, 333, 7 | 1 << 22), (50001, 9, 9)])
    table = sky.parse_dnr(raw)
    assert set(table) == {50001, 50002, 60600}
    assert (table[50001].offset, table[50001].size) == (5, 300)            # first entry wins
    assert table[60600].offset == 4096 and table[60600].size == 40 and table[60600].stored_raw
    assert table[50002].drops_header and not table[50002].stored_raw
    with pytest.raises(sky.SkyDataError):
        sky.parse_dnr(raw[:-3])
    with pytest.raises(sky.SkyDataError):
        sky.parse_dnr(b"\0\0")


def test_synthetic_game_speech_numbers_durations_and_decoding(fake_bass: Path) -> None:
    dsk = _dsk(fake_bass)
    table = sky.dnr_table(dsk)
    numbers = sky.speech_numbers(table)
    assert numbers == sorted(n for n in LINES if n < 59494) + [59500, 59527]   # no SFX, no scripts
    for number, (seconds, _) in LINES.items():
        pcm = sky.speech_bytes(dsk, number)
        assert len(pcm) == int(seconds * sky.SPEECH_RATE)
        assert sky.speech_duration(dsk, number) == pytest.approx(seconds, abs=1 / sky.SPEECH_RATE)
        member = member_path(dsk, str(number))
        assert recording_rate(member) == 11025
        assert recording_duration(member) == pytest.approx(seconds, abs=1e-3)
    assert sky.load_file(dsk, 60600) == b"x" * 40
    with pytest.raises(KeyError):
        sky.speech_bytes(dsk, 59495)
    x = load_recording(member_path(dsk, "50003"), 8000)
    assert x.dtype == np.float32 and len(x) == pytest.approx(1.2 * 8000, abs=2)
    assert 0.2 < np.max(np.abs(x)) < 0.7


def test_corrupt_member_gives_audio_error_and_header_duration_still_works(fake_bass: Path) -> None:
    dsk = _dsk(fake_bass)
    entry = sky.dnr_table(dsk)[50003]
    data = bytearray(dsk.read_bytes())
    data[entry.offset + entry.size - 5] ^= 0x55                      # inside the packed speech
    dsk.write_bytes(bytes(data))
    os.utime(dsk)
    member = member_path(dsk, "50003")
    with pytest.raises(AudioError, match="Beneath a Steel Sky.*CRC"):
        load_recording(member, 8000)
    assert recording_duration(member) == pytest.approx(1.2, abs=1e-3)   # from the header, no unpacking
    with pytest.raises(AudioError, match="not in"):
        load_recording(member_path(dsk, "50099"), 8000)
    with pytest.raises(AudioError, match="file number"):
        load_recording(member_path(dsk, "CDV_00"), 8000)


def test_talk_animations_name_the_speaker() -> None:
    talk = [""] * 30
    talk[7], talk[8] = "smlfost_conv", "bigfost_conv"
    for i, d in enumerate(("up", "down", "left", "right")):
        talk[10 + 2 * i], talk[11 + 2 * i] = f"big_f_{d}", f"rad_{d}"
    talk[18], talk[22], talk[24] = "big_j_up", "big_j_left", "big_j_right"
    assert sky.talk_speaker(talk, 7, False) == ("foster", "smlfost_conv")
    assert sky.talk_speaker(talk, 0, False) == (None, "")                 # no animation
    assert sky.talk_speaker(talk, 9, False) == ("foster", "big_f_up")     # empty: mega-set 1
    assert sky.talk_speaker(talk, 9, True)[0] == "foster"                 # Foster's Dir base
    assert sky.talk_speaker(talk, 17, True) == ("hobbins", "big_j_up")    # not rad_right (entry 17)
    assert sky.talk_speaker(talk, 17, False) == ("foster", "rad_right")
    assert sky.talk_speaker(talk, 26, False) == (None, "")
    assert sky.talk_character("son_to_dad") == "son" and sky.talk_character("dad_to_son") == "dad"
    assert sky.talk_character("sc81_fos_sat_tlk") == "foster(linc)"
    assert sky.talk_character("helga2") == "helga(holo)" and sky.talk_character("welder_up") == "joey"
    assert sky.talk_character("opentalk") is None


def test_synthetic_game_labels_and_packs_leave_out_machines(fake_bass: Path) -> None:
    labels = sky.speaker_labels(_dsk(fake_bass))
    assert {n: lab.character for n, lab in labels.items()} == {n: who for n, (_, who) in LINES.items()}
    assert labels[50006].conflicting and labels[50006].candidates == ("foster", "lamb")
    assert labels[50007].evidence == "ask_this" and labels[59527].evidence == "intro.cpp CDV_14"
    roles = {n: sources.bass_role(lab) for n, lab in labels.items()}
    assert roles[50006] == "conflicting" and roles[50008] == roles[50009] == "unlabelled"
    assert {n for n, r in roles.items() if r == "not_human"} == {50002, 50004, 50005, 50011, 59527}

    packs, missing = sources._bass_packs(fake_bass)
    assert missing == []
    by = {p.speaker: p for p in packs}
    assert set(by) == {"bass_foster", "bass_cast"}
    got = {s: [int(str(f).rpartition("::")[2]) for f in p.files] for s, p in by.items()}
    assert got == {"bass_foster": [50001, 50007, 59500], "bass_cast": [50003, 50010, 50605]}
    for p in packs:
        assert p.group == "bass" and p.language == "en" and p.package == sources.BASS
        assert p.codec_history == "pcm-u8" and not p.gsm and p.licence == sources.BASS_LICENCE
        assert p.max_minutes == sources.BASS_MAX_MINUTES[p.speaker]
    assert "5 not_human, 2 unlabelled, 1 conflicting" in by["bass_cast"].note


def test_missing_or_unreadable_game_gives_a_clear_note(fake_bass: Path, tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    packs, missing = sources._bass_packs(empty)
    assert packs == [] and len(missing) == 1
    assert missing[0].startswith(f"{sources.BASS}: not found") and "./setup" in missing[0]
    (_dsk(fake_bass).with_name("sky.cpt")).write_bytes(b"\1\0\0\0")
    packs, missing = sources._bass_packs(fake_bass)
    assert packs == [] and "unreadable" in missing[0] and "sky.cpt" in missing[0]


def test_bass_group_is_pinned_to_train() -> None:
    assert GROUP_SPLIT["bass"] == "train"
    assert group_splits(["bass", "allison_smith"])["bass"] == "train"


# ---------------------------------------------------------------------------------------------------------
# The real package (data/packages/beneath-a-steel-sky, or the prototype's /tmp/bass/pkg); skipped without it
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_bass(tmp_path_factory) -> Path:
    """A packages folder holding the real beneath-a-steel-sky tree."""
    unpacked = sources.default_packages_dir()
    if (unpacked / sources.BASS / sources.BASS_DIR / "sky.dsk").is_file():
        return unpacked
    proto = Path("/tmp/bass/pkg")
    if (proto / sources.BASS_DIR / "sky.dsk").is_file():
        packages = tmp_path_factory.mktemp("packages")
        (packages / sources.BASS).symlink_to(proto)
        return packages
    pytest.skip(f"{sources.BASS} not unpacked in {unpacked} (run ./setup)")


def test_real_package_lists_every_speech_file_and_decodes_with_good_crcs(real_bass: Path) -> None:
    dsk = _dsk(real_bass)
    numbers = sky.speech_numbers(sky.dnr_table(dsk))
    assert len(numbers) == 3579
    assert not set(numbers) & set(sky.INTRO_SFX) and 59500 in numbers and 59672 in numbers
    minutes = sum(sky.speech_duration(dsk, n) for n in numbers) / 60
    assert 119 < minutes < 120
    for n in numbers[::179]:                                # 20 files, CRCs checked
        assert len(sky.speech_bytes(dsk, n)) == round(sky.speech_duration(dsk, n) * sky.SPEECH_RATE)


def test_real_member_loads_as_speech_at_8khz(real_bass: Path) -> None:
    member = member_path(_dsk(real_bass), "50013")          # Foster: "I don't know - it's just a piece of metal."
    assert recording_rate(member) == 11025
    seconds = recording_duration(member)
    assert 2.0 < seconds < 2.2
    x = load_recording(member, 8000)
    assert x.dtype == np.float32 and abs(len(x) - seconds * 8000) < 2
    # 8-bit recordings normalised to full scale (a few 0/255 samples): resampling may overshoot slightly
    assert abs(float(np.mean(x))) < 0.02 and 0.3 < np.max(np.abs(x)) < 1.25
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    active = level > level.max() - 30
    assert 0.3 < active.mean() < 0.98                       # speech with pauses, not a tone or silence
    spec = np.abs(np.fft.rfft(x[: 8000])) ** 2
    f = np.fft.rfftfreq(8000, 1 / 8000)
    assert spec[(f > 80) & (f < 1000)].sum() > spec[f > 2000].sum()   # voiced speech energy low in frequency


def test_real_packs_leave_out_robots_holograms_and_the_phone(real_bass: Path) -> None:
    packs, missing = sources._bass_packs(real_bass)
    assert missing == []
    by = {p.speaker: p for p in packs}
    assert set(by) == {"bass_foster", "bass_cast"}
    dsk = _dsk(real_bass)
    labels = sky.speaker_labels(dsk)
    listed = {int(str(f).rpartition("::")[2]): p.speaker for p in packs for f in p.files}
    for number, speaker in listed.items():
        who = labels[number].character
        assert who and who not in sources.BASS_NOT_HUMAN, (number, who)
        assert (who == "foster") == (speaker == "bass_foster"), (number, who)
    left_out = {n for n, lab in labels.items() if lab.character in sources.BASS_NOT_HUMAN}
    assert len(left_out) > 350 and not left_out & set(listed)
    # Joey in the intro (CDV_14) and in-game, Helga's hologram, Anita's hologram, the phone, LINC in the chair
    for number, who in ((59527, "joey"), (50169, "joey"), (52741, "helga(holo)"), (51398, "foreman"),
                        (55099, "anita(holo)"), (54021, "piermont(phone)"), (55051, "foster(linc)")):
        assert labels[number].character == who, number
    assert 51398 in listed and not {59527, 50169, 52741, 55099, 54021, 55051} & set(listed)
    assert listed[59500] == "bass_foster" and listed[59551] == "bass_cast"        # intro: Foster, Reich
    minutes = {s: sum(sky.speech_duration(dsk, int(str(f).rpartition("::")[2])) for f in p.files) / 60
               for s, p in by.items()}
    assert minutes["bass_foster"] > 45 and minutes["bass_cast"] > 40
