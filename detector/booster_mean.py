"""Several LightGBM boosters as one model whose log-odds are their mean.

Boosters trained on the same rows with different seeds (row and feature bagging) disagree most on speech
unlike any they were trained on, which is where false alarms on new voices come from; averaging their
log-odds narrows that tail (docs/generalisation.md, "A seed ensemble"). Serving them as one booster keeps
everything that takes a model file unchanged: scoring, ``pred_contrib`` explanations (additive, so the
merged model's contributions are the members' mean), continued training in `callguard retrain`.

A booster's raw score is the sum of its trees' leaf values (the initial score is folded into the first
tree), so the mean of N boosters is one booster holding all their trees with every leaf value divided by
N. LightGBM has no API to join models; the trees are concatenated in its text format, and the leaf values
are then scaled through its API (``set_leaf_output``). ``tests/detector/test_booster_mean.py`` checks the
result against the members' mean, so a change of the format in a LightGBM upgrade fails there.
"""

from __future__ import annotations

import re

_TREE_START = re.compile(r"(?m)^(?=Tree=\d+$)")
_NUM_LEAVES = re.compile(r"(?m)^num_leaves=(\d+)$")
_LINEAR = re.compile(r"(?m)^is_linear=1$")
END_OF_TREES = "end of trees"


def _header_and_trees(model: str) -> tuple[str, list[str]]:
    head, sep, rest = model.partition("\nTree=")
    if not sep or END_OF_TREES not in rest:
        raise ValueError("not a LightGBM text model with trees")
    trees = [t for t in _TREE_START.split("Tree=" + rest.split(END_OF_TREES)[0]) if t.strip()]
    return head + "\n", trees


def mean_booster(boosters: list) -> object:
    """One ``lightgbm.Booster`` whose raw score (and ``pred_contrib``) is the mean of the members'.

    The members must share their header (objective, features, number of classes): boosters trained on the
    same data with different seeds do. The merged model drops the members' feature importances and
    parameter sections, which would describe one member only."""
    import lightgbm as lgb

    if not boosters:
        raise ValueError("no boosters to average")
    if len(boosters) == 1:
        return boosters[0]
    heads, trees = [], []
    for b in boosters:
        head, member_trees = _header_and_trees(b.model_to_string())
        if any(_LINEAR.search(t) for t in member_trees):
            raise ValueError("linear trees cannot be averaged by scaling their leaf values")
        heads.append(re.sub(r"(?m)^tree_sizes=.*\n", "", head))
        trees.extend(member_trees)
    if any(h != heads[0] for h in heads[1:]):
        raise ValueError("boosters differ in objective or features; only seeds may differ")
    renumbered = [re.sub(r"^Tree=\d+", f"Tree={i}", t) for i, t in enumerate(trees)]
    merged = lgb.Booster(model_str=heads[0] + "".join(renumbered) + END_OF_TREES + "\n")
    n = len(boosters)
    for i, t in enumerate(trees):
        for leaf in range(int(_NUM_LEAVES.search(t).group(1))):
            merged.set_leaf_output(i, leaf, merged.get_leaf_output(i, leaf) / n)
    return lgb.Booster(model_str=merged.model_to_string())
