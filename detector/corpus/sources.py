"""Inventory of bona fide (human) speech shipped in Debian packages.

Every pack is described by the package that ships it, the folder(s) it installs, its language, the
speaker(s) and the licence read from the package's copyright file. Rules:

- Files are listed from the package itself (``dpkg-query -L``) or, for packages unpacked with
  ``apt-get download`` + ``dpkg-deb -x`` into ``<packages_dir>/<package>/``, by walking that folder.
  Symlinks are never followed when they point to an absolute path (``/usr/share/asterisk/sounds/en ->
  /etc/alternatives/...`` would duplicate a pack under another name).
- Packs stored as GSM 06.10 (13 kbit/s) are flagged ``gsm=True``: they already went through a lossy
  speech codec, which a detector could learn as a "human" cue, so the report shows them separately.
- Packs spoken by the same person are merged into one speaker *group* (Allison Smith recorded both the
  US-English and the Mexican-Spanish Asterisk prompts). Splits are made by group, never by pack.
- Game voice acting (Fish Fillets NG) is split by character: the two fish are each voiced by one actor
  per language; the minor characters of one language are pooled (actors not credited in the package)
  and kept in the same group as that language's fish, so an actor who voices several roles cannot leak
  across splits.
- Tux Paint stamp descriptions (``*_desc_<lang>.ogg``): one volunteer reader per language, credited in
  the package changelog; languages with a few clips only are minor groups; Brazilian Portuguese (school
  children) is left out.
- Flight of the Amazon Queen: speech entries of the ``queen.1c`` archive, named by ScummVM's scheme
  (``engines/queen/talk.cpp``, ``logic.cpp``, ``cutaway.cpp``): Joe King is his own speaker and group;
  every other character and all cut-scene lines (speaker not in the name, Joe included) are pooled in
  ``fotaq_cast``. MP3 at 16 kbit/s: flagged in ``codec_history`` like GSM.
- Drascula (English ``drascula`` and Spanish ``drascula-spanish``; never ``drascula-italian``, which is the
  English audio again): ``*.ALS`` roles from the file-name prefix (``engines/drascula/talk.cpp``), one group
  per language. Symlinks are skipped (the Spanish package links a few English files).
- Beneath a Steel Sky: the CD speech inside ``sky.dsk`` (``detector.corpus.sky_audio``), one group ``bass``
  (uncredited actors double roles): Robert Foster is ``bass_foster``, every other human character and the
  intro's shaman, Reich and guard are pooled in ``bass_cast``. Left out: machines, holograms and transmitted
  or processed voices (Joey and his shells, the monitor, the jukebox, the holograms, the phone, LINC speaking
  through Foster, the muffled radiation-suit man) and lines whose speaker is unknown or conflicting.
- ``codec_history`` names any lossy coding a pack went through before the build (gsm, mp3-16k, pcm-u8):
  a detector could learn it as a "human" cue, so the report lists these packs.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.corpus.sky_audio import LineLabel

AUDIO_SUFFIXES = {".wav", ".gsm", ".ogg"}


@dataclass
class Pack:
    """One speaker's recordings from one package."""

    package: str
    speaker: str
    group: str
    language: str
    licence: str
    gsm: bool
    files: list[Path] = field(default_factory=list)
    note: str = ""
    codec_history: str = ""            # lossy coding before the build: "", gsm, mp3-16k, pcm-u8
    max_minutes: float | None = None   # full build: use at most this much of the pack (None = all)

    @property
    def key(self) -> str:
        return f"{self.package}:{self.speaker}"


@dataclass(frozen=True)
class PackSpec:
    package: str
    subdir: str                 # folder under the package's file tree holding the pack
    speaker: str
    group: str
    language: str
    licence: str
    note: str = ""


ASTERISK = "usr/share/asterisk/sounds"
PACKS: list[PackSpec] = [
    PackSpec("asterisk-core-sounds-en-wav", f"{ASTERISK}/en_US_f_Allison", "allison_smith", "allison_smith", "en",
             "CC-BY-SA-3.0", "Allison Smith, professional IVR voice"),
    PackSpec("asterisk-core-sounds-es-wav", f"{ASTERISK}/es_MX_f_Allison", "allison_smith", "allison_smith", "es",
             "CC-BY-SA-3.0", "same speaker as en_US_f_Allison: merged group"),
    PackSpec("asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June", "june_wallack", "june_wallack", "fr",
             "CC-BY-SA-3.0"),
    PackSpec("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo", "carlo_flora", "carlo_flora", "it",
             "CC-BY-SA-3.0"),
    PackSpec("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU", "ivrvoice_ru", "ivrvoice_ru", "ru",
             "CC-BY-SA-3.0", "voice from ivrvoice.ru (credited as Maxim)"),
    PackSpec("asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi", "paola_dal_zot", "paola_dal_zot",
             "it", "CC-BY-SA-3.0-IT", "Marco Menardi / Paola Dal Zot"),
    PackSpec("asterisk-prompt-es-co", f"{ASTERISK}", "july_jimenez", "july_jimenez", "es", "GPL-2+",
             "Colombian Spanish, Avatar Ltda. / July E. Jimenez"),
    PackSpec("asterisk-prompt-fr-armelle", f"{ASTERISK}", "armelle_desjardins", "armelle_desjardins", "fr",
             "GPL-2+"),
    PackSpec("asterisk-prompt-fr-proformatique", f"{ASTERISK}", "proformatique_fr", "proformatique_fr", "fr",
             "GPL-2", "voice actor not credited"),
    PackSpec("asterisk-prompt-de", f"{ASTERISK}", "beronet_de", "beronet_de", "de", "GPL-2",
             "Beronet GmbH / 8hertz GmbH"),
]
FILLETS = [("fillets-ng-data-cs", "cs"), ("fillets-ng-data-nl", "nl")]
FILLETS_LICENCE = "GPL-2"
FILLETS_ROLES = {"m": "small_fish", "v": "big_fish"}
FILLETS_SKIP_ROLES = {"x"}  # sound effects, not speech
KLETTRES = "klettres-data"
KLETTRES_LICENCE = "GPL-2+ / GFDL-1.2+"
KLETTRES_LANG = {"en_GB": "en", "pt_BR": "pt"}

# Tux Paint: spoken stamp descriptions, one volunteer per language (usr/share/doc/.../changelog.gz:
# "Descriptive sounds by ..."; Google Code-In students for be/bg/fr/ro/ru).
TUXPAINT = "tuxpaint-stamps-default"
TUXPAINT_LICENCE = "GPL-2"
TUXPAINT_DIR = "usr/share/tuxpaint/stamps"
TUXPAINT_RE = re.compile(r"_desc(?:_([A-Za-z@_]+?))?\.(?:ogg|wav)(?:\.ogg)?$")   # no language = English
TUXPAINT_SPEAKERS = {  # language -> (speaker = group, note)
    "be": ("kseniya_buraya", "Kseniya Buraya (f), Google Code-In"),
    "bg": ("krasimir_petkov", "Krasimir Petkov (m), Google Code-In"),
    "ca": ("tuxpaint_ca", "Catalan reader not credited (one male voice)"),
    "da": ("joe_dalton", "Joe Dalton (m)"),
    "el": ("kiriaki_serafeim", "Kiriaki Serafeim (f)"),
    "es": ("estefania_ortiz", "Estefania Ortiz (f)"),
    "fr": ("tuxpaint_fr", "Jacques Chion and/or PaulK (mostly one low male voice)"),
    "ro": ("tuxpaint_ro_tabbytha", "'Tabbytha' (f), Google Code-In"),
    "ru": ("edwin_veber", "Edwin Veber (m), Google Code-In"),
}
TUXPAINT_SKIP = {"pt_BR": "recorded by school children: left out of an adult-caller corpus"}
TUXPAINT_MINOR_NOTE = "a few clips; reader(s) not credited: minor group"

# Flight of the Amazon Queen (ScummVM talkie): speech inside one QTBL archive.
FOTAQ = "flight-of-the-amazon-queen"
FOTAQ_LICENCE = "Flight-of-the-Amazon-Queen-License (freeware)"
FOTAQ_ARCHIVE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
FOTAQ_MAX_MINUTES = {"fotaq_joe": 30.0, "fotaq_cast": 45.0}   # ~75 and ~190 min in the package
FOTAQ_CODEC = "mp3-16k"
_FOTAQ_TALK = re.compile(r"^(\d\d)([0-9A-F]{4}|SSSS|XXXX)([JP])[0-9A-F]$")  # "%2d%4xJ" + segment (talk.cpp)
_FOTAQ_JOE = re.compile(r"^JOE\d{4}[0-9A-F]$")                               # "JOE%04i" + segment (logic.cpp)
_FOTAQ_CUTAWAY_LINE = re.compile(r"^([A-Z0-9_]{5})(\d{3})$")                  # cutaway name padded to 5 + line

# Drascula: headerless 8-bit ALS files; the Italian package is the English audio again: never listed.
DRASCULA = {"drascula": ("en", "usr/share/scummvm/drascula/en"),
            "drascula-spanish": ("es", "usr/share/scummvm/drascula/es")}
DRASCULA_NEVER = "drascula-italian"
DRASCULA_LICENCE = "Drascula-License (freeware)"
DRASCULA_CODEC = "pcm-u8"
DRASCULA_PREFIX = {"": "hacker", "VB": "vonbraun", "BJ": "bj", "I": "igor", "T": "bartender", "B": "drunk",
                   "P": "pianist"}   # L (werewolf), E, S, F: minor roles, pooled


# Beneath a Steel Sky (ScummVM CD talkie 0.0372): RNC-packed 8-bit speech inside sky.dsk, speakers labelled
# from the game scripts (sky_audio.speaker_labels).
BASS = "beneath-a-steel-sky"
BASS_LICENCE = "Beneath-a-Steel-Sky-License (freeware)"
BASS_DIR = "usr/share/scummvm/beneath-a-steel-sky"
BASS_GROUP = "bass"
BASS_MAX_MINUTES = {"bass_foster": 30.0, "bass_cast": 45.0}
BASS_CODEC = "pcm-u8"
# labels of voices that are not natural human speech: never bona fide
BASS_NOT_HUMAN = {
    "joey": "robot (also in his welder shell)", "medi": "medical robot, one of Joey's shells",
    "ken": "Joey in the android Ken's body", "android": "android", "monitor": "security robot",
    "jukebox": "talking jukebox", "anita(holo)": "Anita's hologram", "helga(holo)": "hologram receptionist",
    "piermont(phone)": "voice on the telephone", "foster(linc)": "LINC speaking through Foster in its chair",
    "radman": "muffled gibberish inside a radiation suit",
}
BASS_ROLES = ("foster", "cast")
BASS_EXCLUDED = ("not_human", "unlabelled", "conflicting")


def default_packages_dir() -> Path:
    return Path(os.environ.get("CALLGUARD_PACKAGES_DIR", Path(__file__).resolve().parents[2] / "data" / "packages"))


def _dpkg_files(package: str) -> list[Path] | None:
    try:
        proc = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [Path(line) for line in proc.stdout.splitlines() if line.startswith("/")]


def _walk_no_abs_links(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            p = base / name
            if p.is_symlink() and os.path.isabs(os.readlink(p)):
                dirnames.remove(name)
        for name in filenames:
            p = base / name
            if p.is_symlink() and os.path.isabs(os.readlink(p)):
                continue
            yield p


def package_files(package: str, packages_dir: Path | None = None) -> tuple[list[Path], str]:
    """Audio files of a package and where they came from ('installed' or 'unpacked'); [] if absent."""
    listed = _dpkg_files(package)
    if listed:
        files = []
        for p in listed:
            if p.suffix.lower() not in AUDIO_SUFFIXES or not p.is_file():
                continue
            # the path listed by dpkg may cross a symlinked folder: keep only real locations
            if any(q.is_symlink() and os.path.isabs(os.readlink(q)) for q in [p, *p.parents]):
                continue
            files.append(p)
        return sorted(files), "installed"
    root = (packages_dir or default_packages_dir()) / package
    if root.is_dir():
        files = [p for p in _walk_no_abs_links(root) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
        return sorted(files), "unpacked"
    return [], "missing"


def _under(files: list[Path], subdir: str) -> list[Path]:
    return [p for p in files if f"/{subdir}/" in p.as_posix() + "/"]


def _fillets_role(path: Path) -> str | None:
    # "<level>-<role>-<line>.ogg", or "<role>-<line>.ogg" in a few levels (rush/m-silou.ogg)
    parts = path.stem.split("-")
    if len(parts) < 2:
        return "minor"
    role = parts[1] if len(parts) >= 3 else parts[0]
    if role in FILLETS_SKIP_ROLES:
        return None
    return FILLETS_ROLES.get(role, "minor")


def tuxpaint_voice(path: Path) -> tuple[str, str, str, str] | None:
    """(speaker, group, language, note) of a Tux Paint description clip, None if not one or left out."""
    m = TUXPAINT_RE.search(path.name)
    if not m:
        return None
    code = m.group(1) or "en"
    if code in TUXPAINT_SKIP:
        return None
    lang = KLETTRES_LANG.get(code, code)
    if code in TUXPAINT_SPEAKERS:
        speaker, note = TUXPAINT_SPEAKERS[code]
        return speaker, speaker, lang, note
    return f"tuxpaint_{code}", f"tuxpaint_{lang}", lang, TUXPAINT_MINOR_NOTE


def fotaq_role(name: str, cutaways: set[str]) -> str | None:
    """'joe', 'cast' or None (sound effects, credits, unknown) for a queen.1c entry name.

    ``cutaways`` holds the cut-scene names of the archive (``C12A`` for ``C12A.CUT``); their voice lines are
    ``<name padded with _ to 5><3 digits>.SB`` and go to the cast pool (speaker not in the name).
    """
    if not name.upper().endswith(".SB"):
        return None
    stem = name[:-3].upper()
    if _FOTAQ_JOE.match(stem):
        return "joe"
    m = _FOTAQ_TALK.match(stem)
    if m:
        return "joe" if m.group(3) == "J" else "cast"
    m = _FOTAQ_CUTAWAY_LINE.match(stem)
    if m and m.group(1).rstrip("_") in cutaways:
        return "cast"
    return None   # e.g. "1001SSSS" (stone door grind), "TOM_0826", "UNTITLED": not speech or unknown


def drascula_role(stem: str) -> str | None:
    """Role of a Drascula ``<prefix><n>.ALS`` file from ScummVM's talk_*() functions, or None.

    D files are Drascula's lines except: D57-D64 are the hero's lines in the blind-man scene
    (talk_hacker uses d-files), D68-D81 the blind man, D82 the bartender, D83 the trunk; D65-D67 are not
    attributed in talk.cpp and go to the pooled minor roles.
    """
    m = re.fullmatch(r"([A-Za-z]*)(\d+)", stem)
    if not m:
        return None
    prefix, num = m.group(1).upper(), int(m.group(2))
    if prefix == "D":
        if num <= 56:
            return "drascula"
        if num <= 64:
            return "hacker"
        return "bartender" if num == 82 else "minor"
    return DRASCULA_PREFIX.get(prefix, "minor")


def bass_role(label: LineLabel) -> str:
    """'foster', 'cast', or why the line is left out ('not_human', 'unlabelled', 'conflicting') for a
    ``sky_audio.LineLabel``."""
    if label.conflicting:
        return "conflicting"
    if not label.character:
        return "unlabelled"
    if label.character in BASS_NOT_HUMAN:
        return "not_human"
    return "foster" if label.character == "foster" else "cast"


def _unpacked_root(pkg: str, packages_dir: Path | None) -> Path | None:
    """The folder of a package: / when installed, data/packages/<pkg> when unpacked, else None."""
    if _dpkg_files(pkg):
        return Path("/")
    root = (packages_dir or default_packages_dir()) / pkg
    return root if root.is_dir() else None


def _tuxpaint_packs(packages_dir: Path | None) -> tuple[list[Pack], list[str]]:
    root = _unpacked_root(TUXPAINT, packages_dir)
    stamps = root / TUXPAINT_DIR if root else None
    if stamps is None or not stamps.is_dir():
        return [], [f"{TUXPAINT}: not found (optional; ./setup unpacks it into data/packages/)"]
    by_voice: dict[tuple[str, str, str, str], list[Path]] = {}
    for p in _walk_no_abs_links(stamps):
        if p.is_symlink() or not p.is_file():
            continue
        v = tuxpaint_voice(p)
        if v:
            by_voice.setdefault(v, []).append(p)
    return [Pack(TUXPAINT, spk, grp, lang, TUXPAINT_LICENCE, False, sorted(fs), note)
            for (spk, grp, lang, note), fs in sorted(by_voice.items())], []


KTUBERLING = "ktuberling-data"
KTUBERLING_LICENCE = "GPL-2+"
KTUBERLING_DIR = "usr/share/ktuberling/sounds"
# Languages whose reader may be a voice of the dev or eval split (that language's KLettres or Tux Paint voice is
# there: fr, ru, de, uk, nds, el) are never used, so dev and eval stay as they are. sr@latin, sr@ijekavian and
# sr@ijekavianlatin hold sr's files again.
KTUBERLING_LANGS = ("ca", "da", "en", "es", "fi", "ga", "gl", "it", "lt", "nl", "nn", "pt", "ro", "sl", "sr", "sv",
                    "wa")


def _ktuberling_packs(packages_dir: Path | None) -> tuple[list[Pack], list[str]]:
    """KTuberling's spoken words (body parts, clothes, objects), one uncredited reader per language: isolated
    words, like KLettres' letters, from train-only voices (see docs/corpus.md)."""
    root = _unpacked_root(KTUBERLING, packages_dir)
    sounds = root / KTUBERLING_DIR if root else None
    if sounds is None or not sounds.is_dir():
        return [], [f"{KTUBERLING}: not found (optional, not in the shipped corpus: measured as a mixed result, see "
                    f"docs/generalisation.md; to try it, `apt-get download {KTUBERLING}` and `dpkg-deb -x` the .deb "
                    f"into data/packages/{KTUBERLING})"]
    packs = []
    for lang in KTUBERLING_LANGS:
        folder = sounds / lang
        # nn's words are Ogg Opus, which libsndfile reads
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES | {".opus"}
                       and f.is_file() and not f.is_symlink()) if folder.is_dir() else []
        if files:
            packs.append(Pack(KTUBERLING, f"ktuberling_{lang}", f"ktuberling_{lang}", lang, KTUBERLING_LICENCE,
                              False, files, "isolated words of the KTuberling game, reader not credited"))
    return packs, []


def _fotaq_packs(packages_dir: Path | None) -> tuple[list[Pack], list[str]]:
    from detector.corpus.game_audio import ArchiveError, archive_table, dog_talk_keys, member_path

    root = _unpacked_root(FOTAQ, packages_dir)
    archive = root / FOTAQ_ARCHIVE if root else None
    if archive is None or not archive.is_file():
        return [], [f"{FOTAQ}: not found (optional; ./setup unpacks it into data/packages/)"]
    try:
        table = archive_table(archive)
    except (OSError, ArchiveError) as exc:
        return [], [f"{FOTAQ}: {archive} unreadable ({exc})"]
    cutaways = {e.name[:-4].upper() for e in table.entries if e.name.upper().endswith(".CUT")}
    characters = sorted(set(dog_talk_keys(archive, table).values()))
    files: dict[str, list[Path]] = {"joe": [], "cast": []}
    for e in table.entries:
        role = fotaq_role(e.name, cutaways)
        if role and e.size > 0:
            files[role].append(member_path(archive, e.name))
    codec = FOTAQ_CODEC if table.compression == "mp3" else table.compression
    notes = {"joe": "Joe King (lead; dialogue, look-at and response lines)",
             "cast": f"{len(characters)} other characters + cut-scene lines pooled (uncredited actors double "
                     f"roles; cut-scenes include Joe)"}
    packs = [Pack(FOTAQ, f"fotaq_{role}", f"fotaq_{role}", "en", FOTAQ_LICENCE, False, sorted(fs), notes[role],
                  codec, FOTAQ_MAX_MINUTES[f"fotaq_{role}"]) for role, fs in files.items() if fs]
    return packs, []


def _drascula_packs(packages_dir: Path | None) -> tuple[list[Pack], list[str]]:
    packs: list[Pack] = []
    missing: list[str] = []
    for pkg, (lang, subdir) in DRASCULA.items():
        root = _unpacked_root(pkg, packages_dir)
        folder = root / subdir if root else None
        if folder is None or not folder.is_dir():
            missing.append(f"{pkg}: not found (optional; ./setup unpacks it into data/packages/)")
            continue
        by_role: dict[str, list[Path]] = {}
        for p in sorted(folder.iterdir()):
            # symlinks: drascula-spanish links a few files to ../en (English audio in the Spanish set)
            if p.is_symlink() or not p.is_file() or p.suffix.upper() != ".ALS" or p.stat().st_size == 0:
                continue
            role = drascula_role(p.stem)
            if role:
                by_role.setdefault(role, []).append(p)
        for role, fs in sorted(by_role.items()):
            note = ("uncredited minor roles pooled" if role == "minor" else
                    "hero John Hacker" if role == "hacker" else f"role {role}, actor not credited")
            packs.append(Pack(pkg, f"drascula_{lang}_{role}", f"drascula_{lang}", lang, DRASCULA_LICENCE, False,
                              fs, note, DRASCULA_CODEC))
    return packs, missing


def _bass_packs(packages_dir: Path | None) -> tuple[list[Pack], list[str]]:
    from detector.corpus.game_audio import member_path
    from detector.corpus.sky_audio import SKY_DSK, SkyDataError, speaker_labels

    root = _unpacked_root(BASS, packages_dir)
    dsk = root / BASS_DIR / SKY_DSK if root else None
    if dsk is None or not dsk.is_file():
        return [], [f"{BASS}: not found (optional; ./setup unpacks it into data/packages/)"]
    try:
        labels = speaker_labels(dsk)
    except (OSError, KeyError, SkyDataError) as exc:
        return [], [f"{BASS}: {dsk} unreadable ({exc})"]
    files: dict[str, list[Path]] = {role: [] for role in BASS_ROLES}
    left_out = dict.fromkeys(BASS_EXCLUDED, 0)
    cast: set[str] = set()
    for number, label in sorted(labels.items()):
        role = bass_role(label)
        if role in files:
            files[role].append(member_path(dsk, str(number)))
            if role == "cast":
                cast.add(label.character)
        else:
            left_out[role] += 1
    gone = ", ".join(f"{n} {why}" for why, n in left_out.items())
    notes = {"foster": "Robert Foster (lead; dialogue, look-at lines, intro narration)",
             "cast": f"{len(cast)} other human characters pooled (uncredited actors double roles); "
                     f"lines left out: {gone}"}
    packs = [Pack(BASS, f"bass_{role}", BASS_GROUP, "en", BASS_LICENCE, False, fs, notes[role], BASS_CODEC,
                  BASS_MAX_MINUTES[f"bass_{role}"]) for role, fs in files.items() if fs]
    return packs, []


def inventory(packages_dir: Path | None = None, include_klettres: bool = True) -> tuple[list[Pack], list[str]]:
    """All bona fide packs found on this machine, and messages about packs that are missing."""
    packs: list[Pack] = []
    missing: list[str] = []
    cache: dict[str, tuple[list[Path], str]] = {}

    def files_of(pkg: str) -> list[Path]:
        if pkg not in cache:
            cache[pkg] = package_files(pkg, packages_dir)
        return cache[pkg][0]

    for spec in PACKS:
        files = _under(files_of(spec.package), spec.subdir)
        if not files:
            missing.append(f"{spec.package}: not installed (apt-get install {spec.package}, or run ./setup, "
                           f"which unpacks it into data/packages/)")
            continue
        gsm = sum(p.suffix.lower() == ".gsm" for p in files) > len(files) / 2
        packs.append(Pack(spec.package, spec.speaker, spec.group, spec.language, spec.licence, gsm, files,
                          spec.note, "gsm" if gsm else ""))
    for pkg, lang in FILLETS:
        files = [p for p in files_of(pkg) if p.parent.name == lang]
        if not files:
            missing.append(f"{pkg}: not installed (apt-get install {pkg})")
            continue
        by_role: dict[str, list[Path]] = {}
        for p in files:
            role = _fillets_role(p)
            if role:
                by_role.setdefault(role, []).append(p)
        for role, fs in sorted(by_role.items()):
            note = ("game voice acting, one actor per fish and language" if role != "minor" else
                    "minor characters pooled (actors not credited)")
            packs.append(Pack(pkg, f"fillets_{lang}_{role}", f"fillets_{lang}", lang, FILLETS_LICENCE, False,
                              sorted(fs), note))
    if include_klettres:
        files = files_of(KLETTRES)
        if not files:
            missing.append(f"{KLETTRES}: not found (optional; ./setup unpacks it into "
                           f"data/packages/)")
        by_lang: dict[str, list[Path]] = {}
        for p in files:
            parts = p.as_posix().split("/klettres/")
            if len(parts) == 2:
                by_lang.setdefault(parts[1].split("/")[0], []).append(p)
        for code, fs in sorted(by_lang.items()):
            lang = KLETTRES_LANG.get(code, code)
            packs.append(Pack(KLETTRES, f"klettres_{code}", f"klettres_{lang}", lang, KLETTRES_LICENCE, False,
                              sorted(fs), "short letters/syllables clips, one native voice per language"))
    for extra in (_tuxpaint_packs, _fotaq_packs, _drascula_packs, _bass_packs, _ktuberling_packs):
        more, gone = extra(packages_dir)
        packs += more
        missing += gone
    return packs, missing


def groups(packs: list[Pack]) -> dict[str, list[Pack]]:
    out: dict[str, list[Pack]] = {}
    for p in packs:
        out.setdefault(p.group, []).append(p)
    return out
