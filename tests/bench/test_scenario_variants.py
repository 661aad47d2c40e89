"""The bench's `--minute` / `--documents` variants: only the clock's speed and the workload's size change."""

from __future__ import annotations

from bench.runner import ideal_wall
from bench.scenarios import SCENARIOS, scenario_named, with_minute


def test_a_minute_variant_keeps_limits_and_scales_time_and_caps() -> None:
    """A 60 s minute keeps the per-minute limits, scales the caps by 10 and gets its own name beside rpm_bound."""
    base = SCENARIOS["rpm_bound"]  # a 6 s minute
    variant = with_minute(base, 60.0, None)
    assert variant.name == "rpm_bound_minute60s"
    assert (variant.rpm, variant.itpm, variant.otpm) == (base.rpm, base.itpm, base.otpm)
    assert variant.time_scale == 1.0
    assert variant.quick_cap == base.quick_cap * 10
    # A perfect client needs 10x longer for the same documents: the ideal is computed on the variant's clock.
    assert ideal_wall(variant, 400, 50.0, 30.0)[0] == 10 * ideal_wall(base, 400, 50.0, 30.0)[0]
    assert SCENARIOS["rpm_bound"] is base  # the scenario itself is untouched


def test_a_variant_is_found_again_by_its_name() -> None:
    """A report rebuilt in a new process finds a variant from its name alone (minute and documents parsed back)."""
    found = scenario_named("itpm_bound_minute60s_200docs")
    assert found is not None
    assert (found.minute, found.documents, found.quick_documents) == (60.0, 200, 200)
    assert scenario_named("seed100") is SCENARIOS["seed100"]
    assert scenario_named("no_such_scenario_minute6s") is None


def test_the_scenarios_own_minute_keeps_its_name() -> None:
    """Asking for the minute a scenario already has changes nothing, so its results replace its own."""
    base = SCENARIOS["rpm_bound"]
    assert with_minute(base, base.minute, None).name == "rpm_bound"
    assert with_minute(base, None, None) is base


def test_a_variant_counting_headers_at_admission_is_named_and_found_again() -> None:
    """`--headers-at-admission` makes a variant whose emulator counts headers at admission, found by its name."""
    base = SCENARIOS["otpm_bound"]
    variant = with_minute(base, None, None, counted_at_admission=True)
    assert variant.name == "otpm_bound_admission"
    assert variant.emulator(True, 1).headers_counted == "admission"
    assert base.emulator(True, 1).headers_counted == "end"
    found = scenario_named("otpm_bound_minute60s_admission")
    assert found is not None
    assert (found.minute, found.headers_counted) == (60.0, "admission")
