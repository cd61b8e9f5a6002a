"""Learning-rate schedules: the rate of every step in TensorBoard, against the schedules' formulas."""

from __future__ import annotations

import math

import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_pl import DenseClassifier, MNISTDataModule, build_trainer

LR, STEPS = 0.01, 18  # 288 training images of the generated set in batches of 32, 2 epochs


def one_cycle(step: int) -> float:
    """torch's OneCycleLR with its defaults (30% warm-up, cosine, div_factor 25, final_div_factor
    1e4), written out from its documentation."""
    start, peak = LR / 25, LR
    end = start / 1e4
    warm_up_end = 0.3 * STEPS - 1
    if step <= warm_up_end:
        low, high, share = start, peak, step / warm_up_end
    else:
        low, high, share = peak, end, (step - warm_up_end) / (STEPS - 1 - warm_up_end)
    return high + (low - high) / 2 * (math.cos(math.pi * share) + 1)


def cosine(step: int) -> float:
    """Cosine annealing from LR to zero over the run."""
    return LR * (1 + math.cos(math.pi * step / STEPS)) / 2


def logged_rates(scheduler: str, idx_dir, tmp_path):
    model = DenseClassifier(hidden_sizes=[8], lr=LR, scheduler=scheduler)
    trainer = build_trainer(model, TensorBoardLogger(tmp_path, name="run"), accelerator="cpu", max_epochs=2,
                            log_every_n_steps=1, limit_val_batches=1, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=MNISTDataModule(data_dir=str(idx_dir), batch_size=32))
    events = EventAccumulator(trainer.logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    rates = [tag for tag in events.Tags()["scalars"] if tag.startswith("lr-")]
    assert rates == ["lr-Adam"], events.Tags()["scalars"]
    return [(e.step, e.value) for e in events.Scalars("lr-Adam")], trainer


@pytest.mark.parametrize("scheduler, formula", [("onecycle", one_cycle), ("cosine", cosine)])
def test_learning_rate_of_every_step_is_in_tensorboard(scheduler, formula, idx_dir, tmp_path):
    logged, trainer = logged_rates(scheduler, idx_dir, tmp_path)
    assert [step for step, _ in logged] == list(range(STEPS))
    assert [rate for _, rate in logged] == pytest.approx([formula(step) for step in range(STEPS)], rel=1e-5)
    final = trainer.optimizers[0].param_groups[0]["lr"]
    if scheduler == "cosine":
        assert final == pytest.approx(0, abs=1e-12)  # annealed to zero when the run ends
    else:  # the last step runs at the floor, the start rate over 10,000
        assert logged[-1][1] == pytest.approx(LR / 25 / 1e4, rel=1e-5)
