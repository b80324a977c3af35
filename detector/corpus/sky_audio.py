"""Reading the recorded speech of "Beneath a Steel Sky" (CD version 0.0372, Debian ``beneath-a-steel-sky``).

The format facts below follow ScummVM's ``engines/sky`` (``disk.cpp``, ``rnc_deco.cpp``, ``sound.cpp``,
``intro.cpp``, ``logic.cpp``, ``struc.h``) as a reference; the code is an independent implementation with
numpy and the standard library.

- ``sky.dnr`` (the "dinner table"): uint32 LE entry count, then 8-byte entries: uint16 LE file number, uint24
  LE offset into ``sky.dsk`` (bit 23 set: the offset is ``(offset & 0x7FFFFF) << 4``), uint24 LE flags/size
  (size = ``v & 0x3FFFFF``; bit 22: the unpacked data is returned without the stored header; bit 23: the file
  is stored as is, never RNC-packed). When a number appears twice the first entry wins, as in the game.
- ``sky.dsk``: the files back to back. A file starts with a 22-byte ``DataFileHeader`` (11 uint16 LE words;
  ``flag`` is word 0, ``s_tot_size`` word 6). ``flag`` bit 7 set: the rest of the file is an RNC ProPack
  method-1 stream and the unpacked file is ``((flag & 0xFF00) << 8) | s_tot_size`` bytes long, header
  included (the header is copied as stored, the stream unpacks to what follows it).
- RNC ProPack method 1: ``b"RNC\\x01"``, uint32 BE unpacked and packed length, uint16 BE CRC of the unpacked
  and of the packed data (CRC-16, reflected polynomial 0xA001, initial value 0), a leeway byte and the block
  count; then a bit stream read LSB-first from 16-bit LE words. Each block starts with three canonical
  Huffman tables (5-bit code count, 4-bit code lengths; an empty table keeps the previous one) for literal-run
  lengths, match offsets and match lengths, and a 16-bit token count; each token is a literal run (its bytes
  taken byte-aligned from the stream, after the partly read word) followed, except for the block's last
  token, by an LZ match (offset + 1, length + 2). Values of symbol ``s >= 2`` are ``(1 << (s - 1))`` plus
  ``s - 1`` extra bits. Both CRCs are checked: a corrupt file raises :class:`RncError`.
- Speech: the in-game line with text number ``t`` is file ``50000 + SECTION_START[t >> 12] + (t & 0xFFF)``
  (``_speechConvertTable`` of ``sound.cpp``; eight sections). Its payload is the unpacked file after the
  22-byte header: unsigned 8-bit mono PCM at 11025 Hz (the game plays ``s_tot_size - 22`` bytes, the same
  thing, as no speech file of 0.0372 exceeds 64 KB). The CD intro's voice-overs are the ``CDV_xx`` files
  59500-59672 (``intro.cpp``; played whole at 11025 Hz with the header overwritten by silence, so we drop
  it). 59494-59499 are the intro's background effects (fire, helicopter) and are never speech; the other
  595xx/596xx numbers are intro graphics and palettes.
- Speakers: the intro's speakers are given in ``intro.cpp``'s comments (:data:`INTRO_VOICES`). In-game
  lines carry no speaker, so :func:`speaker_labels` reads the scripts (files 60400-60406, 16-bit LE words;
  opcode 2 push_number, 11 call_mcode ``argc, mcode * 4``) for calls of ``fnSpeakMe``/``fnSpeakMeDir``/
  ``fnSpeakWait``/``fnSpeakWaitDir`` (mcodes 35-38; arguments target compact, text number, talk animation)
  whose text number and animation are literals, and names the speaker after the talk animation, an entry of
  the talk table (compact list 0xBC of ``sky.cpt``: ``dani_conv``, ``anchor_talk_anim``, ``big_f_up`` ...;
  see :func:`talk_speaker` for the empty entries and the Dir calls). Lines offered to the player with
  ``fnAskThis`` (mcode 70) are Foster's. A line that the scripts give to two characters is conflicting and
  gets no speaker. Where a call names its target compact as a literal (290 speech files), the label agrees
  with it for all 287 that get one (``holo`` is Helga, ``hologram_b`` Anita's hologram, ``sc31_guard``
  Officer Blunt, ``jobsworth`` Hobbins). The labels stay heuristic (checked on samples of every character's
  subtitles, not line by line).

A file is addressed by the member path ``<.../sky.dsk>::<file number>`` (see ``game_audio``).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from detector.audio import u8_to_float

SKY_DSK = "sky.dsk"
SKY_DNR = "sky.dnr"
SKY_CPT = "sky.cpt"
SPEECH_RATE = 11025
HEADER_LEN = 22                      # sizeof(DataFileHeader)
RNC1_MAGIC = b"RNC\x01"
RNC_HEADER_LEN = 18
SPEECH_BASE = 50000
SECTION_START = (0, 600, 1100, 2430, 3380, 4530, 5080, 5230)   # _speechConvertTable, sections 0..7
INTRO_SFX = range(59494, 59500)      # fire crackle, helicopter: background effects, never speech
SCRIPT_MODULES = range(60400, 60407)
TALK_TABLE_ID = 0xBC                 # compact list holding the talk animations ("data_7")
_SPEAK_MCODES = {35 * 4, 36 * 4, 37 * 4, 38 * 4}   # fnSpeakMe, fnSpeakMeDir, fnSpeakWait, fnSpeakWaitDir
_SPEAK_DIR_MCODES = {36 * 4, 38 * 4}
_ASK_THIS_MCODE = 70 * 4                           # fnAskThis: a dialogue option, spoken by Foster
_OP_PUSH_NUMBER, _OP_CALL_MCODE = 2, 11

# CD intro voice-overs (CDV_00..CDV_87) and their speakers from intro.cpp's comments. CDV_28 and CDV_44 are
# defined but never played: no speaker.
INTRO_VOICES: dict[int, tuple[str, str]] = {
    59500: ("CDV_00", "foster"), 59504: ("CDV_01", "shaman"), 59505: ("CDV_02", "shaman"),
    59507: ("CDV_03", "shaman"), 59508: ("CDV_04", "shaman"), 59510: ("CDV_05", "shaman"),
    59511: ("CDV_06", "shaman"), 59513: ("CDV_07", "shaman"), 59514: ("CDV_08", "foster"),
    59515: ("CDV_09", "foster"), 59518: ("CDV_10", "foster"), 59520: ("CDV_11", "shaman"),
    59523: ("CDV_12", "shaman"), 59525: ("CDV_13", "foster"), 59527: ("CDV_14", "joey"),
    59528: ("CDV_15", "shaman"), 59531: ("CDV_16", "foster"), 59534: ("CDV_17", "foster"),
    59535: ("CDV_18", "shaman"), 59536: ("CDV_19", "joey"), 59539: ("CDV_20", "joey"),
    59541: ("CDV_21", "foster"), 59545: ("CDV_22", "foster"), 59546: ("CDV_23", "foster"),
    59551: ("CDV_24", "reich"), 59554: ("CDV_25", "reich"), 59556: ("CDV_26", "foster"),
    59558: ("CDV_27", "shaman"), 59561: ("CDV_28", ""), 59562: ("CDV_29", "reich"),
    59563: ("CDV_30", "guard(intro)"), 59565: ("CDV_31", "reich"), 59566: ("CDV_32", "reich"),
    59567: ("CDV_33", "reich"), 59568: ("CDV_34", "reich"), 59570: ("CDV_35", "reich"),
    59574: ("CDV_36", "foster"), 59576: ("CDV_37", "foster"), 59579: ("CDV_38", "foster"),
    59581: ("CDV_39", "foster"), 59583: ("CDV_40", "shaman"), 59587: ("CDV_41", "shaman"),
    59588: ("CDV_42", "foster"), 59590: ("CDV_43", "shaman"), 59594: ("CDV_44", ""),
    59596: ("CDV_45", "foster"), 59600: ("CDV_46", "foster"), 59602: ("CDV_47", "foster"),
    59606: ("CDV_48", "foster"), 59610: ("CDV_49", "foster"), 59612: ("CDV_50", "foster"),
    59613: ("CDV_51", "foster"), 59614: ("CDV_52", "foster"), 59615: ("CDV_53", "joey"),
    59616: ("CDV_54", "foster"), 59618: ("CDV_55", "shaman"), 59621: ("CDV_56", "shaman"),
    59622: ("CDV_57", "shaman"), 59624: ("CDV_58", "reich"), 59627: ("CDV_59", "reich"),
    59628: ("CDV_60", "reich"), 59629: ("CDV_61", "foster"), 59630: ("CDV_62", "foster"),
    59631: ("CDV_63", "shaman"), 59632: ("CDV_64", "guard(intro)"), 59633: ("CDV_65", "foster"),
    59635: ("CDV_66", "reich"), 59639: ("CDV_67", "foster"), 59642: ("CDV_68", "foster"),
    59644: ("CDV_69", "foster"), 59647: ("CDV_70", "guard(intro)"), 59648: ("CDV_71", "reich"),
    59649: ("CDV_72", "foster"), 59654: ("CDV_73", "foster"), 59655: ("CDV_74", "reich"),
    59656: ("CDV_75", "foster"), 59659: ("CDV_76", "foster"), 59660: ("CDV_77", "foster"),
    59663: ("CDV_78", "foster"), 59664: ("CDV_79", "reich"), 59665: ("CDV_80", "foster"),
    59666: ("CDV_81", "foster"), 59667: ("CDV_82", "guard(intro)"), 59668: ("CDV_83", "foster"),
    59669: ("CDV_84", "guard(intro)"), 59670: ("CDV_85", "guard(intro)"), 59671: ("CDV_86", "foster"),
    59672: ("CDV_87", "foster"),
}

# Talk-animation name -> character. First match wins; the name is cut at "_to_" first ("son_to_dad": the son
# speaks). Machines, holograms and transmissions keep labels of their own so that callers can tell them from
# the human characters: Joey (in his welder shell too), Medi, Ken (Joey in the android body), the android, the
# monitor, the jukebox, Anita's and Helga's holograms, Mrs Piermont on the phone, and Foster in LINC's chair
# (sc81_fos_sat_tlk: a scream and LINC speaking through him, "I am LINC.").
TALK_RULES: tuple[tuple[str, str], ...] = (
    (r"anita_holo", "anita(holo)"), (r"sc81_fos_sat", "foster(linc)"),
    (r"(fost|big_f_|rad_|foster|fsit|sc42_fos|sc81_fos|crouch)", "foster"),
    (r"(joey|welder)", "joey"), (r"(big_j_|jobs)", "hobbins"),
    (r"(smlguard|skorl|big_ss)", "guard/ss"), (r"anita", "anita"), (r"lamb", "lamb"),
    (r"(foreman|forprod)", "foreman"), (r"shades", "shades"), (r"monitor", "monitor"),
    (r"sc81_dad", "father"), (r"dad", "dad"), (r"^son", "son"), (r"radman", "radman"),
    (r"walter", "walter"), (r"burke", "burke"), (r"anchor", "anchor"), (r"trevor", "trevor"),
    (r"medi", "medi"), (r"(gall|gal_)", "gallagher"), (r"helga", "helga(holo)"), (r"ken_", "ken"),
    (r"android", "android"), (r"dani", "danielle"), (r"henri", "henri"), (r"vinc", "vincent"),
    (r"(sc31_guard|blunt)", "blunt"), (r"phone", "piermont(phone)"), (r"garden", "gardener"),
    (r"barman", "barman"), (r"col_", "colston"), (r"juke", "jukebox"), (r"babs", "babs"),
    (r"(judge|jdg)", "judge"), (r"pros", "prosecutor"), (r"clerk", "clerk"),
)
_TALK_RULES = tuple((re.compile(rx), who) for rx, who in TALK_RULES)


class SkyDataError(ValueError):
    """Beneath a Steel Sky data that cannot be read: truncated, corrupt or not what the format says."""


class RncError(SkyDataError):
    """An RNC ProPack stream that does not decode (bad signature, truncated, bad CRC, bad Huffman code)."""


# ---------------------------------------------------------------------------------------------------------
# sky.dnr / sky.dsk
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DnrEntry:
    number: int
    offset: int     # byte offset in sky.dsk
    size: int       # stored size in bytes
    flags: int      # the 24-bit flag/size word

    @property
    def stored_raw(self) -> bool:
        """Bit 23: never RNC-packed, whatever the header says."""
        return bool(self.flags >> 23 & 1)

    @property
    def drops_header(self) -> bool:
        """Bit 22: the unpacked data is returned without the stored 22-byte header."""
        return bool(self.flags >> 22 & 1)


def parse_dnr(raw: bytes) -> dict[int, DnrEntry]:
    """File number -> entry, from the bytes of ``sky.dnr`` (the first entry of a number wins)."""
    if len(raw) < 4:
        raise SkyDataError("sky.dnr: shorter than its 4-byte entry count")
    (count,) = struct.unpack_from("<I", raw, 0)
    if count == 0 or len(raw) < 4 + 8 * count:
        raise SkyDataError(f"sky.dnr: {count} entries need {4 + 8 * count} bytes, the file has {len(raw)}")
    a = np.frombuffer(raw, np.uint8, 8 * count, 4).reshape(count, 8).astype(np.int64)
    number = a[:, 0] | a[:, 1] << 8
    offset = a[:, 2] | a[:, 3] << 8 | a[:, 4] << 16
    flags = a[:, 5] | a[:, 6] << 8 | a[:, 7] << 16
    offset = np.where(offset >> 23 & 1, (offset & 0x7FFFFF) << 4, offset)
    table: dict[int, DnrEntry] = {}
    for n, o, f in zip(number.tolist(), offset.tolist(), flags.tolist(), strict=True):
        if n not in table:
            table[n] = DnrEntry(n, o, f & 0x3FFFFF, f)
    return table


def _dnr_path(dsk: str | Path) -> Path:
    return Path(dsk).with_name(SKY_DNR)


@lru_cache(maxsize=4)
def _cached_dnr(dnr: str, dsk_size: int, mtime_ns: int, size: int) -> dict[int, DnrEntry]:
    table = parse_dnr(Path(dnr).read_bytes())
    for e in table.values():
        if e.offset + e.size > dsk_size:
            raise SkyDataError(f"{dnr}: file {e.number} runs past the end of {SKY_DSK} ({dsk_size} bytes)")
    return table


def dnr_table(dsk: str | Path) -> dict[int, DnrEntry]:
    """The dinner table that goes with ``<folder>/sky.dsk`` (read once per file version and cached)."""
    dnr = _dnr_path(dsk)
    st = os.stat(dnr)
    return _cached_dnr(str(dnr), os.path.getsize(dsk), st.st_mtime_ns, st.st_size)


def _read_stored(dsk: str | Path, entry: DnrEntry, limit: int | None = None) -> bytes:
    want = entry.size if limit is None else min(limit, entry.size)
    with open(dsk, "rb") as f:
        f.seek(entry.offset)
        data = f.read(want)
    if len(data) != want:
        raise SkyDataError(f"{dsk}: file {entry.number} is truncated ({len(data)} of {want} bytes)")
    return data


def _header_words(data: bytes, number: int) -> tuple[int, int]:
    if len(data) < HEADER_LEN:
        raise SkyDataError(f"file {number}: {len(data)} bytes, shorter than its {HEADER_LEN}-byte header")
    flag, tot = struct.unpack_from("<H10xH", data, 0)
    return flag, tot


def unpack_file(data: bytes, entry: DnrEntry, check_crc: bool = True) -> bytes:
    """The game's view of a stored file (``Disk::loadFile``): unpacked if it is RNC-packed."""
    if entry.stored_raw:
        return data
    flag, tot = _header_words(data, entry.number)
    if not flag >> 7 & 1:
        return data
    expected = ((flag & 0xFF00) << 8) | tot
    try:
        body = rnc1_unpack(data[HEADER_LEN:], check_crc)
    except RncError as exc:
        raise RncError(f"file {entry.number}: {exc}") from None
    out = body if entry.drops_header else data[:HEADER_LEN] + body
    if len(out) != expected:
        raise SkyDataError(f"file {entry.number}: unpacked to {len(out)} bytes, its header says {expected}")
    return out


def _entry(dsk: str | Path, number: int) -> DnrEntry:
    table = dnr_table(dsk)
    if number not in table:
        raise KeyError(f"file {number} is not in {_dnr_path(dsk)}")
    return table[number]


def load_file(dsk: str | Path, number: int, check_crc: bool = True) -> bytes:
    """File ``number`` of ``sky.dsk``, unpacked (KeyError if the dinner table has no such file)."""
    entry = _entry(dsk, number)
    return unpack_file(_read_stored(dsk, entry), entry, check_crc)


# ---------------------------------------------------------------------------------------------------------
# RNC ProPack method 1
# ---------------------------------------------------------------------------------------------------------

def _crc_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ 0xA001, t >> 1)
    return t.astype(np.uint32)


_CRC = _crc_table()
_CRC_ROW = 64            # bytes per lane of the vectorised CRC
_CRC_LEVELS = 26         # combine tables for up to 64 << 25 bytes


def _zero_shift_basis(nbytes: int) -> list[int]:
    """Images of the 16 unit CRC states after ``nbytes`` zero bytes (the map is linear over GF(2))."""
    crc = _CRC.tolist()
    out = []
    for bit in range(16):
        c = 1 << bit
        for _ in range(nbytes):
            c = crc[c & 0xFF] ^ (c >> 8)
        out.append(c)
    return out


def _apply(basis: list[int], c: int) -> int:
    r = 0
    for bit in range(16):
        if c >> bit & 1:
            r ^= basis[bit]
    return r


def _shift_tables() -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level j: (low-byte, high-byte) tables of the state after ``_CRC_ROW << j`` zero bytes."""
    basis = _zero_shift_basis(_CRC_ROW)
    tables = []
    values = np.arange(256)
    for _ in range(_CRC_LEVELS):
        lo = np.zeros(256, np.uint32)
        hi = np.zeros(256, np.uint32)
        for bit in range(8):
            lo ^= np.where(values >> bit & 1, basis[bit], 0).astype(np.uint32)
            hi ^= np.where(values >> bit & 1, basis[bit + 8], 0).astype(np.uint32)
        tables.append((lo, hi))
        basis = [_apply(basis, b) for b in basis]     # twice as many zero bytes
    return tables


_SHIFT = _shift_tables()


def rnc_crc(data: bytes) -> int:
    """CRC-16 of RNC ProPack (reflected polynomial 0xA001, initial value 0, no final XOR).

    Vectorised: with an initial value of 0, leading zero bytes leave the CRC unchanged and the CRC of
    ``A + B`` is the CRC of ``A`` advanced over ``len(B)`` zero bytes, XOR the CRC of ``B``. So the data is
    zero-padded in front to ``64 * 2**k`` bytes, the 64-byte rows are run in parallel and the row CRCs are
    combined pairwise with precomputed "advance over n zero bytes" tables.
    """
    n = len(data)
    if n == 0:
        return 0
    rows = -(-n // _CRC_ROW)
    k = max(rows - 1, 0).bit_length()
    if k > _CRC_LEVELS:
        raise ValueError(f"rnc_crc: {n} bytes is more than this implementation combines")
    buf = np.zeros((1 << k) * _CRC_ROW, np.uint8)
    buf[buf.size - n:] = np.frombuffer(data, np.uint8)
    lanes = buf.reshape(-1, _CRC_ROW)
    crc = np.zeros(lanes.shape[0], np.uint32)
    for j in range(_CRC_ROW):
        crc = _CRC[(crc ^ lanes[:, j]) & 0xFF] ^ (crc >> 8)
    level = 0
    while crc.size > 1:
        lo, hi = _SHIFT[level]
        a, b = crc[0::2], crc[1::2]
        crc = lo[a & 0xFF] ^ hi[a >> 8] ^ b
        level += 1
    return int(crc[0])


def _huffman_lut(lengths: list[int]) -> tuple[list[int], int]:
    """Canonical code (as the packer builds it) -> lookup table indexed by the next ``width`` stream bits.

    Entries are ``(code length << 8) | symbol``; -1 marks bit patterns that start no code.
    """
    width = max(lengths)
    lut = np.full(1 << width, -1, np.int32)
    code = 0
    for length in range(1, 17):
        for sym, n in enumerate(lengths):
            if n != length:
                continue
            if code >> 16:
                raise RncError("over-full Huffman table")
            c = code >> (16 - length)
            rev = int(f"{c:0{length}b}"[::-1], 2)       # codes are read LSB-first
            lut[rev::1 << length] = length << 8 | sym
            code += 1 << (16 - length)
    return lut.tolist(), width


def rnc1_unpack(stream: bytes, check_crc: bool = True) -> bytes:
    """Decode an RNC ProPack method-1 stream (``b"RNC\\x01"`` + 18-byte header + packed data)."""
    if len(stream) < RNC_HEADER_LEN or stream[:4] != RNC1_MAGIC:
        raise RncError("no RNC method-1 signature")
    unpacked_len, packed_len, crc_unpacked, crc_packed = struct.unpack_from(">IIHH", stream, 4)
    blocks = stream[17]
    src = stream[RNC_HEADER_LEN:RNC_HEADER_LEN + packed_len]
    if len(src) != packed_len:
        raise RncError(f"packed data truncated ({len(src)} of {packed_len} bytes)")
    if check_crc and rnc_crc(src) != crc_packed:
        raise RncError("CRC of the packed data does not match (corrupt data)")
    end = packed_len
    src += b"\0\0\0\0"       # the bit reader may look ahead past the end
    pos = 0                  # next byte not yet loaded into the bit buffer
    buf = 0                  # bit buffer, LSB = next bit
    nbits = 0                # valid bits in buf

    def fill(k: int) -> None:
        nonlocal pos, buf, nbits
        while nbits < k:
            if pos > end + 2:       # one look-ahead word past the end is normal, two are not
                raise RncError("bit stream runs past the end of the packed data")
            buf |= (src[pos] | src[pos + 1] << 8) << nbits
            pos += 2
            nbits += 16

    def bits(k: int) -> int:
        nonlocal buf, nbits
        if nbits < k:
            fill(k)
        v = buf & ((1 << k) - 1)
        buf >>= k
        nbits -= k
        return v

    def table() -> tuple[list[int], int] | None:
        count = bits(5)
        if count == 0:
            return None
        lengths = [bits(4) for _ in range(count)]
        if not any(lengths):
            raise RncError("Huffman table without codes")
        return _huffman_lut(lengths)

    def value(tab: tuple[list[int], int] | None) -> int:
        nonlocal buf, nbits
        if tab is None:
            raise RncError("Huffman table used before it was defined")
        lut, width = tab
        if nbits < width:
            fill(width)
        e = lut[buf & ((1 << width) - 1)]
        if e < 0:
            raise RncError("bit pattern that starts no Huffman code")
        n = e >> 8
        buf >>= n
        nbits -= n
        sym = e & 0xFF
        return bits(sym - 1) | 1 << (sym - 1) if sym >= 2 else sym

    out = bytearray()
    raw_t = pos_t = len_t = None
    bits(2)                      # two leading flag bits
    for _ in range(blocks):
        raw_t = table() or raw_t
        pos_t = table() or pos_t
        len_t = table() or len_t
        counts = bits(16)
        if counts == 0:
            raise RncError("block with no tokens")
        while True:
            n = value(raw_t)
            if n:
                # literal bytes follow the partly read word: hand back whole words only looked at
                back = nbits >> 4
                if back:
                    pos -= 2 * back
                    nbits -= 16 * back
                    buf &= (1 << nbits) - 1
                if pos + n > end:
                    raise RncError("literal run past the end of the packed data")
                out += src[pos:pos + n]
                pos += n
            counts -= 1
            if counts == 0:
                break
            offset = value(pos_t) + 1
            length = value(len_t) + 2
            start = len(out) - offset
            if start < 0:
                raise RncError("match points before the start of the output")
            if offset >= length:
                out += out[start:start + length]
            else:                    # overlapping copy: the last `offset` bytes repeat
                out += (out[start:] * (length // offset + 1))[:length]
            if len(out) > unpacked_len:
                raise RncError(f"unpacks to more than the {unpacked_len} bytes of its header")
    if len(out) != unpacked_len:
        raise RncError(f"unpacked {len(out)} bytes, the header says {unpacked_len}")
    if check_crc and rnc_crc(bytes(out)) != crc_unpacked:
        raise RncError("CRC of the unpacked data does not match (corrupt data)")
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
# Speech files
# ---------------------------------------------------------------------------------------------------------

def speech_number(text_num: int) -> int | None:
    """The speech file of in-game text number ``text_num`` (section in bits 12-15), None past section 7."""
    section = text_num >> 12
    if section >= len(SECTION_START):
        return None
    return SPEECH_BASE + SECTION_START[section] + (text_num & 0xFFF)


def is_ingame_speech(number: int) -> bool:
    return SPEECH_BASE <= number < INTRO_SFX.start


def speech_numbers(table: dict[int, DnrEntry]) -> list[int]:
    """Every speech file the dinner table holds: in-game lines, then the intro voice-overs."""
    ingame = [n for n in table if is_ingame_speech(n)]
    intro = [n for n in INTRO_VOICES if n in table]
    return sorted(ingame) + sorted(intro)


def _check_speech_number(number: int) -> None:
    if not (is_ingame_speech(number) or number in INTRO_VOICES):
        raise KeyError(f"file {number} is not a speech file (in-game 50000-59493 or an intro CDV file)")


def speech_bytes(dsk: str | Path, number: int, check_crc: bool = True) -> bytes:
    """The unsigned 8-bit PCM of speech file ``number`` (KeyError for files that are not speech)."""
    _check_speech_number(number)
    return load_file(dsk, number, check_crc)[HEADER_LEN:]


def decode_speech(dsk: str | Path, number: int, check_crc: bool = True) -> np.ndarray:
    """Speech file ``number`` as float32 at :data:`SPEECH_RATE` (SkyDataError if corrupt or empty)."""
    pcm = speech_bytes(dsk, number, check_crc)
    if not pcm:
        raise SkyDataError(f"file {number}: holds no audio samples")
    return u8_to_float(pcm)


def speech_duration(dsk: str | Path, number: int) -> float:
    """Seconds of speech file ``number``, from its header (reads 22 bytes; no unpacking)."""
    _check_speech_number(number)
    entry = _entry(dsk, number)
    if entry.drops_header:          # no speech file of 0.0372 has this flag: unpack to know the size
        return len(speech_bytes(dsk, number, check_crc=False)) / SPEECH_RATE
    flag, tot = _header_words(_read_stored(dsk, entry, HEADER_LEN), number)
    size = entry.size if entry.stored_raw or not flag >> 7 & 1 else ((flag & 0xFF00) << 8) | tot
    return max(size - HEADER_LEN, 0) / SPEECH_RATE


# ---------------------------------------------------------------------------------------------------------
# Speaker labels
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineLabel:
    """Who speaks a speech file, as far as the data tells."""

    character: str                  # one character, "" when unknown or conflicting
    evidence: str                   # "intro.cpp CDV_14", "talk_anim:dani_conv", "ask_this", ""
    candidates: tuple[str, ...] = ()   # every character the scripts point at (two or more: conflicting)

    @property
    def conflicting(self) -> bool:
        return len(self.candidates) > 1


def read_cpt(raw: bytes) -> tuple[dict[int, str], dict[int, list[int]]]:
    """``sky.cpt`` (compact data, version 0) -> (names, data words) by compact id ``(list << 12) | index``."""
    try:
        version, nlists = struct.unpack_from("<HH", raw, 0)
        if version != 0:
            raise SkyDataError(f"sky.cpt: unknown version {version}")
        p = 4
        list_lens = struct.unpack_from(f"<{nlists}H", raw, p)
        p += 2 * nlists
        _raw_words, src_words = struct.unpack_from("<II", raw, p)
        p += 8
        words = np.frombuffer(raw, "<u2", src_words, p).tolist()
        p += 2 * src_words
        (ascii_size,) = struct.unpack_from("<I", raw, p)
        text = raw[p + 4:p + 4 + ascii_size]
        names: dict[int, str] = {}
        data: dict[int, list[int]] = {}
        wp = tp = 0
        for lst, count in enumerate(list_lens):
            for i in range(count):
                size = words[wp]
                wp += 1
                if not size:
                    continue
                cid = lst << 12 | i
                wp += 1                                 # compact type
                end = text.index(b"\0", tp)
                names[cid] = text[tp:end].decode("latin-1")
                tp = end + 1
                data[cid] = words[wp:wp + size]
                wp += size
    except (struct.error, ValueError, IndexError) as exc:
        if isinstance(exc, SkyDataError):
            raise
        raise SkyDataError(f"sky.cpt: not readable ({exc})") from None
    return names, data


def talk_character(name: str) -> str | None:
    """The character of a talk animation name (``dani_conv`` -> ``danielle``), None if unknown."""
    who = name.split("_to_")[0]
    for rx, character in _TALK_RULES:
        if rx.search(who):
            return character
    return None


def script_speech_calls(words: list[int]) -> list[tuple[int, int | None, bool]]:
    """(text number, talk animation or None for fnAskThis, directional call) of every speech call whose text
    number and animation are pushed as literals."""
    out: list[tuple[int, int | None, bool]] = []
    for i in range(4, len(words) - 2):
        if words[i] != _OP_CALL_MCODE or words[i - 4] != _OP_PUSH_NUMBER:
            continue
        argc, mcode = words[i + 1], words[i + 2]
        if argc == 3 and mcode in _SPEAK_MCODES and words[i - 2] == _OP_PUSH_NUMBER:
            out.append((words[i - 3], words[i - 1], mcode in _SPEAK_DIR_MCODES))
        elif argc == 2 and mcode == _ASK_THIS_MCODE:
            out.append((words[i - 3], None, False))
    return out


def talk_speaker(talk_names: list[str], anim: int, directional: bool) -> tuple[str | None, str]:
    """(character, talk table entry name) of a speech call's animation argument; (None, ...) if unknown.

    The game shows entry ``anim`` + the speaker's mega-set (sprite set, 0-3; Foster's is usually 1), plus
    ``2 * direction`` for the Dir calls. Entry 0 means "no animation": unknown. Other calls: a named entry
    names the speaker; an empty one is the base of a speaker with mega-set 1, so the next entry does. Dir
    calls: the four directions' entries are read for mega-sets 0 and 1, and the mega-set with more named
    entries names the speaker (Foster's base 9 gives big_f_up/down/left/right at mega-set 1, Hobbins's base
    17 big_j_up/left/right, although entry 17 itself is Foster's rad_right); a tie must name one character
    (Joey's base 59: joey_talk_* and, in the welder shell, welder_*).
    """

    def name(a: int) -> str:
        return talk_names[a] if 0 <= a < len(talk_names) else ""

    if anim == 0:
        return None, ""
    if not directional:
        entry = name(anim) or name(anim + 1)
        return (talk_character(entry), entry) if entry else (None, "")
    sets = [[name(anim + 2 * d + m) for d in range(4) if name(anim + 2 * d + m)] for m in range(2)]
    most = max(len(s) for s in sets)
    best = [n for s in sets if len(s) == most for n in s]
    who = {talk_character(n) for n in best}
    if most and len(who) == 1 and None not in who:
        return who.pop(), best[0]
    return None, ",".join(sorted(set(best)))


def label_lines(talk_names: list[str], modules: list[list[int]]) -> dict[int, LineLabel]:
    """In-game speech file -> label, from the talk table's names and the script modules' words."""
    seen: dict[int, dict[str, str]] = {}
    for words in modules:
        for text_num, anim, directional in script_speech_calls(words):
            if anim is None:
                who, evidence = "foster", "ask_this"
            else:
                who, name = talk_speaker(talk_names, anim, directional)
                evidence = f"talk_anim:{name}"
            number = speech_number(text_num)
            if who and number is not None:
                seen.setdefault(number, {}).setdefault(who, evidence)
    out: dict[int, LineLabel] = {}
    for number, by_who in seen.items():
        if len(by_who) == 1:
            (who, evidence), = by_who.items()
            out[number] = LineLabel(who, evidence, (who,))
        else:
            out[number] = LineLabel("", "conflict:" + ",".join(sorted(by_who)), tuple(sorted(by_who)))
    return out


@lru_cache(maxsize=4)
def _cached_labels(dsk: str, cpt: str, stamp: tuple[int, ...]) -> dict[int, LineLabel]:
    names, data = read_cpt(Path(cpt).read_bytes())
    if TALK_TABLE_ID not in data:
        raise SkyDataError(f"{cpt}: no talk table (compact {TALK_TABLE_ID:#x})")
    talk = [names.get(cid, "") for cid in data[TALK_TABLE_ID]]
    table = dnr_table(dsk)
    modules = []
    for m in SCRIPT_MODULES:
        if m in table:
            raw = load_file(dsk, m)
            modules.append(np.frombuffer(raw[: len(raw) // 2 * 2], "<u2").tolist())
    ingame = label_lines(talk, modules)
    out: dict[int, LineLabel] = {}
    for number in speech_numbers(table):
        if number in INTRO_VOICES:
            tag, who = INTRO_VOICES[number]
            out[number] = LineLabel(who, f"intro.cpp {tag}", (who,) if who else ())
        else:
            out[number] = ingame.get(number, LineLabel("", ""))
    return out


def speaker_labels(dsk: str | Path) -> dict[int, LineLabel]:
    """Speech file -> label for every speech file of ``<folder>/sky.dsk`` (needs ``sky.cpt`` beside it;
    computed once per data version and cached)."""
    cpt = Path(dsk).with_name(SKY_CPT)
    stats = [os.stat(p) for p in (dsk, cpt, _dnr_path(dsk))]
    stamp = tuple(x for st in stats for x in (st.st_mtime_ns, st.st_size))
    return _cached_labels(str(dsk), str(cpt), stamp)
