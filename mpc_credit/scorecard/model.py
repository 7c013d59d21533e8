"""The scorecard model file: parse, validate, bin values, split into per-owner parts.

A scorecard awards each feature the points of the bin its value falls in:
score = intercept + sum_f points_f[bin_f(x_f)]. Numeric bins are left-closed, right-open
(bin i holds edges[i-1] <= x < edges[i]); a missing value gets `missing_points`, a
categorical value listed in no bin gets `other_points`.

Every feature has a fixed bin layout used throughout the project:
numeric     bins 0..len(edges) for values, then one bin for missing;
categorical bins 0..len(categories)-1 for the listed groups, then "other", then missing.

(About 450 lines on purpose: this module is the contract of the model file. Its parser, its
validation messages, the bin layout above and the per-owner split must agree exactly, and
reading them side by side is how they are kept in agreement.)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mpc_credit.errors import ModelError
from mpc_credit.files import read_json, write_durably
from mpc_credit.scorecard.reasons import Reason, duplicate_code, reason_problem
from mpc_credit.vocabulary import MODES, Mode

FORMAT = "mpc-credit/scorecard@1"
ID_COLUMN = "applicant_id"


@dataclass(frozen=True)
class Scaling:
    """PDO scaling: factor = pdo / ln 2, offset = base_points - factor * ln(odds)."""

    pdo: float
    odds: float
    base_points: float

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.odds)


@dataclass(frozen=True)
class NumericFeature:
    """A numeric feature: `edges` split the real line; points per bin, plus missing."""

    name: str
    owner: str
    edges: tuple[float, ...]
    points: tuple[int, ...] | None
    missing_points: int | None
    kind: Literal["numeric"] = "numeric"
    reason: Reason | None = None  # None: the name is the code and the statement

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2

    @property
    def bin_points(self) -> np.ndarray:
        """Points of every bin in the project's layout (values..., missing)."""
        assert self.points is not None and self.missing_points is not None
        return np.array([*self.points, self.missing_points], dtype=np.int64)

    def bins(self, column: np.ndarray) -> np.ndarray:
        """Bin index of each value (float array, NaN = missing)."""
        idx = np.searchsorted(np.asarray(self.edges, dtype=float), column, side="right")
        return np.where(np.isnan(column), self.n_bins - 1, idx).astype(np.int64)


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature: groups of categories per bin, plus other and missing."""

    name: str
    owner: str
    categories: tuple[tuple[str, ...], ...]
    points: tuple[int, ...] | None
    other_points: int | None
    missing_points: int | None
    kind: Literal["categorical"] = "categorical"
    reason: Reason | None = None

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 2

    @property
    def bin_points(self) -> np.ndarray:
        """Points of every bin in the project's layout (groups..., other, missing)."""
        assert self.points is not None
        return np.array([*self.points, self.other_points, self.missing_points], dtype=np.int64)

    def bins(self, column: np.ndarray) -> np.ndarray:
        """Bin index of each value (object array of str, None = missing)."""
        lookup = {c: i for i, group in enumerate(self.categories) for c in group}
        other, missing = self.n_bins - 2, self.n_bins - 1
        return np.fromiter(
            (missing if v is None else lookup.get(v, other) for v in column),
            dtype=np.int64,
            count=len(column),
        )


@dataclass(frozen=True)
class HiddenFeature:
    """Another owner's feature as a model part sees it: name, owner and bin count only."""

    name: str
    owner: str
    n_bins: int
    kind: Literal["hidden"] = "hidden"
    reason: Reason | None = None


Feature = NumericFeature | CategoricalFeature | HiddenFeature


@dataclass(frozen=True)
class Part:
    """What a model part is: whose, for which mode, and public bounds of the full model."""

    owner: str
    mode: Mode
    model_digest: str
    score_range: tuple[int, int]
    max_cost: int


@dataclass(frozen=True)
class Scorecard:
    """A scorecard model, or one owner's part of it (`part` set)."""

    name: str
    scaling: Scaling
    intercept: int | None
    cutoff: int
    features: tuple[Feature, ...]
    part: Part | None = None
    source: str = field(default="<model>", compare=False)

    @property
    def owners(self) -> tuple[str, ...]:
        """Feature owners in order of first appearance."""
        return tuple(dict.fromkeys(f.owner for f in self.features))

    def features_of(self, owner: str) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.owner == owner)

    def reasons(self) -> tuple[Reason, ...]:
        """Each feature's reason code and statement (its name for both if the file has none)."""
        return tuple(f.reason or Reason(f.name, f.name) for f in self.features)

    @property
    def has_points(self) -> bool:
        return all(not isinstance(f, HiddenFeature) and f.points is not None for f in self.features)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the full model (a part returns its model's)."""
        if self.part is not None:
            return self.part.model_digest
        return canonical_digest(to_dict(self))

    def score_range(self) -> tuple[int, int]:
        """Lowest and highest score the model can award."""
        if self.part is not None:
            return self.part.score_range
        lo = hi = self.intercept or 0
        for f in self.features:
            pts = _points(f)
            lo, hi = lo + int(pts.min()), hi + int(pts.max())
        return lo, hi

    def max_cost(self) -> int:
        """Largest number of points any feature can cost against its best bin."""
        if self.part is not None:
            return self.part.max_cost
        return max(int(_points(f).max() - _points(f).min()) for f in self.features)

    def split(self, owner: str, mode: Mode, helper: bool = False) -> Scorecard:
        """The part of this model that `owner` receives in `mode`.

        `shared`: the owner's own features with points; `secret`: only their bins.
        Other owners' features keep name, owner and bin count; in `secret` mode the
        intercept stays with the model owner. A `helper` party owns no feature.
        """
        if self.part is not None:
            raise ModelError(f"{self.source}: is already a part (of owner {self.part.owner!r})")
        if owner not in self.owners and not helper:
            raise ModelError(f"{self.source}: no feature is owned by {owner!r}")
        feats = tuple(_part_feature(f, owner, mode) for f in self.features)
        part = Part(owner, mode, self.digest(), self.score_range(), self.max_cost())
        intercept = self.intercept if mode == "shared" else None
        return Scorecard(self.name, self.scaling, intercept, self.cutoff, feats, part, self.source)


def _points(f: Feature) -> np.ndarray:
    if isinstance(f, HiddenFeature):
        raise ModelError(f"feature {f.name!r} is another owner's; its points are not in this part")
    return f.bin_points


def _part_feature(f: Feature, owner: str, mode: Mode) -> Feature:
    if isinstance(f, HiddenFeature):
        return f
    if f.owner != owner:
        return HiddenFeature(f.name, f.owner, f.n_bins, reason=f.reason)
    if mode == "shared":
        return f
    if isinstance(f, NumericFeature):
        return NumericFeature(f.name, f.owner, f.edges, None, None, reason=f.reason)
    return CategoricalFeature(f.name, f.owner, f.categories, None, None, None, reason=f.reason)


def canonical_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON encoding of `data`."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------- parsing


def load_model(path: str | Path) -> Scorecard:
    """Read and validate a model (or model part) JSON file."""
    path = Path(path)
    return from_dict(read_json(path, "model file", ModelError), source=str(path))


def from_dict(data: Any, source: str = "<model>") -> Scorecard:
    """Validate a decoded model dict; errors name `source` and the offending field."""
    r = _Reader(source)
    r.require(isinstance(data, dict), "", "must be a JSON object")
    r.require(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}")
    name = r.string(data, "name")
    scaling = r.obj(data, "scaling")
    sc = Scaling(
        r.positive(scaling, "pdo", "scaling.pdo"),
        r.positive(scaling, "odds", "scaling.odds"),
        r.number(scaling, "base_points", "scaling.base_points"),
    )
    part = _read_part(r, data.get("part"))
    intercept = r.integer(data, "intercept", "intercept", optional=part is not None)
    cutoff = r.integer(data, "cutoff", "cutoff")
    feats = data.get("features")
    r.require(isinstance(feats, list) and len(feats) > 0, "features", "must be a non-empty list")
    features = tuple(_read_feature(r, f, i, part is not None) for i, f in enumerate(feats))
    names = [f.name for f in features]
    for i, n in enumerate(names):
        r.require(names.index(n) == i, f"features[{i}]", f"duplicate feature name {n!r}")
    model = Scorecard(name, sc, intercept, cutoff, features, part, source)
    twice = duplicate_code(model.reasons())
    if twice is not None:
        a, b = (features[j] for j in twice)
        code = model.reasons()[twice[0]].code
        r.require(
            False, f"features[{twice[1]}] ({b.name})", f"reason code {code!r} is also {a.name!r}'s"
        )
    if part is None:
        r.require(model.has_points, "features", "every feature needs its points")
    return model


def _read_part(r: _Reader, p: Any) -> Part | None:
    if p is None:
        return None
    r.require(isinstance(p, dict), "part", "must be an object")
    mode = p.get("mode")
    r.require(mode in MODES, "part.mode", f"must be one of {', '.join(MODES)}")
    rng = p.get("score_range")
    r.require(
        isinstance(rng, list) and len(rng) == 2 and all(_is_int(v) for v in rng),
        "part.score_range",
        "must be two integers",
    )
    return Part(
        r.string(p, "owner", "part.owner"),
        mode,
        r.string(p, "model_digest", "part.model_digest"),
        (rng[0], rng[1]),
        r.integer(p, "max_cost", "part.max_cost"),
    )


def _read_feature(r: _Reader, f: Any, i: int, is_part: bool) -> Feature:
    where = f"features[{i}]"
    r.require(isinstance(f, dict), where, "must be an object")
    name = r.string(f, "name", f"{where}.name")
    where = f"features[{i}] ({name})"
    r.require(name != ID_COLUMN, where, f"{ID_COLUMN!r} is reserved for the id column")
    owner = r.string(f, "owner", f"{where}.owner")
    reason = r.reason(f, f"{where}.reason")
    kind = f.get("kind")
    if kind == "hidden" and is_part:
        n = r.integer(f, "bins", f"{where}.bins")
        r.require(n >= 2, f"{where}.bins", "must be at least 2")
        return HiddenFeature(name, owner, n, reason=reason)
    r.require(kind in ("numeric", "categorical"), f"{where}.kind", "must be numeric or categorical")
    optional = is_part and "points" not in f
    points = None if optional else r.int_list(f, "points", f"{where}.points")
    missing = r.integer(f, "missing_points", f"{where}.missing_points", optional=optional)
    if kind == "numeric":
        edges = r.edges(f, f"{where}.edges")
        if points is not None:
            r.require(
                len(points) == len(edges) + 1,
                f"{where}.points",
                f"has {len(points)} entries but {len(edges)} edges need {len(edges) + 1}",
            )
        return NumericFeature(name, owner, edges, points, missing, reason=reason)
    cats = r.categories(f, f"{where}.categories")
    if points is not None:
        r.require(
            len(points) == len(cats),
            f"{where}.points",
            f"has {len(points)} entries but there are {len(cats)} category groups",
        )
    other = r.integer(f, "other_points", f"{where}.other_points", optional=optional)
    return CategoricalFeature(name, owner, cats, points, other, missing, reason=reason)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class _Reader:
    """Field readers that raise ModelError naming the source file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def require(self, ok: bool, where: str, what: str) -> None:
        if not ok:
            sep = ": " if where else ""
            raise ModelError(f"{self.source}: {where}{sep}{what}")

    def get(self, d: dict[str, Any], key: str, where: str) -> Any:
        self.require(key in d, where, "is missing")
        return d[key]

    def obj(self, d: dict[str, Any], key: str) -> dict[str, Any]:
        v = self.get(d, key, key)
        self.require(isinstance(v, dict), key, "must be an object")
        return v

    def string(self, d: dict[str, Any], key: str, where: str | None = None) -> str:
        v = self.get(d, key, where or key)
        self.require(
            isinstance(v, str) and v.strip() != "", where or key, "must be a non-empty string"
        )
        return v

    def reason(self, d: dict[str, Any], where: str) -> Reason | None:
        """A feature's optional `reason` object (code and statement)."""
        v = d.get("reason")
        if v is None:
            return None
        problem = reason_problem(v)
        if problem is not None:
            self.require(False, where + problem[0], problem[1])
        return Reason(v["code"], v["statement"])

    def number(self, d: dict[str, Any], key: str, where: str) -> float:
        v = self.get(d, key, where)
        self.require(_is_number(v), where, "must be a finite number")
        return float(v)

    def positive(self, d: dict[str, Any], key: str, where: str) -> float:
        v = self.number(d, key, where)
        self.require(v > 0, where, "must be positive")
        return v

    def integer(self, d: dict[str, Any], key: str, where: str, optional: bool = False) -> Any:
        if optional and d.get(key) is None:
            return None
        v = self.get(d, key, where)
        self.require(_is_int(v), where, f"must be an integer, not {json.dumps(v)}")
        return v

    def int_list(self, d: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
        v = self.get(d, key, where)
        self.require(isinstance(v, list) and len(v) > 0, where, "must be a non-empty list")
        for j, x in enumerate(v):
            self.require(_is_int(x), f"{where}[{j}]", f"must be an integer, not {json.dumps(x)}")
        return tuple(v)

    def edges(self, d: dict[str, Any], where: str) -> tuple[float, ...]:
        v = self.get(d, "edges", where)
        self.require(isinstance(v, list), where, "must be a list")
        for j, x in enumerate(v):
            self.require(_is_number(x), f"{where}[{j}]", "must be a finite number")
        self.require(
            all(a < b for a, b in itertools.pairwise(v)), where, "must be strictly increasing"
        )
        return tuple(float(x) for x in v)

    def categories(self, d: dict[str, Any], where: str) -> tuple[tuple[str, ...], ...]:
        v = self.get(d, "categories", where)
        self.require(isinstance(v, list) and len(v) > 0, where, "must be a non-empty list of lists")
        seen: set[str] = set()
        groups = []
        for j, g in enumerate(v):
            ok = isinstance(g, list) and len(g) > 0 and all(isinstance(c, str) for c in g)
            self.require(ok, f"{where}[{j}]", "must be a non-empty list of strings")
            for c in g:
                self.require(c not in seen, f"{where}[{j}]", f"category {c!r} is in two groups")
                seen.add(c)
            groups.append(tuple(g))
        return tuple(groups)


# ---------------------------------------------------------------- writing


def to_dict(model: Scorecard) -> dict[str, Any]:
    """The JSON-ready dict of a model or part (inverse of `from_dict`)."""
    s = model.scaling
    out: dict[str, Any] = {
        "format": FORMAT,
        "name": model.name,
        "scaling": {"pdo": _num(s.pdo), "odds": _num(s.odds), "base_points": _num(s.base_points)},
        "intercept": model.intercept,
        "cutoff": model.cutoff,
        "features": [_feature_dict(f) for f in model.features],
    }
    if model.part is not None:
        p = model.part
        out["part"] = {
            "owner": p.owner,
            "mode": p.mode,
            "model_digest": p.model_digest,
            "score_range": list(p.score_range),
            "max_cost": p.max_cost,
        }
    return out


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _feature_dict(f: Feature) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f.name, "owner": f.owner, "kind": f.kind}
    if isinstance(f, HiddenFeature):
        d["bins"] = f.n_bins
        return _with_reason(d, f)
    if isinstance(f, NumericFeature):
        d["edges"] = [_num(e) for e in f.edges]
    else:
        d["categories"] = [list(g) for g in f.categories]
    if f.points is not None:
        d["points"] = list(f.points)
        if isinstance(f, CategoricalFeature):
            d["other_points"] = f.other_points
        d["missing_points"] = f.missing_points
    return _with_reason(d, f)


def _with_reason(d: dict[str, Any], f: Feature) -> dict[str, Any]:
    """`reason` only when the model gives one: an older model keeps its digest."""
    if f.reason is not None:
        d["reason"] = f.reason.to_dict()
    return d


def dump_model(model: Scorecard, path: str | Path) -> None:
    """Write a model or part as pretty JSON, atomically and durably (complete or not at all)."""
    write_durably(Path(path), json.dumps(to_dict(model), indent=2) + "\n")
