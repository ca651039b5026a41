"""Where camera frames enter: ROS image fields -> numpy, camera sync, resize + normalise. ROS-free."""
from .image_codec import (SUPPORTED_ENCODINGS, ImageDecodeError, compressed_from_msg, decode_compressed,
                          decode_image, encode_compressed, encode_image, fill_compressed_msg,
                          fill_image_msg, image_from_msg)
from .preprocess import Preprocessor
from .reduce import FrameReducer, ReducedFrame
from .sync import CameraSync, FrameSet

__all__ = ["SUPPORTED_ENCODINGS", "ImageDecodeError", "decode_image", "decode_compressed", "encode_image",
           "encode_compressed", "image_from_msg", "compressed_from_msg", "fill_image_msg",
           "fill_compressed_msg", "CameraSync", "FrameSet", "Preprocessor", "FrameReducer",
           "ReducedFrame"]
