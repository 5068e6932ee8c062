"""A LightGBM booster's trees as text, to score with only the trees that split on some features.

Shuffling one attribute can only change the output of the trees that split on its features; the
other trees score every shuffled row exactly as the intact row. Permutation importance (the ICP
evidence, the leakage screen) therefore rescored whole models for nothing: on the 20k default
run's conversion model, the trees that split on an attribute are 17 % of the model on average,
so rescoring only them is ~5x less work.

The subset is cut from the booster's own text format (``model_to_string``): the header, the
chosen ``Tree=`` blocks renumbered (with their ``tree_sizes``), and the rest unchanged, then
loaded back as a booster. A tree's output depends on nothing but its splits and leaves, so the
subset's raw score is the sum of those trees' outputs (the first tree carries LightGBM's initial
score, which cancels in the differences this is used for).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import lightgbm as lgb

_TREE_START = re.compile(r"^Tree=\d+\n", re.MULTILINE)
_SPLIT_FEATURE = re.compile(r"^split_feature=(.*)$", re.MULTILINE)
_TREE_SIZES = re.compile(r"^tree_sizes=.*$", re.MULTILINE)
_END = "end of trees"


@dataclass(frozen=True)
class BoosterText:
    """A booster's text split into its header, its tree blocks and what follows the trees."""

    header: str
    trees: tuple[str, ...]
    footer: str
    #: The feature indices each tree splits on (empty for a single-leaf tree), read once.
    features: tuple[frozenset[int], ...] = ()

    @classmethod
    def of(cls, booster: lgb.Booster) -> BoosterText:
        """Parse ``booster.model_to_string()`` (all trees)."""
        text = booster.model_to_string(num_iteration=-1)
        starts = [m.start() for m in _TREE_START.finditer(text)]
        end = text.index(_END)
        if not starts:  # no tree at all: nothing splits
            return cls(text[:end], (), text[end:])
        bounds = [*starts, end]
        trees = tuple(text[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
        return cls(text[: starts[0]], trees, text[end:], tuple(_split_features(t) for t in trees))

    def trees_splitting_on(self, features: Iterable[int]) -> list[int]:
        """The positions of the trees that split on any of ``features``."""
        wanted = set(features)
        return [i for i, used in enumerate(self.features) if used & wanted]

    def subset(self, positions: list[int]) -> lgb.Booster | None:
        """A booster of the trees at ``positions`` only (None when there are none)."""
        if not positions:
            return None
        blocks = []
        for k, i in enumerate(positions):
            tree = self.trees[i]
            blocks.append(f"Tree={k}\n" + tree[tree.index("\n") + 1 :])
        sizes = "tree_sizes=" + " ".join(str(len(b.encode())) for b in blocks)
        header = _TREE_SIZES.sub(sizes, self.header, count=1)
        return lgb.Booster(model_str=header + "".join(blocks) + self.footer)


def _split_features(tree: str) -> frozenset[int]:
    m = _SPLIT_FEATURE.search(tree)
    return frozenset(int(f) for f in m.group(1).split()) if m else frozenset()
