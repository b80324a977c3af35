"""Train/dev/eval assignment, disjoint by speaker group AND by generator family.

Speaker groups (see ``sources``) and generator families are assigned whole to one split. The eval split
holds human speaker groups and generator families never seen in train or dev: at least one TTS family,
one resynthesis/vocoder family, one neural vocoder family (``nsf``, with its voice-conversion-like
variants; the GAN vocoders ``hifigan`` and ``mbmelgan`` are in train, the autoregressive ``wavernn`` in
dev) and one replay room set. Spoofs made by transforming bona fide speech
(resynthesis, replay) always start from recordings of the same split's speakers.

Groups that may hold the same person are tied to one split (``SAME_SPLIT``): the Flight of the Amazon
Queen cut-scene lines (pooled in ``fotaq_cast``) include Joe, whose own lines form ``fotaq_joe``; the
English and Spanish Drascula casts are not credited; a Tux Paint reader may also have recorded that
language's KLettres clips (both are volunteer-made children's-education packs).
"""

from __future__ import annotations

from detector.corpus.sources import KTUBERLING_LANGS

SPLITS = ("train", "dev", "eval")

GROUP_SPLIT = {
    "allison_smith": "train", "june_wallack": "train", "ivrvoice_ru": "train", "fillets_cs": "train",
    "beronet_de": "train",
    "paola_dal_zot": "dev", "july_jimenez": "dev", "proformatique_fr": "dev",
    "carlo_flora": "eval", "armelle_desjardins": "eval", "fillets_nl": "eval",
    # KLettres voices: the 3:1:1 rotation of the first full builds, written out so that new groups can
    # never shift them
    "klettres_ar": "train", "klettres_da": "train", "klettres_en": "train", "klettres_es": "train",
    "klettres_he": "train", "klettres_it": "train", "klettres_lt": "train", "klettres_nb": "train",
    "klettres_nl": "train", "klettres_pt": "train", "klettres_tn": "train",
    "klettres_cs": "dev", "klettres_fr": "dev", "klettres_ml": "dev", "klettres_ru": "dev",
    "klettres_de": "eval", "klettres_hu": "eval", "klettres_nds": "eval", "klettres_uk": "eval",
    # corpus v3: game dialogue and volunteer read speech (see docs/corpus.md, "Splits")
    "fotaq_joe": "train", "fotaq_cast": "train", "drascula_en": "train", "drascula_es": "train",
    "kseniya_buraya": "train", "tuxpaint_ro_tabbytha": "train", "tuxpaint_ca": "train",
    "joe_dalton": "train", "estefania_ortiz": "train", "tuxpaint_en": "train", "tuxpaint_lt": "train",
    "tuxpaint_nl": "train",
    "tuxpaint_fr": "dev", "edwin_veber": "dev", "tuxpaint_ml": "dev",
    "kiriaki_serafeim": "eval", "krasimir_petkov": "eval",
    "bass": "train",  # corpus v8: Beneath a Steel Sky (bass_foster + bass_cast), a train-only source
    # KTuberling's words (only languages with no voice in dev or eval), train only
    **{f"ktuberling_{lang}": "train" for lang in KTUBERLING_LANGS},
}
# Groups that must share a split (they may hold the same person)
SAME_SPLIT: list[tuple[str, ...]] = [
    ("fotaq_joe", "fotaq_cast"),
    ("drascula_en", "drascula_es"),
    ("klettres_da", "joe_dalton"), ("klettres_es", "estefania_ortiz"), ("klettres_fr", "tuxpaint_fr"),
    ("klettres_ru", "edwin_veber"), ("klettres_en", "tuxpaint_en"), ("klettres_lt", "tuxpaint_lt"),
    ("klettres_nl", "tuxpaint_nl"), ("klettres_ml", "tuxpaint_ml"),
    # a KTuberling reader may be that language's KLettres or Tux Paint voice (KDE and Tux Paint translators)
    ("ktuberling_ca", "tuxpaint_ca"), ("ktuberling_da", "klettres_da"), ("ktuberling_en", "klettres_en"),
    ("ktuberling_es", "klettres_es"), ("ktuberling_it", "klettres_it"), ("ktuberling_lt", "klettres_lt"),
    ("ktuberling_nl", "klettres_nl"), ("ktuberling_nn", "klettres_nb"), ("ktuberling_pt", "klettres_pt"),
    ("ktuberling_ro", "tuxpaint_ro_tabbytha"),
]
FAMILY_SPLIT = {
    "espeak": "train", "festival": "train", "flite": "train", "piper": "train", "world": "train", "lpc": "train",
    "replay_rooms_a": "train", "hifigan": "train", "mbmelgan": "train",
    # corpus v6: a parametric speech codec and a phase-vocoder voice changer, both train-only so that the dev
    # and eval splits stay exactly those of v5
    "codec2": "train", "rubberband": "train",
    # corpus v7: two more voice-changer algorithms (PSOLA, WSOLA) beside the phase vocoder, train-only as well
    "psola": "train", "wsola": "train",
    # corpus v11 (not the shipped corpus: `corpus build` skips them unless asked): two modern neural TTS
    # (Kokoro-82M with blended voices; hibari, distilled from a Kokoro voice) and a full-size pretrained HiFi-GAN
    "kokoro": "train", "hibari": "train", "hifigan16k": "train",
    "pico": "dev", "griffinlim": "dev", "replay_rooms_b": "dev", "wavernn": "dev",
    "mbrola": "eval", "mlsa": "eval", "replay_rooms_c": "eval", "nsf": "eval",
}
RESYNTHESIS = {"world", "lpc", "griffinlim", "mlsa", "codec2", "rubberband", "psola", "wsola"}


def group_splits(groups: list[str]) -> dict[str, str]:
    """Split of every speaker group; groups not in the table (e.g. klettres voices) rotate 3:1:1."""
    out = {}
    extra = sorted(g for g in groups if g not in GROUP_SPLIT)
    cycle = ["train", "dev", "train", "eval", "train"]
    for i, g in enumerate(extra):
        out[g] = cycle[i % len(cycle)]
    out.update({g: s for g, s in GROUP_SPLIT.items() if g in groups})
    return out


def family_splits(available: list[str]) -> dict[str, str]:
    """Split of every available family; if eval lost its resynthesis family, Griffin-Lim moves there."""
    out = {f: FAMILY_SPLIT[f] for f in available if f in FAMILY_SPLIT}
    for f in available:
        out.setdefault(f, "train")
    if not any(out.get(f) == "eval" for f in RESYNTHESIS):
        for f in ("griffinlim", "lpc", "world"):
            if f in out:
                out[f] = "eval"
                break
    return out


def check_disjoint(rows: list[dict]) -> list[str]:
    """Problems with a manifest's splits (empty list = disjoint by speaker group and generator, and tied
    groups in one split)."""
    problems = []
    where: dict[str, set[str]] = {}
    for r in rows:
        if r["label"] == "bonafide":
            where.setdefault(r["group"], set()).add(r["split"])
    for tie in SAME_SPLIT:
        present = set().union(*(where.get(g, set()) for g in tie))
        if len(present) > 1:
            problems.append(f"groups {', '.join(tie)} may share a speaker but are in splits {sorted(present)}")
    for key in ("group", "generator"):
        seen: dict[str, set[str]] = {}
        for r in rows:
            if key == "generator" and r["label"] == "bonafide":
                continue
            seen.setdefault(r[key], set()).add(r["split"])
        for k, s in sorted(seen.items()):
            if len(s) > 1:
                problems.append(f"{key} {k} appears in splits {sorted(s)}")
    return problems
