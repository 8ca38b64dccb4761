"""Training and evaluation on more than one machine, on Dask (``API.md`` § streamlin.distribute).

    est = sl.LinearClassifier(columns, model_dir="runs/ctr",
                              config=sl.RunConfig(train_distribute=Dask("tcp://10.0.0.1:8786")))

``Dask`` runs synchronous rounds on a Dask cluster (embedded, threads by default, or existing);
``InProcess`` runs the same rounds in this process (tests, and K beyond the machine's cores);
``predict_to_parquet`` writes one Parquet file of predictions per input file. Modules: ``plan``
(which rows each worker reads), ``tasks`` (the pure functions workers run), ``engine`` (the seam:
broadcast, run, close), ``driver`` (the round loop, merge, checkpoints, evaluate).
"""

from streamlin.distribute.engine import ClusterError
from streamlin.distribute.predict import predict_to_parquet
from streamlin.distribute.strategies import Dask, InProcess

__all__ = ["Dask", "InProcess", "predict_to_parquet", "ClusterError"]
