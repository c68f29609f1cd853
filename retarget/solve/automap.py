"""The automatic rig mapper: which bones of an unknown humanoid armature play which slot of a
rig map (:mod:`retarget.solve.rigmaps`), from bone names and the hierarchy alone.

Names are split into a side and a body-part word (:func:`name_tokens`: ``c_hand_fk.l`` ->
``("L", "hand")``, ``mixamorig:LeftUpLeg`` -> ``("L", "upleg")``); hands, feet, toes and the head
are found by their words, and the limb and spine chains between them by the hierarchy
(:func:`auto_map`). Animation controls are preferred to the bones they drive. Pure Python.
"""

import re
from collections.abc import Sequence

from .rigmaps import SIDES, RigMap

# "c" and "fk" mark animation controls (Auto-Rig Pro's c_hand_fk.l), "x" a centre bone (c_head.x).
_NOISE = {"def", "org", "bip", "bip01", "bip001", "b", "j", "jnt", "joint", "bone", "cc", "base", "c",
          "fk", "x"}  # fmt: skip
_CONTROL_TOKENS = {"c", "fk", "ctrl", "ctl", "con"}
_SIDE_TOKENS = {"l": "L", "left": "L", "lft": "L", "r": "R", "right": "R", "rgt": "R"}
_HAND = {"hand", "wrist"}
_FOOT = {"foot", "ankle"}
_TOE = {"toe", "toes", "toebase", "ball", "foot"}
_HEAD = {"head"}


def name_tokens(name: str) -> tuple[str | None, str]:
    """``(side, base)`` of a bone name: side "L", "R" or None, base the lower-case body-part word.

    ``"mixamorig:LeftUpLeg"`` -> ``("L", "upleg")``, ``"thigh.L"`` -> ``("L", "thigh")``,
    ``"upperarm_twist_01_l"`` -> ``("L", "upperarmtwist")``, ``"c_hand_fk.l"`` -> ``("L", "hand")``,
    ``"c_head.x"`` -> ``(None, "head")``.
    """
    name = re.split(r"[:|]", name)[-1]
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", name.lower()) if t]
    side = None
    body = []
    for token in tokens:
        if token in _SIDE_TOKENS and side is None:
            side = _SIDE_TOKENS[token]
        elif token not in _NOISE and not token.isdigit():
            body.append(token)
    return side, re.sub(r"\d+", "", "".join(body))


class _Hierarchy:
    def __init__(self, names: Sequence[str], parents: Sequence[int], heads) -> None:
        self.names = list(names)
        self.parents = list(parents)
        self.heads = [tuple(float(c) for c in h) for h in heads]
        self.depth = [0] * len(names)
        for b in self._order():
            p = self.parents[b]
            self.depth[b] = 0 if p < 0 else self.depth[p] + 1
        self.children: list[list[int]] = [[] for _ in names]
        for b, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(b)

    def _order(self) -> list[int]:
        done, order = set(), []
        for b in range(len(self.names)):
            chain = []
            while b >= 0 and b not in done:
                chain.append(b)
                b = self.parents[b]
            for c in reversed(chain):
                done.add(c)
                order.append(c)
        return order

    def ancestors(self, b: int) -> list[int]:
        out = []
        while self.parents[b] >= 0:
            b = self.parents[b]
            out.append(b)
        return out

    def path_down(self, top: int, bottom: int) -> list[int] | None:
        """Bones from just below ``top`` down to ``bottom`` inclusive, or None if not below."""
        chain = [bottom]
        for b in self.ancestors(bottom):
            if b == top:
                return chain[::-1]
            chain.append(b)
        return None

    def side(self, b: int) -> str | None:
        side, _ = name_tokens(self.names[b])
        if side is None and abs(self.heads[b][0]) > 1e-4:
            # Blender convention: the character's left is +X (front view looks along +Y).
            side = "L" if self.heads[b][0] > 0 else "R"
        return side


def is_control(name: str) -> bool:
    """Whether a bone name marks an animation control (``c_hand_fk.l``, ``hand_fk.L``,
    ``CTRL_hand``): where a rig has a control and a deforming bone of the same body part, the
    control is the one to key (the deforming bone follows it through constraints)."""
    name = re.split(r"[:|]", name)[-1]
    return bool(_CONTROL_TOKENS & set(re.split(r"[^a-z0-9]+", name.lower())))


def _find_topmost(h: _Hierarchy, words: set[str], side: str | None) -> int | None:
    found = [
        b
        for b, name in enumerate(h.names)
        if name_tokens(name)[1] in words
        and (h.side(b) == side if side else name_tokens(name)[0] is None)
    ]
    # Controls first, then the bone nearest the root.
    return min(found, key=lambda b: (not is_control(h.names[b]), h.depth[b])) if found else None


def _lowest_common_ancestor(h: _Hierarchy, a: int, b: int) -> int | None:
    above_a = [a, *h.ancestors(a)]
    for c in [b, *h.ancestors(b)]:
        if c in above_a:
            return c
    return None


def auto_map(names: Sequence[str], parents: Sequence[int], heads) -> tuple[RigMap, list[str]]:
    """Map slots from bone names and the hierarchy; returns the map and notes on what was guessed.

    Anchors: the hands and feet are found by name (``hand``/``wrist``, ``foot``/``ankle`` with a
    side), the limb chains by walking up their parents; the hips are the common parent of the
    thighs, the chest the common parent of the arms, the spine the chain between them, the neck the
    chain from the chest to the bone named ``head``.
    """
    h = _Hierarchy(names, parents, heads)
    bones: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    arm_tops, leg_tops = {}, {}
    for side in SIDES:
        hand = _find_topmost(h, _HAND, side)
        if hand is not None:
            chain = [hand, *h.ancestors(hand)]
            if len(chain) >= 4:
                forearm, upper, above = chain[1], chain[2], chain[3]
                bones[f"hand.{side}"] = (names[hand],)
                bones[f"forearm.{side}"] = (names[forearm],)
                bones[f"upper_arm.{side}"] = (names[upper],)
                if h.side(above) == side:
                    bones[f"shoulder.{side}"] = (names[above],)
                    arm_tops[side] = above
                else:
                    arm_tops[side] = upper
        foot = _find_topmost(h, _FOOT, side)
        if foot is not None:
            chain = [foot, *h.ancestors(foot)]
            if len(chain) >= 3:
                bones[f"foot.{side}"] = (names[foot],)
                bones[f"shin.{side}"] = (names[chain[1]],)
                bones[f"thigh.{side}"] = (names[chain[2]],)
                leg_tops[side] = chain[2]
                toes = [c for c in h.children[foot] if name_tokens(names[c])[1] in _TOE]
                if toes:
                    bones[f"toe.{side}"] = (names[toes[0]],)
    if len(leg_tops) == 2:
        hips = _lowest_common_ancestor(h, leg_tops["L"], leg_tops["R"])
        if hips is not None:
            bones["hips"] = (names[hips],)
            if len(arm_tops) == 2:
                chest = _lowest_common_ancestor(h, arm_tops["L"], arm_tops["R"])
                spine = h.path_down(hips, chest) if chest is not None else None
                if spine is None and chest is not None:
                    # Thighs hang from a pelvis bone beside the spine: the hips are their common root.
                    hips = _lowest_common_ancestor(h, hips, chest)
                    notes.append(f"hips taken as {names[hips]!r}, the root of legs and spine")
                    bones["hips"] = (names[hips],)
                    spine = h.path_down(hips, chest)
                if spine:
                    bones["spine"] = tuple(names[b] for b in spine)
                    head = _find_topmost(h, _HEAD, None)
                    neck = h.path_down(chest, head) if head is not None else None
                    if neck:
                        bones["head"] = (names[head],)
                        if len(neck) > 1:
                            bones["neck"] = tuple(names[b] for b in neck[:-1])
                    else:
                        notes.append("no bone named 'head' above the chest: head left unmapped")
    return RigMap("automatic", bones), notes
