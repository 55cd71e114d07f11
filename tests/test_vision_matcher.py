"""The 1:N search against brute force: every member's nearest template, the
best and second-best member, whatever the number of templates per member
(the slot-major layout pads short members and matches long ones as overflow)."""

from __future__ import annotations

import numpy as np

from vision.matcher import MatchConfig, Matcher


def brute(ids: list[str], templates: np.ndarray, probe: np.ndarray) -> dict[str, float]:
    nearest: dict[str, float] = {}
    for member, t in zip(ids, templates, strict=True):
        d = float(np.linalg.norm(t.astype(np.float64) - probe))
        nearest[member] = min(d, nearest.get(member, np.inf))
    return nearest


def test_search_equals_brute_force_for_any_templates_per_member() -> None:
    rng = np.random.default_rng(7)
    config = MatchConfig(threshold=0.55, min_margin=0.0)
    for trial in range(40):
        members = int(rng.integers(1, 40))
        counts = rng.integers(1, 9, members)  # 1..8 templates: padding and overflow
        ids = [f"m{j}" for j in range(members) for _ in range(counts[j])]
        order = rng.permutation(len(ids))  # enrolled in any order
        ids = [ids[i] for i in order]
        templates = rng.normal(0, 0.09, (len(ids), 128)).astype(np.float32)
        matcher = Matcher(ids, templates, config)
        assert matcher.member_count == members
        for _ in range(10):
            probe = templates[rng.integers(len(ids))] + rng.normal(0, 0.02, 128)
            expected = brute(ids, templates, probe)
            ranked = sorted(expected, key=lambda m: expected[m])
            got = matcher.match(probe.astype(np.float32))
            assert got.best_member == ranked[0], trial
            assert abs(got.distance - expected[ranked[0]]) < 1e-4
            if members > 1:
                margin = expected[ranked[1]] - expected[ranked[0]]
                assert abs(got.margin - margin) < 1e-4
            else:
                assert got.margin == float("inf")
            by_member = dict(zip(sorted(expected), matcher.member_distances(probe), strict=True))
            assert all(abs(by_member[m] - expected[m]) < 1e-4 for m in expected)


def test_empty_gallery_matches_nobody() -> None:
    matcher = Matcher([], np.zeros((0, 128), np.float32))
    result = matcher.match(np.zeros(128, np.float32))
    assert (result.member_id, result.reason) == (None, "no_templates")
