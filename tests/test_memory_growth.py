"""The memory a phase needs stops growing once its buffers exist: a plan made before the phase holds to its end."""

from growlib.harness.bench import _in_subprocess


def test_moe_phase_peak_does_not_grow_with_steps():
    # A fresh process (the peak is the process's), the cpu preset's MoE, AdamW, 40 steps.
    # Shapes that change with the routing at every step once made the peak climb by ~40%
    # between steps 10 and 40 here; a steady state stays within a few percent.
    r = _in_subprocess("phase_peaks", "cpu", 2, (10, 40))
    peaks = r["peaks_gb"]
    assert r["last_over_first"] <= 1.10, f"peak RSS after 10 steps {peaks['10']:.3f} GB, after 40 {peaks['40']:.3f} GB"
    # and the plan made before the phase is near what was measured
    assert 0.85 <= r["estimate_over_measured"] <= 1.15, r
