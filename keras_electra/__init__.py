"""keras-electra: ELECTRA pretraining with Keras 3 on the TensorFlow backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_electra.config import PretrainingConfig  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PretrainingConfig"]

from keras_electra.optimization import AdamWeightDecay, WarmupPolynomialDecay  # noqa: E402
from keras_electra.presets import list_presets  # noqa: E402
from keras_electra.pretrainer import ElectraPretrainer  # noqa: E402
from keras_electra.training import pretrain  # noqa: E402
from keras_electra.hub import PushToHubCallback, push_to_hub  # noqa: E402

__all__ += ["AdamWeightDecay", "ElectraPretrainer", "WarmupPolynomialDecay", "list_presets",
            "pretrain", "PushToHubCallback", "push_to_hub"]
