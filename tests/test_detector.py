"""The streaming detector: interface, ONNX parity, causality, determinism, state size, bad inputs."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from e2sim import catalogue as cat
from e2sim.world import World, WorldConfig
from models.artifact import context_groups, load_session, read_artifact
from models.detector import DetectorConfig, StreamingDetector
from models.detector.passes import step_inputs
from models.detector.step import DetectorStep
from models.scoring import score_arrays
from ranomaly_contracts.dataset import KpmArrays

PERIOD_MS = 300_000
SINR = cat.MEASUREMENT_NAMES.index("L1M.DL-SS-SINR.SSB")
FAST = DetectorConfig(epochs=1, warmup_periods=12)


def _arrays(seed: int, n_cells: int, days: float, events: float = 0.62) -> KpmArrays:
    world = World(WorldConfig(seed=seed, n_cells=n_cells, events_per_cell_day=events))
    first = world.stream_start(PERIOD_MS, 0, realtime=False).first_period
    block = world.block(first, int(days * 86_400_000 // PERIOD_MS), PERIOD_MS)
    return KpmArrays(
        times_ms=block.times_ms,
        node_ids=tuple(world.node_ids[n] for n in world.cell_node),
        cell_ids=world.cell_ids,
        measurements=cat.MEASUREMENT_NAMES,
        values=block.values,
        reported=np.ones(block.values.shape[:2], dtype=bool),
    )


@pytest.fixture(scope="module")
def data() -> KpmArrays:
    """Four days of 12 cells at 5 minutes."""
    return _arrays(3, 12, 4)


@pytest.fixture(scope="module")
def fitted(data: KpmArrays) -> StreamingDetector:
    """A detector trained on the first three days."""
    detector = StreamingDetector(FAST)
    detector.fit(replace(data, times_ms=data.times_ms[:864], values=data.values[:864], reported=data.reported[:864]))
    return detector


@pytest.fixture(scope="module")
def step(fitted: StreamingDetector) -> DetectorStep:
    """The trained step of that detector (torch), to drive by hand."""
    assert fitted.step is not None
    return fitted.step


def test_exported_graph_has_the_contract_interface(fitted: StreamingDetector) -> None:
    assert fitted.artifact is not None
    session = load_session(fitted.artifact)
    assert [i.name for i in session.get_inputs()] == ["x", "mask", "time", "state", "group"]
    assert [o.name for o in session.get_outputs()] == ["score", "deviation", "state_out"]
    manifest = fitted.artifact.manifest
    assert manifest.measurements == cat.MEASUREMENT_NAMES and manifest.period_s == 300
    assert 4 * manifest.state_size <= 4096, "at most 4 KiB of state per cell"
    assert set(manifest.thresholds.deviation) == set(cat.MEASUREMENT_NAMES)
    k, s = len(manifest.measurements), manifest.state_size
    out = session.run(None, {"x": np.ones((3, k), np.float32), "mask": np.ones((3, k), np.float32),
                             "time": np.zeros((3, 4), np.float32), "state": np.zeros((3, s), np.float32),
                             "group": np.zeros(3, np.float32)})  # fmt: skip
    assert [o.shape for o in out] == [(3,), (3, k), (3, s)] and all(o.dtype == np.float32 for o in out)


def test_onnx_runtime_matches_torch_on_real_and_random_windows(fitted: StreamingDetector, data: KpmArrays) -> None:
    """Same inputs and state into both runtimes, period after period of real data, with random periods
    (values and missing records) mixed in, the cells grouped by node: outputs agree to 1e-5."""
    assert fitted.step is not None and fitted.artifact is not None
    session = load_session(fitted.artifact)
    inputs = step_inputs(data)
    rng = np.random.default_rng(0)
    state = torch.zeros(inputs.x.shape[1], fitted.step.layout.size)
    worst = {"score": 0.0, "deviation": 0.0, "state": 0.0}
    for row in range(1000):
        x, mask, time = (torch.from_numpy(a[row]) for a in (inputs.x, inputs.mask, inputs.time))
        if row % 97 == 0:
            mask = torch.from_numpy((rng.random(x.shape) > 0.2).astype(np.float32))
            x = torch.from_numpy(rng.uniform(0, 5000, x.shape).astype(np.float32)) * mask
        group = context_groups(inputs.node, inputs.stamps[row])
        with torch.no_grad():
            expected = fitted.step(x, mask, time, state, torch.from_numpy(group))
        got = session.run(None, {"x": x.numpy(), "mask": mask.numpy(), "time": time.numpy(), "state": state.numpy(),
                                 "group": group})  # fmt: skip
        for name, want, have in zip(worst, expected, got, strict=True):
            scale = np.maximum(np.abs(want.numpy()), 1.0) if name == "state" else 1.0
            worst[name] = max(worst[name], float((np.abs(have - want.numpy()) / scale).max()))
        state = expected[2]
    assert max(worst.values()) <= 1e-5, worst


def test_scores_are_causal(fitted: StreamingDetector, data: KpmArrays) -> None:
    base = fitted.stream(data)
    changed = data.values.copy()
    changed[700:] *= 3.0
    changed[650, 2, :] = np.nan
    later = fitted.stream(replace(data, values=changed))
    np.testing.assert_array_equal(base.scores[:650], later.scores[:650])
    np.testing.assert_array_equal(base.deviations[:650], later.deviations[:650])
    assert not np.array_equal(base.scores[700:], later.scores[700:])


@pytest.mark.timeout(900)  # two trainings: generous for a busy 2-core machine
def test_training_is_deterministic_for_a_seed(data: KpmArrays) -> None:
    part = replace(data, times_ms=data.times_ms[:700], values=data.values[:700], reported=data.reported[:700])
    first, second = StreamingDetector(FAST), StreamingDetector(FAST)
    first.fit(part)
    second.fit(part)
    assert first.thresholds == second.thresholds
    np.testing.assert_array_equal(first.score(data), second.score(data))


def test_a_silent_cell_is_an_anomaly_not_a_gap(fitted: StreamingDetector, data: KpmArrays) -> None:
    values = data.values.copy()
    values[900:910, 4, :] = np.nan
    result = fitted.stream(replace(data, values=values))
    assert fitted.artifact is not None
    threshold = fitted.artifact.manifest.thresholds.score
    assert (result.scores[902:910, 4] > threshold).all(), "silent from its third period on"
    assert (result.deviations[909, 4] > result.deviations[901, 4]).all(), "the silence adds up its surprise"


def test_warming_up_cells_get_no_verdict(fitted: StreamingDetector, data: KpmArrays) -> None:
    result = fitted.stream(data)
    assert not result.warm[: FAST.warmup_periods].any() and result.warm[FAST.warmup_periods :].all()
    assert np.isnan(result.verdicts(1.0)[: FAST.warmup_periods]).all()


def test_a_cell_never_seen_in_training_is_scored(fitted: StreamingDetector) -> None:
    other = _arrays(8, 6, 2, events=0.0)  # another network: every cell is new
    scores = fitted.score(other)
    assert np.isfinite(scores[FAST.warmup_periods :]).all()
    assert fitted.artifact is not None
    alarms = scores[300:] >= fitted.artifact.manifest.thresholds.score
    assert alarms.mean() < 0.05, "new cells without anomalies must not alarm constantly"


def test_too_short_a_history_is_refused_clearly(data: KpmArrays) -> None:
    short = replace(data, times_ms=data.times_ms[:20], values=data.values[:20], reported=data.reported[:20])
    with pytest.raises(ValueError, match="too few to train"):
        StreamingDetector(FAST).fit(short)


def test_scoring_refuses_data_the_model_cannot_read(fitted: StreamingDetector, data: KpmArrays) -> None:
    assert fitted.artifact is not None
    session = load_session(fitted.artifact)
    fewer = replace(data, measurements=data.measurements[:-1], values=data.values[..., :-1])
    with pytest.raises(ValueError, match="lacks measurement"):
        score_arrays(fitted.artifact, session, fewer)
    faster = replace(data, times_ms=data.times_ms[0] + np.arange(len(data.times_ms)) * 60_000)
    with pytest.raises(ValueError, match="trained at 300 s"):
        score_arrays(fitted.artifact, session, faster)


def test_saved_artifact_reads_back_and_scores_the_same(
    fitted: StreamingDetector, data: KpmArrays, tmp_path: Path
) -> None:
    saved = fitted.save(tmp_path / "artifact")
    again = read_artifact(tmp_path / "artifact")
    assert again.manifest == saved.manifest and again.onnx == saved.onnx
    result = score_arrays(again, load_session(again), data)
    np.testing.assert_array_equal(result.scores, fitted.stream(data).scores)


def test_statistical_evidence_needs_a_second_period_and_a_lasting_anomaly_ranks_just_under_the_threshold(
    fitted: StreamingDetector, data: KpmArrays
) -> None:
    assert fitted.artifact is not None and fitted.step is not None
    threshold = fitted.artifact.manifest.thresholds.score
    sustain = fitted.step.sustain_level
    assert sustain == pytest.approx(FAST.sustain_fraction * threshold)
    delay = cat.MEASUREMENT_NAMES.index("DRB.RlcSduDelayDl")
    values = data.values.copy()
    values[950:990, 2, delay] *= 20  # a delay twenty times the usual, for 40 periods
    result = fitted.stream(replace(data, values=values))
    scores, deviations = result.scores[:, 2], result.deviations[:, 2, delay]
    assert deviations[951] > threshold and scores[951] < threshold, "the evidence of one period is not confirmed"
    onset = FAST.onset_periods
    assert (scores[952 : 952 + onset] >= threshold).all(), "confirmed: the onset of the run counts in full"
    later = scores[952 + onset : 985]
    assert (later < threshold).all(), "later periods raise no alarm after alarm ..."
    assert (later > 0.9 * sustain).all() and np.isclose(later, sustain).mean() > 0.8, "... yet rank just under it"
    assert (deviations[952:975] > threshold).all(), "while the measurement's deviation says how far off it is"


def test_a_small_count_keeps_a_spread_floor_where_the_network_would_predict_none(fitted: StreamingDetector) -> None:
    assert fitted.step is not None
    step = copy.deepcopy(fitted.step)
    k = step.n_measurements
    last = step.net.layers[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():  # a network that learnt "no spread at all", as night handover counts of mostly zeros teach
        last.weight[k:] = 0.0
        last.bias[k:] = -10.0
    _, log_spread = step.net(torch.zeros(1, step.net.feature_mean.shape[0]))
    spread = torch.exp(log_spread)[0]
    counts = step.transform > 1.5  # Anscombe: the small counts, chosen from the training data
    handovers = cat.MEASUREMENT_NAMES.index("MM.HoExeInterReq")
    assert bool(counts[handovers]), "handover executions are small counts"
    assert (spread[counts] >= FAST.count_min_spread * (1 - 1e-6)).all(), "one count more is never a huge error"
    assert (spread[~counts] < 0.1).all(), "continuous measurements keep the network's own spread"


def test_a_re_alarm_soon_after_a_run_belongs_to_it_and_a_later_one_is_new(
    fitted: StreamingDetector, data: KpmArrays
) -> None:
    assert fitted.artifact is not None
    threshold = fitted.artifact.manifest.thresholds.score
    delay = cat.MEASUREMENT_NAMES.index("DRB.RlcSduDelayDl")
    values = data.values.copy()
    for first in (950, 975, 1040):  # a burst, one ten periods after it ends, one long after (rearm: 30 periods)
        values[first : first + 12, 2, delay] *= 20
    scores = fitted.stream(replace(data, values=values)).scores[:, 2]
    assert (scores[952:962] >= threshold).all(), "the first burst alarms"
    assert (scores[977:987] < threshold).all(), "the second is the same incident: ranked just under, no new alarm"
    assert scores[1041:1052].max() >= threshold, "a burst after the run has closed is a new alarm"


def test_a_cell_falling_silent_inside_an_open_run_alarms_anew(fitted: StreamingDetector, data: KpmArrays) -> None:
    assert fitted.artifact is not None
    threshold = fitted.artifact.manifest.thresholds.score
    delay = cat.MEASUREMENT_NAMES.index("DRB.RlcSduDelayDl")
    values = data.values.copy()
    values[950:990, 2, delay] *= 20  # a long incident: its later periods are held under the threshold ...
    values[975:980, 2, :] = np.nan  # ... when the cell goes silent in the middle of it
    scores = fitted.stream(replace(data, values=values)).scores[:, 2]
    onset = FAST.onset_periods
    assert (scores[952 + onset : 975] < threshold).all(), "the run is past its onset"
    assert (scores[977:980] >= threshold).all(), "the silence is a new incident: it alarms however old the run"
    assert (scores[981:990] < threshold).all(), "values back: the run goes on held under the threshold"


def test_a_new_profile_bin_learns_its_first_day_at_a_bounded_pace(step: DetectorStep, data: KpmArrays) -> None:
    assert float(step.transform[SINR]) == 0.0, "SINR is read as is: its shift below is in dB"
    x = torch.from_numpy(np.nan_to_num(data.values[100, 2:3])).float()
    mask = torch.ones_like(x)

    def at_ten(weekend: float) -> torch.Tensor:
        tod = 10.0 / 24.0
        return torch.tensor([[np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod), weekend, tod]], dtype=torch.float32)

    state, alone = torch.zeros(1, step.layout.size), torch.zeros(1)
    with torch.no_grad():
        for _ in range(60):  # a weekday at 10:00: the weekday bin and the recent level know the cell
            state = step(x, mask, at_ten(0.0), state, alone)[2]
        state = step(x, mask, at_ten(1.0), state, alone)[2]  # the first Saturday at 10:00: a new bin
        start = float(step.layout.unpack(state)["level_weekend"][0, 10, SINR])
        shifted = x.clone()
        shifted[0, SINR] -= 1.0  # then 12 periods 1 dB lower (6 periods make the half hour at 5 minutes)
        for _ in range(12):
            state = step(shifted, mask, at_ten(1.0), state, alone)[2]
    learnt = start - float(step.layout.unpack(state)["level_weekend"][0, 10, SINR])
    assert abs(start - float(x[0, SINR])) < 0.05, "the new bin starts from the cell's recent level"
    assert 0.3 < learnt < 0.75, f"the day's own values refine the bin at a bounded pace (learnt {learnt:.2f} dB of 1)"


def test_a_new_profile_bin_first_seen_during_an_alarm_starts_from_the_known_profile_not_the_anomaly(
    step: DetectorStep, data: KpmArrays
) -> None:
    x = torch.from_numpy(np.nan_to_num(data.values[100, 2:3])).float()
    mask = torch.ones_like(x)
    tod = 10.0 / 24.0
    weekday = torch.tensor([[np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod), 0.0, tod]], dtype=torch.float32)
    saturday = weekday.clone()
    saturday[0, 2] = 1.0
    collapsed = x.clone()
    collapsed[0, SINR] -= 10.0  # SINR collapses by 10 dB: an alarm run opens
    state, alone = torch.zeros(1, step.layout.size), torch.zeros(1)
    with torch.no_grad():
        for _ in range(60):
            state = step(x, mask, weekday, state, alone)[2]
        for _ in range(6):
            state = step(collapsed, mask, weekday, state, alone)[2]
        s = step.layout.unpack(state)
        assert float(s["alarm_run"][0, 0]) > 0, "the collapse has opened an alarm run"
        recent = float(s["recent"][0, SINR])
        state = step(collapsed, mask, saturday, state, alone)[2]  # the first Saturday at 10:00, still collapsed
    start = float(step.layout.unpack(state)["level_weekend"][0, 10, SINR])
    assert recent < float(x[0, SINR]) - 5.0, "the recent level has followed the collapse"
    assert abs(start - float(x[0, SINR])) < 0.5, f"the new bin starts from the weekday profile (at {start:.1f} dB)"


def test_a_small_count_repeating_by_chance_is_no_stuck_counter(step: DetectorStep) -> None:
    handovers = cat.MEASUREMENT_NAMES.index("MM.HoExeInterReq")
    throughput = cat.MEASUREMENT_NAMES.index("DRB.UEThpDl")
    assert float(step.transform[handovers]) == 2.0 and float(step.transform[throughput]) == 1.0
    s = step.layout.unpack(torch.zeros(2, step.layout.size))
    x = torch.full((2, step.n_measurements), 400.0)
    x[0, handovers] = 0.0  # night: no handover, period after period
    s["last"], s["count"] = x.clone(), torch.full((2, 1), 500.0)
    s["run"] = torch.full_like(x, 10.0)  # the 12th identical value in a row ...
    s["repeat_rate"] = torch.full_like(x, 0.01)  # ... where the cell's values repeated 1 time in 100
    present = torch.ones_like(x, dtype=torch.bool)
    zero = torch.zeros_like(x)
    features = torch.zeros(2, 3 + 2 * step.n_measurements)
    stuck = step.evidence(x, zero, zero, present, s, zero, features)["stuck"] / step.q_stuck
    assert float(stuck[0, handovers]) == pytest.approx(0.0, abs=1e-6), "zero handovers again is just chance"
    assert float(stuck[1, handovers]) > 3.0, "400 handovers exactly again, 12 times, is a stuck counter"
    assert float(stuck[0, throughput]) > 3.0, "a continuous measurement keeps its learnt repeat rate"


def test_a_slow_ramp_the_drift_offset_follows_still_stands_out_against_the_profile(
    step: DetectorStep, data: KpmArrays
) -> None:
    values = data.values[:, 2:3].copy()
    ramp = slice(900, 996)  # a degradation: SINR falls by 3 dB over 8 hours (5-minute periods)
    values[ramp, 0, SINR] -= np.linspace(0.0, 3.0, 96)
    one_cell = replace(
        data, node_ids=data.node_ids[2:3], cell_ids=data.cell_ids[2:3], values=values, reported=data.reported[:, 2:3]
    )
    inputs = step_inputs(one_cell)
    state, alone = torch.zeros(1, step.layout.size), torch.zeros(1)
    with torch.no_grad():
        for row in range(ramp.stop):
            x, mask, time = (torch.from_numpy(a[row]) for a in (inputs.x, inputs.mask, inputs.time))
            s = step.layout.unpack(state)
            c = step.context(x, mask, time, s)
            u, z, _ = step.errors(c["residual"], c["present"], c["features"], alone)
            evidence = step.evidence(x, u, z - s["z_bias"], c["present"], s, c["profile_residual"], c["features"])
            state = step(x, mask, time, state, alone)[2]
    followed = -float(s["offset"][0, SINR])
    against_baseline = abs(float(evidence["u_long"][0, SINR] / step.q_u_long[SINR]))
    against_profile = abs(float(evidence["shift_long"][0, SINR] / step.q_shift_long[SINR]))
    assert followed > 1.0, f"the drift offset has followed much of the ramp ({followed:.2f} dB of 3)"
    assert against_profile > 1.0, "against the profile alone the shift is beyond the normal 99.9 % level"
    assert against_profile > 1.2 * against_baseline, "and stands out more than against the baseline that followed it"
