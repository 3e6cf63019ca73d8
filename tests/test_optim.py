"""The learning-rate schedules, rule by rule: drops, thresholds, patience, warm-up, minimum
epochs per LR, the LR floor, early stop, and state round trips mid-plateau."""
import json
import math

import pytest

from alexnet_cpu.optim import ConstantLR, PlateauLR, StepLR, make_schedule


def run(sched, values, key="loss"):
    """The lr after each epoch for a sequence of monitored values."""
    return [sched.step({"loss": v, "top1": v} if key else v) for v in values]


def test_constant_never_changes():
    s = make_schedule("constant", 0.02)
    assert isinstance(s, ConstantLR)
    assert run(s, [5, 4, 9, 9, 9, 9]) == [0.02] * 6 and not s.finished


def test_step_divides_every_step_size_epochs():
    s = make_schedule("step", 1.0, step_size=2)
    assert isinstance(s, StepLR)
    assert run(s, [0] * 7) == pytest.approx([1, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3])


def test_unknown_schedule_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        make_schedule("cosine", 0.1)
    with pytest.raises(ValueError, match="monitor"):
        PlateauLR(0.1, monitor="top5")
    with pytest.raises(ValueError, match="patience >= 1"):
        PlateauLR(0.1, patience=0)


def test_plateau_drops_after_patience_stalled_epochs():
    s = PlateauLR(1.0, patience=2, threshold=0)
    # improves, improves, stalls twice -> drop; the drop is used from the next epoch on
    assert run(s, [3, 2, 2, 2.5]) == pytest.approx([1, 1, 1, 0.1])
    assert s.drops == 1


def test_plateau_relative_threshold_ignores_noise():
    # a 0.5% better loss is not an improvement with threshold 1%: counts as a stall
    s = PlateauLR(1.0, patience=2, threshold=0.01)
    assert run(s, [1.0, 0.995, 0.991]) == pytest.approx([1, 1, 0.1])
    s = PlateauLR(1.0, patience=2, threshold=0.01)
    assert run(s, [1.0, 0.98, 0.96]) == [1, 1, 1]          # 2% steps are improvements


@pytest.mark.parametrize("values, lrs", [
    ([10.0, 9.95, 9.91], [1, 1, 0.1]),     # steps of 0.05: > 0.01 absolute, < 1% of 10
    ([0.1, 0.098, 0.096], [1, 1, 1]),      # steps of 0.002: < 0.01 absolute, 2% of 0.1
], ids=["best-10", "best-0.1"])
def test_plateau_threshold_is_relative_to_the_best_loss(values, lrs):
    """Away from a best of 1 a relative and an absolute threshold disagree."""
    assert run(PlateauLR(1.0, patience=2, threshold=0.01), values) == pytest.approx(lrs)


@pytest.mark.parametrize("values, lrs, best", [
    ([0.2, 0.205, 0.21], [1, 1, 1], 0.21),       # 2.5% better each epoch, but only 0.005
    ([0.5, 0.504, 0.5045], [1, 1, 0.1], 0.5),    # each less than 1% better than 0.5
], ids=["best-0.2", "best-0.5"])
def test_plateau_threshold_is_relative_to_the_best_top1(values, lrs, best):
    s = PlateauLR(1.0, patience=2, threshold=0.01, monitor="top1")
    assert run(s, values) == pytest.approx(lrs)
    assert s.best == best


def test_plateau_on_top1_is_the_papers_rule():
    s = PlateauLR(1.0, patience=1, monitor="top1", threshold=0)
    assert run(s, [0.5, 0.6, 0.6, 0.7, 0.65]) == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert s.min_lr == pytest.approx(1e-3)                   # default: three drops


def test_plateau_no_drop_during_warmup():
    s = PlateauLR(1.0, patience=1, threshold=0, warmup_epochs=3)
    assert run(s, [2, 2, 2, 2]) == pytest.approx([1, 1, 1, 0.1])


def test_plateau_min_epochs_at_each_lr():
    s = PlateauLR(1.0, patience=1, threshold=0, min_epochs=3)
    # stalls from epoch 2 on: the first drop waits for 3 epochs at lr 1, the next for 3 more
    assert run(s, [1] * 7) == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_plateau_floor_and_early_stop():
    s = PlateauLR(1.0, patience=1, threshold=0, min_lr=0.05, early_stop=True)
    lrs = run(s, [1, 1, 1])
    assert lrs == pytest.approx([1, 0.1, 0.05]) and not s.finished
    run(s, [1])
    assert s.finished and s.lr == pytest.approx(0.05)
    s = PlateauLR(1.0, patience=1, threshold=0, min_lr=0.05)   # without early_stop: runs on
    run(s, [1] * 10)
    assert not s.finished and s.lr == pytest.approx(0.05)


def test_plateau_without_validation_data_never_drops():
    s = PlateauLR(1.0, patience=1)
    assert run(s, [math.nan] * 5) == [1] * 5


def test_resume_mid_plateau_continues_identically():
    values = [3, 2, 2.1, 2.05, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0]
    full = PlateauLR(1.0, patience=2, threshold=0.01, min_epochs=2)
    expect = run(full, values)
    for cut in range(1, len(values)):
        first = PlateauLR(1.0, patience=2, threshold=0.01, min_epochs=2)
        run(first, values[:cut])
        resumed = PlateauLR(1.0, patience=2, threshold=0.01, min_epochs=2)
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # as in a file
        assert run(resumed, values[cut:]) == expect[cut:], cut
    assert full.drops == 3


@pytest.mark.parametrize("edit, msg", [
    (lambda st: st.pop("best"), "does not match"),
    (lambda st: st.update(extra=1), "does not match"),
    (lambda st: st.update(lr="0.1"), "lr = '0.1'"),
    (lambda st: st.update(bad_epochs=1.5), "bad_epochs"),
    (lambda st: st.update(early_stop=1), "early_stop"),
    (lambda st: st.update(lr=math.nan), "lr = nan"),
])
def test_load_state_dict_refuses_foreign_state(edit, msg):
    st = PlateauLR(1.0).state_dict()
    edit(st)
    with pytest.raises(ValueError, match=msg):
        PlateauLR(1.0).load_state_dict(st)
    with pytest.raises(ValueError, match="does not match the step schedule"):
        StepLR(1.0).load_state_dict(PlateauLR(1.0).state_dict())
