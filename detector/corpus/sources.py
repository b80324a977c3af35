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
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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
                          spec.note))
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
    return packs, missing


def groups(packs: list[Pack]) -> dict[str, list[Pack]]:
    out: dict[str, list[Pack]] = {}
    for p in packs:
        out.setdefault(p.group, []).append(p)
    return out
