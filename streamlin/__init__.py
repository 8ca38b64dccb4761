"""streamlin: a streaming linear learner, successor of ``tf.estimator.LinearClassifier``.

    import streamlin as sl
    from streamlin import feature_column as fc
"""

__version__ = "0.1.0"

from streamlin import checkpoints, distribute, feature_column, hashing, inputs, optimizers, spec  # noqa: E402
from streamlin.config import RunConfig, VocabInfo, WarmStartSettings  # noqa: E402
from streamlin.estimator import LinearClassifier  # noqa: E402
from streamlin.export import load_exported  # noqa: E402

__all__ = ["LinearClassifier", "RunConfig", "WarmStartSettings", "VocabInfo", "load_exported", "feature_column",
           "inputs", "optimizers", "checkpoints", "distribute", "hashing", "spec", "__version__"]
