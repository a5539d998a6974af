"""The step benchmark times a step only once the heap has settled."""

import mmap

from growlib.harness.bench import SETTLED_PAGE_FAULTS, warm_up_until_settled

PAGE = mmap.PAGESIZE


def _touch_fresh_pages(n_bytes: int, keep: list) -> None:
    block = mmap.mmap(-1, n_bytes)  # anonymous memory: every page is fresh until first written
    for offset in range(0, n_bytes, PAGE):
        block[offset] = 1
    keep.append(block)


def test_warm_up_stops_at_the_first_step_that_takes_no_fresh_pages():
    held: list = []

    def step():  # grows by 64 MiB twice, then reuses what it holds
        if len(held) < 2:
            _touch_fresh_pages(64 * 2**20, held)

    faults = warm_up_until_settled(step, max_steps=6)
    assert len(faults) == 3
    assert all(f >= 64 * 2**20 // PAGE for f in faults[:2])
    assert faults[2] < SETTLED_PAGE_FAULTS


def test_warm_up_gives_up_after_max_steps_when_every_step_takes_fresh_pages():
    held: list = []
    faults = warm_up_until_settled(lambda: _touch_fresh_pages(32 * 2**20, held), max_steps=4)
    assert len(faults) == 4
    assert min(faults) >= SETTLED_PAGE_FAULTS


def test_the_recipes_figures_are_written_under_both_names():
    from growlib.harness.bench import with_earlier_names

    out = with_earlier_names({"recipe_dense_step_fraction_of_peak": 0.75, "recipe_moe_step_fraction_of_peak": 0.7,
                              "cpu_dense_step_seconds": 1.0})
    assert out["seed_dense_step_fraction_of_peak"] == out["recipe_dense_step_fraction_of_peak"] == 0.75
    assert out["seed_moe_step_fraction_of_peak"] == out["recipe_moe_step_fraction_of_peak"] == 0.7
    assert "seed_cpu_dense_step_seconds" not in out and out["cpu_dense_step_seconds"] == 1.0
