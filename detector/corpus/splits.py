"""Train/dev/eval assignment, disjoint by speaker group AND by generator family.

Speaker groups (see ``sources``) and generator families are assigned whole to one split. The eval split
holds human speaker groups and generator families never seen in train or dev: at least one TTS family,
one resynthesis/vocoder family, one neural vocoder family (``nsf``, with its voice-conversion-like
variants; ``hifigan`` is in train) and one replay room set. Spoofs made by transforming bona fide speech
(resynthesis, replay) always start from recordings of the same split's speakers.
"""

from __future__ import annotations

SPLITS = ("train", "dev", "eval")

GROUP_SPLIT = {
    "allison_smith": "train", "june_wallack": "train", "ivrvoice_ru": "train", "fillets_cs": "train",
    "beronet_de": "train",
    "paola_dal_zot": "dev", "july_jimenez": "dev", "proformatique_fr": "dev",
    "carlo_flora": "eval", "armelle_desjardins": "eval", "fillets_nl": "eval",
}
FAMILY_SPLIT = {
    "espeak": "train", "festival": "train", "flite": "train", "piper": "train", "world": "train", "lpc": "train",
    "replay_rooms_a": "train", "hifigan": "train",
    "pico": "dev", "griffinlim": "dev", "replay_rooms_b": "dev",
    "mbrola": "eval", "mlsa": "eval", "replay_rooms_c": "eval", "nsf": "eval",
}
RESYNTHESIS = {"world", "lpc", "griffinlim", "mlsa"}


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
    """Problems with a manifest's splits (empty list = disjoint by speaker group and generator)."""
    problems = []
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
