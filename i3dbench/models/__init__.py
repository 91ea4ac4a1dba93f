"""I3D models: ``build_model(entry)`` gives MMAction2's Recognizer3D (ResNet3d + I3DHead).

State-dict keys equal MMAction2's, so its checkpoints load strictly (see checkpoints.py).
"""

from .complexity import Complexity, count_params_macs
from .head import I3DHead
from .nonlocal3d import NonLocal3d
from .recognizer import Recognizer3D, build_i3d, build_model
from .resnet3d import ResNet3d

__all__ = [
    "Complexity",
    "I3DHead",
    "NonLocal3d",
    "Recognizer3D",
    "ResNet3d",
    "build_i3d",
    "build_model",
    "count_params_macs",
]
