"""The synthetic demo archive: Shenzhen, Montgomery, V7-labs and MIMIC-CXR-JPG in their native layouts.

Every image is a phantom radiograph (:mod:`.render`) with an exact lung mask,
and the archive carries what real copies carry and the pipeline must survive:
images without masks, 16-bit PNGs holding 12-bit data, portrait and landscape
films, Darwin JSON in both polygon spellings (with a hole and an "Ignore"
region), lateral views and a CT slice, MIMIC studies without reports, one
whose report holds no extractable text, lateral and CT images labelled PA/AP,
a corrupt, a truncated, a missing and an RGB-encoded JPEG.

MIMIC CheXpert labels are drawn first and the images follow them: a study
labelled Pneumonia, Lung Lesion, Atelectasis or Pleural Effusion (1.0 or
-1.0) shows that finding inside the lungs of each of its frontal images, and
its report says so; the clutter outside the lungs is drawn independently.

Layout choices that differ from the real archives are documented in demo.json.
Same spec, same bytes.

Modules, one job each: :mod:`.raster` (drawing primitives), :mod:`.anatomy`,
:mod:`.findings`, :mod:`.clutter`, :mod:`.views` (frontal, lateral, CT scenes),
:mod:`.render` (`render_phantom`, `render_view_samples`), :mod:`.spec` (`DemoSpec`, the view films' settings),
:mod:`.layouts`
(Shenzhen, Montgomery, V7), :mod:`.mimic_plan`, :mod:`.mimic_report`,
:mod:`.mimic_archive` and :mod:`.generate` (`generate_demo`). Import from them: this package imports
nothing, so the DAG build reads `DemoSpec` without loading what draws the archive.
"""
