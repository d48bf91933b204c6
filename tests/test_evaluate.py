"""Test-split evaluation (cxlseg.evaluation.evaluate): the production predictor and clean-up, per-image loss and metrics."""

import json

import numpy as np
import pandas as pd
import pytest
from cxlseg.evaluation.evaluate import evaluate_inference, evaluate_model, score_predictions
from cxlseg.evaluation.paper_metrics import paper_scores
from cxlseg.inference.predictor import Predictor
from cxlseg.metrics import bce_dice_loss, image_metrics
from helpers.training import evaluation_files


def test_evaluate_writes_per_image_table_and_summary(trained, tmp_path, infer_settings):
    settings = infer_settings(tta_flip=True)
    summary = evaluate_model(trained.checkpoint, trained.store, evaluation_files(tmp_path), settings)
    per_image = pd.read_csv(tmp_path / "test_per_image.csv")
    assert list(per_image.columns) == [
        "image_id",
        "dataset",
        "label",
        "loss",
        "dice",
        "iou",
        "precision",
        "recall",
        "hd95",
    ]
    assert per_image["image_id"].tolist() == [f"test-{i}" for i in range(6)]
    assert per_image[["dice", "iou", "precision", "recall"]].apply(lambda c: c.between(0, 1).all()).all()
    assert (per_image["loss"] > 0).all()
    on_disk = json.loads((tmp_path / "test_summary.json").read_text())
    assert on_disk["metrics"]["dice"]["mean"] == pytest.approx(per_image["dice"].mean())
    assert on_disk["metrics"]["loss"]["mean"] == pytest.approx(per_image["loss"].mean())
    assert on_disk["metrics"]["hd95"]["p5"] == pytest.approx(np.percentile(per_image["hd95"], 5))
    assert set(on_disk["metrics"]["iou"]) >= {"mean", "std", "p5"}
    assert summary["architecture"] == "sa_unet" and summary["tta_flip"] is True and summary["params"] > 0
    assert summary["model_id"] == Predictor.from_checkpoints(trained.checkpoint, device="cpu").model_id
    assert summary["postprocess"] == {
        "closing": 5,
        "opening": 3,
        "keep_components": 2,
        "fill_holes": True,
        "min_component_fraction": 0.005,
    }
    assert summary["by_dataset"]["demo"]["dice"]["n"] == 6


def test_the_loss_column_is_the_training_loss_of_the_predicted_probabilities(trained, tmp_path, infer_settings):
    settings = infer_settings()
    evaluate_model(trained.checkpoint, trained.store, evaluation_files(tmp_path), settings)
    per_image = pd.read_csv(tmp_path / "test_per_image.csv")
    images, masks = np.load(trained.store / "test_images.npy"), np.load(trained.store / "test_masks.npy")
    probs = Predictor.from_checkpoints(trained.checkpoint, device="cpu").predict(images, out_size=32)
    expected = [bce_dice_loss(p, m) for p, m in zip(probs, masks)]
    assert per_image["loss"].tolist() == pytest.approx(expected, rel=1e-5)
    # the authors' scoring of the same probabilities, beside the per-image columns (no clean-up)
    summary = json.loads((tmp_path / "test_summary.json").read_text())
    assert summary["paper_metrics"] == pytest.approx(paper_scores(probs, masks), rel=1e-5)


def test_the_infer_clean_up_is_applied_to_every_mask(trained, tmp_path, infer_settings):
    # a minimum component size of the whole image drops every component: all masks empty
    evaluate_model(
        trained.checkpoint,
        trained.store,
        evaluation_files(tmp_path / "erased"),
        infer_settings(postprocess={"min_component_fraction": 1.0}),
    )
    erased = pd.read_csv(tmp_path / "erased" / "test_per_image.csv")
    assert (erased["dice"] == 0).all()
    assert erased["hd95"].tolist() == pytest.approx([np.hypot(32, 32)] * 6)
    evaluate_model(trained.checkpoint, trained.store, evaluation_files(tmp_path / "kept"), infer_settings())
    kept = pd.read_csv(tmp_path / "kept" / "test_per_image.csv")
    assert (kept["dice"] > 0).any()
    assert kept["loss"].tolist() == erased["loss"].tolist()  # the loss is of the probabilities, before clean-up


def test_score_predictions_uses_threshold_and_clean_up(infer_settings):
    truth = np.zeros((2, 32, 32), np.uint8)
    truth[:, 8:24, 4:13] = 1  # away from the image border and 6 px apart: closing changes nothing
    truth[:, 8:24, 19:28] = 1
    probs = np.where(truth > 0, 0.7, 0.1).astype(np.float32)
    probs[1, 0, 0] = 0.9  # a speck the clean-up removes
    index = pd.DataFrame({"image_id": ["a", "b"], "dataset": "demo", "label": "normal"})
    settings = infer_settings()
    scored = score_predictions(probs, truth, index, settings)
    expected = [image_metrics(settings.postprocess.clean(p, 0.5), t) for p, t in zip(probs, truth)]
    assert scored[list(expected[0])].to_dict("records") == expected and scored["image_id"].tolist() == ["a", "b"]
    assert scored["dice"][0] == scored["dice"][1] > 0.95  # the speck is gone
    assert image_metrics(probs[1] >= 0.5, truth[1])["precision"] < scored["precision"][1] == 1.0
    assert scored["loss"].tolist() == pytest.approx([bce_dice_loss(p, t) for p, t in zip(probs, truth)])
    assert (score_predictions(probs, truth, index, infer_settings(threshold=0.8))["dice"] == 0).all()
    unindexed = score_predictions(probs, truth, pd.DataFrame(index=range(2)), infer_settings())
    assert unindexed["image_id"].tolist() == ["0", "1"] and unindexed["dataset"].tolist() == ["", ""]


def test_other_splits_get_their_own_files(trained, tmp_path, infer_settings):
    evaluate_model(
        trained.checkpoint, trained.store, evaluation_files(tmp_path, "validate"), infer_settings(), split="validate"
    )
    assert (tmp_path / "validate_per_image.csv").is_file() and (tmp_path / "validate_summary.json").is_file()
    assert len(pd.read_csv(tmp_path / "validate_per_image.csv")) == 6


def test_an_empty_split_is_an_error(trained, tmp_path, make_store, infer_settings):
    store = make_store(tmp_path / "store", counts=(("train", 2), ("validate", 1), ("test", 0)))
    with pytest.raises(ValueError, match="holds no images"):
        evaluate_model(trained.checkpoint, store, evaluation_files(tmp_path / "out"), infer_settings())


def test_the_inference_ensemble_is_scored_with_the_production_predictor(trained, tmp_path, infer_settings):
    """Table IV scores each network alone; the masks come from inference's ensemble, scored here on the same split."""
    import shutil

    second = tmp_path / "second.pt"
    shutil.copy(trained.checkpoint, second)
    selected = {
        "architecture": "sa_unet",
        "checkpoint": str(trained.checkpoint),
        "ranking": ["sa_unet", "unet"],
        "checkpoints": {"sa_unet": str(trained.checkpoint), "unet": str(second)},
    }
    settings = infer_settings(ensemble=2)
    summary = evaluate_inference(selected, trained.store, evaluation_files(tmp_path / "inference"), settings)
    assert summary["members"] == ["sa_unet", "unet"] and summary["architecture"] == "sa_unet+unet"
    assert summary["n_images"] == 6 and summary["metrics"]["dice"]["n"] == 6
    single = evaluate_model(trained.checkpoint, trained.store, evaluation_files(tmp_path / "single"), settings)
    # two copies of one network average to that network: the same Dice, measured by a two-member predictor
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(single["metrics"]["dice"]["mean"], abs=1e-6)
    assert "+" in summary["model_id"]
    one = evaluate_inference(selected, trained.store, evaluation_files(tmp_path / "one"), infer_settings(ensemble=1))
    assert one["members"] == ["sa_unet"]
