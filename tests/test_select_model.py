"""Table IV, learning curves and the validation-based choice of the model that segments the archive (cxlseg.evaluation.select_model)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.evaluation.select_model import (
    ComparisonFiles,
    best_epoch,
    compare_models,
    comparison_markdown,
    select_model,
)


def fake_model(tmp_path, arch, val_dice, test_dice, val_loss=(0.5, 0.4, 0.3), test_loss=0.25):
    """A summary + history pair as evaluate_model and train_model write them."""
    folder = tmp_path / arch
    folder.mkdir()
    epochs = len(val_dice)
    pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "train_loss": np.linspace(1, 0.2, epochs),
            "train_dice": np.linspace(0.5, 0.9, epochs),
            "val_loss": val_loss[:epochs],
            "val_dice": val_dice,
            "val_iou": val_dice,
            "val_precision": val_dice,
            "val_recall": val_dice,
            "lr": 1e-4,
            "seconds": 1.0,
        }
    ).to_csv(folder / "history.csv", index=False)
    stat = {"mean": test_dice, "std": 0.01, "p5": test_dice - 0.02, "n": 5}
    summary = {
        "architecture": arch,
        "checkpoint": f"results/models/{arch}/checkpoint_best.pt",
        "params": 1000,
        "n_images": 5,
        "metrics": {m: dict(stat) for m in ("dice", "iou", "precision", "recall")}
        | {
            "hd95": {"mean": 3.0, "std": 1.0, "p5": 1.0, "n": 5},
            "loss": {"mean": test_loss, "std": 0.01, "p5": test_loss, "n": 5},
        },
    }
    (folder / "test_summary.json").write_text(json.dumps(summary))
    return folder / "test_summary.json", folder / "history.csv"


def comparison_files(folder) -> ComparisonFiles:
    """The select_model rule's outputs, in `folder`."""
    names = ("comparison.csv", "comparison.md", "learning_curves.png", "selected.json")
    return ComparisonFiles(*(Path(folder) / name for name in names))


def compare(models, out, **kw):
    kw.setdefault("select_metric", "dice")
    files = comparison_files(out)
    return compare_models({a: s for a, (s, _) in models.items()}, {a: h for a, (_, h) in models.items()}, files, **kw)


def test_selection_uses_the_validation_metric_not_the_test_metric(tmp_path):
    models = {
        "unet": fake_model(tmp_path, "unet", [0.80, 0.93, 0.90], test_dice=0.80),
        "sa_unet": fake_model(tmp_path, "sa_unet", [0.85, 0.88, 0.91], test_dice=0.97),
    }
    out = tmp_path / "out"
    selected = compare(models, out)
    assert selected == {
        "architecture": "unet",
        "checkpoint": "results/models/unet/checkpoint_best.pt",
        "metric": "dice",
        "value": pytest.approx(0.93),
        "split": "validate",
        "forced": False,
        "ranking": ["unet", "sa_unet"],
        "checkpoints": {
            "sa_unet": "results/models/sa_unet/checkpoint_best.pt",
            "unet": "results/models/unet/checkpoint_best.pt",
        },
    }
    assert json.loads((out / "selected.json").read_text())["architecture"] == "unet"
    table = pd.read_csv(out / "comparison.csv")
    assert table.set_index("model").loc["unet", "best_epoch"] == 2
    assert table.set_index("model").loc["sa_unet", "dice"] == pytest.approx(0.97)
    assert table.set_index("model").loc["sa_unet", "loss"] == pytest.approx(0.25)
    curves = cv2.imread(str(out / "learning_curves.png"))
    assert curves is not None and curves.shape[1] > curves.shape[0]  # one column per model


def test_table_iv_has_the_loss_column_and_marks_the_selected_model(tmp_path):
    models = {
        "unet": fake_model(tmp_path, "unet", [0.80, 0.93], test_dice=0.80, test_loss=0.31),
        "sa_unet": fake_model(tmp_path, "sa_unet", [0.85, 0.88], test_dice=0.97, test_loss=0.12),
    }
    compare(models, tmp_path / "out")
    lines = (tmp_path / "out" / "comparison.md").read_text().splitlines()
    assert lines[0] == "| Model | Loss | Dice | IoU | Recall | Precision | HD95 (px) | Params | Best epoch |"
    assert len(lines) == 4
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert set(rows) == {"sa_unet", "**unet** (selected)"}
    assert (
        rows["sa_unet"].split("|")[2].strip() == "0.1200"
        and rows["**unet** (selected)"].split("|")[2].strip() == "0.3100"
    )


def test_inference_model_forces_the_choice(tmp_path):
    models = {
        "unet": fake_model(tmp_path, "unet", [0.80, 0.93], test_dice=0.80),
        "sa_unet": fake_model(tmp_path, "sa_unet", [0.85, 0.88], test_dice=0.97),
    }
    selected = compare(models, tmp_path / "out", inference_model="sa_unet")
    assert selected["architecture"] == "sa_unet" and selected["forced"] is True
    assert selected["checkpoint"] == "results/models/sa_unet/checkpoint_best.pt"
    assert selected["value"] == pytest.approx(0.88) and selected["ranking"] == ["unet", "sa_unet"]
    assert "| **sa_unet** (selected) |" in (tmp_path / "out" / "comparison.md").read_text()


def test_a_forced_model_that_was_not_trained_is_a_clear_error(tmp_path):
    models = {"unet": fake_model(tmp_path, "unet", [0.80, 0.93], test_dice=0.80)}
    with pytest.raises(ValueError, match=r"inference_model 'sa_unet' was not trained; trained: unet"):
        compare(models, tmp_path / "out", inference_model="sa_unet")
    assert not (tmp_path / "out" / "selected.json").exists()


def test_selection_by_loss_minimises(tmp_path):
    models = {
        "unet": fake_model(tmp_path, "unet", [0.9, 0.9], 0.9, val_loss=(0.5, 0.2)),
        "sa_unet": fake_model(tmp_path, "sa_unet", [0.95, 0.95], 0.9, val_loss=(0.4, 0.3)),
    }
    selected = compare(models, tmp_path / "out", select_metric="loss")
    assert selected["architecture"] == "unet" and selected["value"] == pytest.approx(0.2)
    assert selected["ranking"] == ["unet", "sa_unet"]


def test_ties_are_broken_by_name_and_earlier_epoch(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.9, 0.95, 0.95], "val_loss": [0.3, 0.2, 0.2]})
    assert best_epoch(history)["epoch"] == 2
    assert best_epoch(history, "loss")["epoch"] == 2
    models = {
        "unet": fake_model(tmp_path, "unet", [0.9], 0.9),
        "attention_unet": fake_model(tmp_path, "attention_unet", [0.9], 0.9),
    }
    assert compare(models, tmp_path / "out")["architecture"] == "attention_unet"


def test_mismatched_inputs_are_rejected(tmp_path):
    summary, history = fake_model(tmp_path, "unet", [0.9], 0.9)
    with pytest.raises(ValueError, match="unmatched"):
        compare_models(
            {"unet": summary},
            {"unet": history, "sa_unet": history},
            comparison_files(tmp_path / "out"),
            select_metric="dice",
        )
    with pytest.raises(ValueError, match="val_hd95"):
        best_epoch(pd.read_csv(history), "hd95")
    with pytest.raises(ValueError, match="at least one"):
        compare_models({}, {}, comparison_files(tmp_path / "out"), select_metric="dice")


def test_select_model_on_a_table():
    table = pd.DataFrame({"model": ["a", "b", "c"], "val_dice": [0.8, 0.9, 0.9], "checkpoint": ["x", "y", "z"]})
    chosen = select_model(table, "dice")
    assert chosen["architecture"] == "b" and chosen["ranking"] == ["b", "c", "a"] and chosen["checkpoint"] == "y"
    assert select_model(table, "dice", forced="a")["architecture"] == "a"


def test_markdown_has_one_row_per_model():
    table = pd.DataFrame(
        [
            {
                "model": "unet",
                "loss": 0.1234,
                "dice": 0.95,
                "dice_std": 0.01,
                "iou": 0.9,
                "precision": 0.96,
                "recall": 0.94,
                "hd95": 4.5,
                "params": 24430097,
                "best_epoch": 12,
            }
        ]
    )
    assert (
        comparison_markdown(table).splitlines()[2]
        == "| unet | 0.1234 | 0.9500 ± 0.0100 | 0.9000 | 0.9400 | 0.9600 | 4.50 | 24,430,097 | 12 |"
    )
    assert comparison_markdown(table, "unet").splitlines()[2].startswith("| **unet** (selected) | 0.1234 |")


def test_table_iv_carries_the_authors_scoring_in_columns_of_its_own(tmp_path):
    """paper_ columns (from test_summary.json's paper_metrics) beside the per-image ones, and a second table."""
    models = {"unet": fake_model(tmp_path, "unet", [0.80, 0.93], test_dice=0.80)}
    summary_path = models["unet"][0]
    summary = json.loads(summary_path.read_text())
    summary["paper_metrics"] = {
        "paper_loss_pct": 12.345,
        "paper_soft_dice": 0.91,
        "paper_soft_iou": 0.85,
        "paper_recall": 0.93,
        "paper_precision": 0.95,
    }
    summary_path.write_text(json.dumps(summary))
    compare(models, tmp_path / "out")
    row = pd.read_csv(tmp_path / "out" / "comparison.csv").iloc[0]
    assert row["paper_soft_dice"] == pytest.approx(0.91) and row["dice"] == pytest.approx(0.80)
    assert row["paper_loss_pct"] == pytest.approx(12.345)
    text = (tmp_path / "out" / "comparison.md").read_text()
    assert "| unet | 12.35 | 0.9100 | 0.8500 | 0.9300 | 0.9500 |" in text
    assert text.splitlines()[0].startswith("| Model | Loss | Dice |")  # the per-image table stays first
