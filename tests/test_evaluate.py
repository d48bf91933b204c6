"""Test-split evaluation, the comparison table and the validation-based choice of model."""

import functools
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cxlseg.evaluate import best_epoch, compare_models, comparison_markdown, describe_callable, evaluate_model
from cxlseg.train import train_model
from test_train import make_store, tiny_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    store = make_store(root / "store")
    train_model(store, root / "model", tiny_config(epochs=2))
    return store, root / "model" / "checkpoint_best.pt"


def test_evaluate_writes_per_image_table_and_summary(trained, tmp_path):
    store, checkpoint = trained
    summary = evaluate_model(checkpoint, store, tmp_path, tta_flip=True)
    per_image = pd.read_csv(tmp_path / "test_per_image.csv")
    assert list(per_image.columns) == ["image_id", "dataset", "label", "dice", "iou", "precision", "recall", "hd95"]
    assert per_image["image_id"].tolist() == [f"test-{i}" for i in range(6)]
    assert per_image[["dice", "iou", "precision", "recall"]].apply(lambda c: c.between(0, 1).all()).all()
    on_disk = json.loads((tmp_path / "test_summary.json").read_text())
    assert on_disk["metrics"]["dice"]["mean"] == pytest.approx(per_image["dice"].mean())
    assert on_disk["metrics"]["hd95"]["p5"] == pytest.approx(np.percentile(per_image["hd95"], 5))
    assert set(on_disk["metrics"]["iou"]) >= {"mean", "std", "p5"}
    assert summary["architecture"] == "sa_unet" and summary["tta_flip"] is True and summary["params"] > 0


def test_postprocess_is_applied_to_every_mask(trained, tmp_path):
    store, checkpoint = trained

    def erase(mask):
        return np.zeros_like(mask)

    summary = evaluate_model(checkpoint, store, tmp_path, postprocess=erase)
    per_image = pd.read_csv(tmp_path / "test_per_image.csv")
    assert (per_image["dice"] == 0).all()
    assert per_image["hd95"].tolist() == pytest.approx([np.hypot(32, 32)] * 6)
    assert summary["postprocess"] == "erase"


def test_other_splits_get_their_own_files(trained, tmp_path):
    store, checkpoint = trained
    evaluate_model(checkpoint, store, tmp_path, split="val")
    assert (tmp_path / "val_per_image.csv").is_file() and (tmp_path / "val_summary.json").is_file()


def fake_model(tmp_path, arch, val_dice, test_dice, val_loss=(0.5, 0.4, 0.3)):
    """A summary + history pair as evaluate_model and train_model write them."""
    folder = tmp_path / arch
    folder.mkdir()
    epochs = len(val_dice)
    pd.DataFrame({"epoch": range(1, epochs + 1), "train_loss": np.linspace(1, 0.2, epochs),
                  "train_dice": np.linspace(0.5, 0.9, epochs), "val_loss": val_loss[:epochs],
                  "val_dice": val_dice, "val_iou": val_dice, "val_precision": val_dice, "val_recall": val_dice,
                  "lr": 1e-4, "seconds": 1.0}).to_csv(folder / "history.csv", index=False)
    stat = {"mean": test_dice, "std": 0.01, "p5": test_dice - 0.02, "n": 5}
    summary = {"architecture": arch, "checkpoint": f"results/models/{arch}/checkpoint_best.pt", "params": 1000,
               "n_images": 5, "metrics": {m: dict(stat) for m in ("dice", "iou", "precision", "recall")}
               | {"hd95": {"mean": 3.0, "std": 1.0, "p5": 1.0, "n": 5}}}
    (folder / "test_summary.json").write_text(json.dumps(summary))
    return folder / "test_summary.json", folder / "history.csv"


def test_selection_uses_the_validation_metric_not_the_test_metric(tmp_path):
    models = {"unet": fake_model(tmp_path, "unet", [0.80, 0.93, 0.90], test_dice=0.80),
              "sa_unet": fake_model(tmp_path, "sa_unet", [0.85, 0.88, 0.91], test_dice=0.97)}
    out = tmp_path / "out"
    selected = compare_models({a: s for a, (s, _) in models.items()}, {a: h for a, (_, h) in models.items()}, out)
    assert selected == {"architecture": "unet", "checkpoint": "results/models/unet/checkpoint_best.pt",
                        "metric": "dice", "value": pytest.approx(0.93), "split": "val"}
    assert json.loads((out / "selected.json").read_text())["architecture"] == "unet"
    table = pd.read_csv(out / "comparison.csv")
    assert table.set_index("model").loc["unet", "best_epoch"] == 2
    assert table.set_index("model").loc["sa_unet", "dice"] == pytest.approx(0.97)
    markdown = (out / "comparison.md").read_text()
    assert markdown.startswith("| Model | Dice | IoU | Precision | Recall | HD95 (px) | Params | Best epoch |")
    assert markdown.count("\n") == 4
    curves = cv2.imread(str(out / "learning_curves.png"))
    assert curves is not None and curves.shape[1] > curves.shape[0]  # one column per model


def test_selection_by_loss_minimises(tmp_path):
    models = {"unet": fake_model(tmp_path, "unet", [0.9, 0.9], 0.9, val_loss=(0.5, 0.2)),
              "sa_unet": fake_model(tmp_path, "sa_unet", [0.95, 0.95], 0.9, val_loss=(0.4, 0.3))}
    selected = compare_models({a: s for a, (s, _) in models.items()}, {a: h for a, (_, h) in models.items()},
                              tmp_path / "out", select_metric="loss")
    assert selected["architecture"] == "unet" and selected["value"] == pytest.approx(0.2)


def test_ties_are_broken_by_name_and_earlier_epoch(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.9, 0.95, 0.95]})
    assert best_epoch(history)["epoch"] == 2
    models = {"unet": fake_model(tmp_path, "unet", [0.9], 0.9),
              "attention_unet": fake_model(tmp_path, "attention_unet", [0.9], 0.9)}
    selected = compare_models({a: s for a, (s, _) in models.items()}, {a: h for a, (_, h) in models.items()},
                              tmp_path / "out")
    assert selected["architecture"] == "attention_unet"


def test_mismatched_inputs_are_rejected(tmp_path):
    summary, history = fake_model(tmp_path, "unet", [0.9], 0.9)
    with pytest.raises(ValueError, match="unmatched"):
        compare_models({"unet": summary}, {"unet": history, "sa_unet": history}, tmp_path / "out")
    with pytest.raises(ValueError, match="val_hd95"):
        best_epoch(pd.read_csv(history), "hd95")


def test_markdown_has_one_row_per_model():
    table = pd.DataFrame([{"model": "unet", "dice": 0.95, "dice_std": 0.01, "iou": 0.9, "precision": 0.96,
                           "recall": 0.94, "hd95": 4.5, "params": 24430097, "best_epoch": 12}])
    assert comparison_markdown(table).splitlines()[2] == \
        "| unet | 0.9500 ± 0.0100 | 0.9000 | 0.9600 | 0.9400 | 4.50 | 24,430,097 | 12 |"


def test_postprocess_description_is_stable():
    def clean(mask, closing=3, fill=True):
        return mask

    assert describe_callable(functools.partial(clean, fill=False, closing=5)) == "clean(closing=5, fill=False)"
    assert describe_callable(None) is None
