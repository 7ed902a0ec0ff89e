"""Training: a tiny run, resuming from its checkpoint, exporting weights, and DDP with 2 CPU processes."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mss_cli.weights import load_model, read_metadata
from mss_research.train import TrainConfig, export, train

TINY_CHANNELS = [4, 8, 8, 8, 8, 8]


def tiny_run(data: Path, run: Path, **settings) -> TrainConfig:
    """A training run on the tiny dataset: tiny widths, one step of batch 2, one validation episode
    each step, 2 threads; ``settings`` change any of it."""
    defaults = dict(channels=TINY_CHANNELS, steps=1, batch=2, val_episodes=1, val_every=1, threads=2)
    return TrainConfig(data=str(data), run=str(run), **{**defaults, **settings})


def steps_logged(run: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader((run / "log.csv").open())]


def test_train_resume_and_export(tmp_path, tiny_dataset):
    cfg = tiny_run(tiny_dataset, tmp_path / "run", steps=2, val_episodes=2, val_every=2, checkpoint_every=1)
    ckpt = train(cfg)
    with safe_open(str(ckpt), "pt") as fh:
        assert fh.metadata()["step"] == "2"
        assert any(k.startswith("optim.") for k in fh.keys())  # noqa: SIM118 (safe_open is not iterable); optimiser state travels too
    log = tmp_path / "run" / "log.csv"
    # A marked smoothed loss at the checkpoint's step, then a row as if killed after logging past it.
    log.write_text(
        log.read_text().replace(f",{next(csv.DictReader(log.open()))['loss']},", ",-100.00000,")
        + "10,-1.0,0.01,,,,,,,0.001\n"
    )
    cfg.steps, cfg.precision = 3, "bf16"  # resumed in bfloat16 autocast (the default on AMX CPUs and GPUs)
    train(cfg)
    with safe_open(str(ckpt), "pt") as fh:
        assert fh.metadata()["step"] == "3"
    rows = list(csv.DictReader(log.open()))
    assert [r["step"] for r in rows] == ["2", "3"]  # the step the checkpoint never reached is gone
    assert float(rows[-1]["loss"]) < -90  # the smoothed loss went on from step 2's, not from scratch
    assert rows[0]["val_sdri"]  # validation SDR is logged
    from mss_research.train import unseen_validation

    if unseen_validation(cfg, 255 * 512):  # the tiny data may lack unseen-class stems in validation
        assert rows[0]["val_sdri_unseen"]  # a few-shot run also validates on never-trained classes
    assert np.isfinite(float(rows[-1]["loss"]))
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000
    weights = export(ckpt, tmp_path / "w.safetensors")
    meta = read_metadata(weights)
    assert meta["steps"] == "3"
    model = load_model(weights)
    assert model.config.channels == TINY_CHANNELS


def test_episode_workers_draw_different_episodes_and_train(tmp_path, tiny_dataset):
    from mss_research.train import EpisodeBatches

    cfg = tiny_run(tiny_dataset, tmp_path / "run", steps=2, val_every=2, workers=2)
    loader = torch.utils.data.DataLoader(EpisodeBatches(cfg, 255 * 512, 44100, seed=0), batch_size=None, num_workers=2)
    batches = iter(loader)
    first, second = next(batches), next(batches)  # one from each worker
    assert first["mixture"].shape == (2, 255 * 512)
    assert not torch.equal(first["mixture"], second["mixture"])  # each worker has its own seed
    del batches
    train(cfg)
    assert steps_logged(tmp_path / "run")[-1] == 2


def test_class_table_follows_the_dataset_taxonomy_version(tmp_path):
    """A baseline trained on version-1 data gets version 1's 23 rows, not later classes it never heard."""
    import json

    from mss_research.data.render import DATASET_FILE
    from mss_research.data.taxonomy import load_taxonomy
    from mss_research.train import model_config

    (tmp_path / DATASET_FILE).write_text(json.dumps({"taxonomy_version": 1}))
    config = model_config(TrainConfig(data=str(tmp_path), run="", kind="classcond"))
    assert config.class_names == [c.name for c in load_taxonomy(1).classes] and config.num_classes == 23


def test_classcond_baseline_trains(tmp_path, tiny_dataset):
    cfg = tiny_run(tiny_dataset, tmp_path / "cc", kind="classcond")
    export(train(cfg), tmp_path / "cc.safetensors")
    assert load_model(tmp_path / "cc.safetensors").config.kind == "classcond"
    row = list(csv.DictReader((tmp_path / "cc" / "log.csv").open()))[-1]
    assert row["val_sdri"] and not row["val_sdri_neg"]  # validated, with no negatives column: it takes none
    assert (tmp_path / "cc" / "curve.png").stat().st_size > 1000


def test_film_placement_is_a_training_flag(capsys, tmp_path, tiny_dataset):
    """--film bottleneck trains the paper's arrangement (one FiLM, on the bottleneck) for an A/B
    against FiLM on every encoder block (and --dropout sets the decoder's dropout). An unknown placement,
    impossible --channels, flags that contradict the run being resumed, or an existing --export file
    (without --overwrite) are one-line usage errors, given before any training."""
    from mss_cli.weights import read_metadata
    from mss_research.cli import main

    tiny = ",".join(map(str, TINY_CHANNELS))

    def mss_train(film: str, channels: str = tiny, run: str = "", *extra: str) -> int:
        try:
            main(
                [
                    "train",
                    "--data",
                    str(tiny_dataset),
                    "--run-dir",
                    str(tmp_path / (run or film)),
                    "--steps",
                    "1",
                    "--batch",
                    "2",
                    "--channels",
                    channels,
                    "--val-episodes",
                    "1",
                    "--film",
                    film,
                    "--export",
                    str(tmp_path / (f"{film}-{run}.safetensors" if run else f"{film}.safetensors")),
                    *extra,
                ]
            )
        except SystemExit as exc:
            return exc.code
        return 0

    sizes = {}
    for film, dropout in (("bottleneck", 0.1), ("encoder", 0.3)):  # --dropout rides along: config only
        assert mss_train(film, tiny, "", "--dropout", str(dropout)) == 0
        model = load_model(tmp_path / f"{film}.safetensors")
        assert model.config.film == film and model.config.dropout == dropout and model.unet.dropout.p == dropout
        sizes[film] = model.film.out_features
    assert sizes == {"bottleneck": 2 * TINY_CHANNELS[-1], "encoder": 2 * sum(TINY_CHANNELS)}
    capsys.readouterr()
    for args, message in [
        (("middle",), "FiLM placement 'middle'"),
        (("encoder", "4,abc", "bad"), "--channels '4,abc': comma-separated whole numbers"),
        (("encoder", "0,4", "bad"), "U-Net widths [0, 4]"),
        (
            ("bottleneck", tiny, "encoder"),
            "holds a fewshot model with U-Net widths "
            f"{tiny} (FiLM: encoder); these flags ask for a fewshot model with U-Net widths {tiny} (FiLM: bottleneck)",
        ),
        (("encoder", tiny, "", "--steps", "2"), "encoder.safetensors: weights file exists (use --overwrite"),
    ]:
        assert mss_train(*args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "mss-research: error:" in err and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["bottleneck.safetensors", "encoder.safetensors"]
    assert read_metadata(tmp_path / "encoder.safetensors")["steps"] == "1"
    assert mss_train("encoder", tiny, "", "--steps", "2", "--overwrite") == 0
    assert read_metadata(tmp_path / "encoder.safetensors")["steps"] == "2"


@pytest.mark.slow
def test_distributed_training_with_two_cpu_processes(tmp_path, tiny_dataset):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "mss_research",
        "train",
        "--data",
        str(tiny_dataset),
        "--run-dir",
        str(tmp_path / "ddp"),
        "--steps",
        "2",
        "--batch",
        "2",
        "--channels",
        ",".join(map(str, TINY_CHANNELS)),
        "--val-episodes",
        "1",
        "--val-every",
        "2",
        "--checkpoint-every",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with safe_open(str(tmp_path / "ddp" / "last.safetensors"), "pt") as fh:
        assert fh.metadata()["step"] == "2"


def test_training_can_start_from_shipped_style_weights(tmp_path, tiny_dataset):
    """--init continues from an exported (fp16) weights file, e.g. in a fresh session: the step
    count goes on, so --steps is the cumulative target and the export counts all training."""
    first = tiny_run(tiny_dataset, tmp_path / "a")
    weights = export(train(first), tmp_path / "a.safetensors")
    second = tiny_run(tiny_dataset, tmp_path / "b", steps=3, init=str(weights))
    continued = export(train(second), tmp_path / "b.safetensors")
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [r["step"] for r in rows] == ["2", "3"]  # two more steps, numbered after the first
    meta = read_metadata(continued)
    assert meta["steps"] == "3"  # hours go on too (rounded to 3.6 s in exports: too coarse to assert here)


def test_fewshot_model_distilled_from_a_class_conditioned_teacher(tmp_path, tiny_dataset):
    """--teacher: the student starts from the teacher's separator, and the FiLM-matching term is
    logged beside the -SDR loss; a few-shot model is refused as a teacher."""
    import pytest
    import torch

    from mss_cli.errors import UsageError
    from mss_cli.model import ConditionedUNet, ModelConfig
    from mss_research.train import adopt_teacher

    cc = tiny_run(tiny_dataset, tmp_path / "cc", kind="classcond")
    teacher_path = export(train(cc), tmp_path / "cc.safetensors")
    teacher = load_model(teacher_path, fuse=False)
    student = ConditionedUNet(ModelConfig(channels=TINY_CHANNELS))
    encoder_before = {k: v.clone() for k, v in student.encoder.state_dict().items()}
    adopt_teacher(student, teacher)
    for name, value in teacher.state_dict().items():
        if name.startswith(("unet.", "film.", "input_")):
            assert torch.equal(student.state_dict()[name], value), name
    assert all(torch.equal(student.encoder.state_dict()[k], v) for k, v in encoder_before.items())

    fs = tiny_run(tiny_dataset, tmp_path / "fs", steps=2, val_every=2, teacher=str(teacher_path))
    train(fs)
    rows = list(csv.DictReader((tmp_path / "fs" / "log.csv").open()))
    assert rows and all(float(r["distill"]) > 0 and np.isfinite(float(r["distill"])) for r in rows)

    student_path = export(tmp_path / "fs" / "last.safetensors", tmp_path / "fs.safetensors")
    bad = tiny_run(tiny_dataset, tmp_path / "bad", teacher=str(student_path))
    with pytest.raises(UsageError, match="class-conditioned"):
        train(bad)
    bad.teacher, bad.init = str(tmp_path / "missing.safetensors"), ""
    with pytest.raises(UsageError, match="not found"):  # exit 2, like any bad weights file
        train(bad)


def test_example_contrast_prefers_the_anchors_own_class():
    """The contrast term is low when each target lies nearest its class's clips (its floor with two
    such clips is log 2), high when nearest another class's; padded clips take no part."""
    import torch

    from mss_research.train import example_contrast

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    clips = torch.stack([torch.stack([a, a, b]), torch.stack([b, b, a])])  # episode 1's third clip is padding
    valid = torch.tensor([[True, True, False], [True, True, False]])
    classes = torch.tensor([3, 7])
    right = example_contrast(torch.stack([a, b]), clips, valid, classes)
    wrong = example_contrast(torch.stack([b, a]), clips, valid, classes)
    assert abs(right - math.log(2)) < 0.01 and wrong > 5.0
    # the padding (pointing the "wrong" way) changes nothing while it is masked
    assert torch.isclose(right, example_contrast(torch.stack([a, b]), clips[:, :2], valid[:, :2], classes))


def test_tiny_run_with_the_example_contrast_term(tmp_path, tiny_dataset):
    """--contrast-weight logs its term beside the -SDR loss; the baseline, which has no example
    encoder, refuses it."""
    import pytest

    from mss_cli.errors import UsageError

    cfg = tiny_run(tiny_dataset, tmp_path / "fs", steps=2, val_every=2, contrast_weight=0.5)
    train(cfg)
    rows = list(csv.DictReader((tmp_path / "fs" / "log.csv").open()))
    assert rows and all(float(r["contrast"]) > 0 and np.isfinite(float(r["contrast"])) for r in rows)
    assert not any(r["distill"] for r in rows)
    cc = tiny_run(tiny_dataset, tmp_path / "cc", kind="classcond", contrast_weight=0.5)
    with pytest.raises(UsageError, match="contrast"):
        train(cc)


def test_learning_rate_schedule_and_its_resumption(tmp_path, tiny_dataset):
    """--lr-final: a cosine from --lr where the schedule began down to --lr-final at --steps; a
    resumed run continues the same curve (its start is kept in the checkpoint)."""
    from mss_research.train import learning_rate

    cfg = TrainConfig(data="", run="", lr=1e-3, lr_final=1e-5, steps=1100)
    assert learning_rate(cfg, 100, 100) == 1e-3
    assert math.isclose(learning_rate(cfg, 600, 100), (1e-3 + 1e-5) / 2)
    assert math.isclose(learning_rate(cfg, 1100, 100), 1e-5) and math.isclose(learning_rate(cfg, 5000, 100), 1e-5)
    assert learning_rate(TrainConfig(data="", run="", lr=1e-3), 600, 100) == 1e-3  # no --lr-final: constant

    run = tiny_run(tiny_dataset, tmp_path / "r", steps=2, val_every=10, lr=1e-3, lr_final=1e-4)
    train(run)
    run.steps = 4  # resumed with a new end: the curve still starts at step 0
    train(run)
    with safe_open(str(tmp_path / "r" / "last.safetensors"), "pt") as fh:
        assert fh.metadata()["schedule_start"] == "0"
    rows = list(csv.DictReader((tmp_path / "r" / "log.csv").open()))
    logged = {int(r["step"]): float(r["lr"]) for r in rows}
    # step 2 of 2 ran at the middle of its curve; step 4 of 4 at 3/4 of the curve begun at step 0
    assert math.isclose(logged[2], 1e-4 + 4.5e-4, rel_tol=0.01)
    assert math.isclose(logged[4], 1e-4 + 4.5e-4 * (1 + math.cos(0.75 * math.pi)), rel_tol=0.01)

    # --schedule-start: a run trained at a constant rate, resumed with a decay that begins at the step
    # it had reached (Adam's state kept), then resumed again with a later end: the same start holds
    from mss_cli.errors import UsageError

    flat = tiny_run(tiny_dataset, tmp_path / "f", steps=2, val_every=10, lr=1e-3)
    train(flat)
    flat.lr_final, flat.schedule_start = 1e-4, 2
    for flat.steps in (4, 6):
        train(flat)
    logged = {int(r["step"]): float(r["lr"]) for r in csv.DictReader((tmp_path / "f" / "log.csv").open())}
    assert logged[2] == 1e-3 and math.isclose(logged[6], 1e-4 + 4.5e-4 * (1 + math.cos(0.75 * math.pi)), rel_tol=0.01)
    flat.schedule_start = 6
    with pytest.raises(UsageError, match="--schedule-start 6: a step before --steps 6"):
        train(flat)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_validation_runs_on_the_gpu_the_model_trains_on(tiny_dataset):
    # Found on a lent H200: episodes are numpy (CPU) and validation must move them to the model.
    from mss_cli.model import ConditionedUNet
    from mss_research.data.episodes import EpisodeSampler
    from mss_research.train import model_config, validate

    episodes = [EpisodeSampler(tiny_dataset, "val", 255 * 512, 44100, seed=1).sample(positives=2, negatives=1)]
    for kind in ("fewshot", "classcond"):
        model = ConditionedUNet(model_config(TrainConfig(data="", run="", kind=kind, channels=TINY_CHANNELS))).cuda()
        assert all(np.isfinite(validate(model, episodes, use_negatives=True)))


def test_curve_of_a_run_without_validation(tmp_path):
    # A run stopped from outside before any validation (the GPU run) still gets its loss curve.
    from mss_research.train import LOG_COLUMNS, plot_curve

    with (tmp_path / "log.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(
            {**dict.fromkeys(LOG_COLUMNS, ""), "step": s, "loss": -s / 10, "hours": 0.1} for s in (10, 20, 30)
        )
    plot_curve(tmp_path / "log.csv", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_init_and_teacher_follow_classes_by_name():
    """A baseline from an earlier taxonomy version: --init copies its class vectors by name (the
    classes added since start fresh) and refuses another kind or U-Net; as a --teacher it is refused
    for a dataset with classes it has no vector for, instead of indexing past its table."""
    from mss_cli.errors import UsageError
    from mss_cli.model import ConditionedUNet, ModelConfig
    from mss_research.train import start_from, teacher_films

    def classcond(names: list[str], channels=TINY_CHANNELS) -> ConditionedUNet:
        model = ConditionedUNet(
            ModelConfig(kind="classcond", channels=channels, num_classes=len(names), class_names=names)
        )
        torch.nn.init.normal_(model.film.weight)  # a trained-looking FiLM generator (it starts at zero)
        return model

    old, new = classcond(["piano", "bass"]), classcond(["piano", "bass", "banjo"])
    banjo = new.class_table.weight[2].detach().clone()
    start_from(new, old)
    assert torch.equal(new.class_table.weight[:2], old.class_table.weight)
    assert torch.equal(new.class_table.weight[2], banjo)
    assert all(torch.equal(new.state_dict()[k], v) for k, v in old.state_dict().items() if k.startswith("unet."))
    with pytest.raises(UsageError, match="--init: the weights are a classcond model"):
        start_from(ConditionedUNet(ModelConfig(channels=TINY_CHANNELS)), old)
    with pytest.raises(UsageError, match="widths 4,8,8,8,8,8"):
        start_from(classcond(["piano", "bass"], channels=[4, 8, 8, 8, 8, 16]), old)

    with torch.no_grad():
        swapped = old.film(old.class_table.weight[[1, 0]])
    assert torch.allclose(teacher_films(old, ["bass", "piano"]), swapped)
    with pytest.raises(UsageError, match="no class vector for 1 of this dataset's classes \\(banjo\\)"):
        teacher_films(old, ["piano", "bass", "banjo"])


def test_fp16_export_keeps_values_beyond_its_range_in_float32(tmp_path):
    """A batch norm's running variance after a strongly scaled layer (seen at 1.5e7 in a
    bottleneck-FiLM run) is infinity in fp16, which silences its channels: such tensors stay float32,
    and the half-size file separates as the model does."""
    from conftest import TINY

    from mss_cli.model import ConditionedUNet, ModelConfig
    from mss_cli.weights import save_model

    torch.manual_seed(0)
    model = ConditionedUNet(ModelConfig(**TINY)).eval()
    with torch.no_grad():
        model.unet.dec_norm[0].running_var.fill_(1.5e7)
        model.unet.dec_norm[0].weight.fill_(3e3)  # the mask still depends on those channels
    path = save_model(model, tmp_path / "w.safetensors")
    with safe_open(str(path), "pt") as fh:
        assert fh.get_tensor("unet.dec_norm.0.running_var").dtype == torch.float32
        assert fh.get_tensor("unet.dec_norm.0.weight").dtype == torch.float16
    loaded = load_model(path, fuse=False).eval()
    feats = torch.rand(2, 1, TINY["bins"], 32)
    cond = torch.randn(2, TINY["cond_dim"])
    with torch.no_grad():
        assert torch.allclose(loaded.mask(feats, cond), model.mask(feats, cond), atol=2e-2)


def test_training_draws_recorded_stems_and_validates_on_held_out_songs(tmp_path, tiny_dataset, tiny_real_dataset):
    """--real: recorded stems join the synthetic data, and the held-out songs are a validation curve;
    --instruments: real-instrument recordings are another."""
    from conftest import tone

    from mss_research.data.realstems import write_stems
    from mss_research.train import training_sources

    for song in range(3):  # a real-instrument dataset (--instruments): validated on, never trained on
        stems = {
            cls: (tone(4.0, freq=f * (1 + 0.05 * song), seed=song) * 8000).astype(np.int16)
            for cls, f in (("violin", 440.0), ("cello", 130.0))
        }
        write_stems(tmp_path / "instruments", f"quartet-{song}", stems, "tones", "real")
    cfg = tiny_run(
        tiny_dataset,
        tmp_path / "run",
        real=[str(tiny_real_dataset)],
        real_share=0.4,
        instruments=[str(tmp_path / "instruments")],
    )
    assert training_sources(cfg) == ([str(tiny_dataset), str(tiny_real_dataset)], [0.6, 0.4])
    train(cfg)
    row = next(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert math.isfinite(float(row["val_sdri_real"])) and math.isfinite(float(row["val_sdri_real_neg"]))
    assert math.isfinite(float(row["val_sdri_instruments"])) and math.isfinite(float(row["val_sdri_instruments_neg"]))
