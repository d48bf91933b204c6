"""Classifier comparison on original vs lung-segmented images (the paper's Table III), as the authors ran it.

Four torchvision CNNs learn all 14 CheXpert labels once from the original MIMIC-CXR-JPG radiographs and
once from the CXLSeg segmented images, on the CXLSeg patient split; thresholds come from the validate
split by Youden's J and accuracy, sensitivity, specificity and AUC are measured on the test split.

Modules, one job each: ``networks`` (the classifiers), ``cohort`` (labels, splits, image files),
``images`` (sizing and augmentation), ``engine`` (training, early stopping, prediction), ``roc``
(metrics), ``run`` (one model on one input), ``table3`` (the tables and the ROC figure),
``settings`` (the ``classify:`` config section). The rule scripts call ``run.train_and_evaluate`` and
``table3.summarise`` with the files their rules declare; nothing is imported here, so the DAG build, which
reads only ``settings``, does not load torch.
"""
