"""Training data from the simulator, and its formats.

- `dataset`: the dataset on disk (writer, reader, frame records, JPEG codec); `train/` and
  `export/` read it from here.
- `teacher` (scripted) and `vlm_teacher` (a vision-language model over HTTP): the reasoning text.
- `build_dataset`: `python -m dsdrive_ros.data.build_dataset`, episodes driven by the expert into a
  dataset; `dagger`: DAgger collection with the exported model driving in-process.
- `lmdrive_layout`: the LMDrive/LangAuto layout; `bag_export`: episodes as rosbag2 files;
  `shards`: a dataset as tar shards of whole episodes.
"""
