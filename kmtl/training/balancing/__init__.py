"""Task balancing: how a multi-task model weighs its tasks' losses while
it trains, selected by name.

| name | strategy | backends |
|---|---|---|
| `fixed` | `TaskSpec.weight` (with `PLEWeightSchedule`: PLE's schedule) | all |
| `uncertainty` | learned uncertainty (Kendall et al. 2018) | all |
| `dwa` | Dynamic Weight Average (Liu et al. 2019), per epoch | all |
| `gradnorm` | GradNorm (Chen et al. 2018) | TensorFlow, JAX |
| `metabalance` | MetaBalance (He et al. 2022) | TensorFlow, JAX |

Example:

```python
model = kmtl.build("mmoe", spec, task_balancing="uncertainty")
# or: kmtl.training.balance(model, "gradnorm", alpha=1.5) before fit
history = model.fit(kmtl.data.to_dataset(df, spec), epochs=3)
history.history["weight_cvr"]
```
"""

from kmtl.training.balancing.base import GradientBalancing
from kmtl.training.balancing.base import TaskBalancing
from kmtl.training.balancing.dwa import DynamicWeightAverage
from kmtl.training.balancing.fixed import FixedWeights
from kmtl.training.balancing.gradnorm import GradNorm
from kmtl.training.balancing.metabalance import MetaBalance
from kmtl.training.balancing.ple_schedule import PLEWeightSchedule
from kmtl.training.balancing.registry import balance
from kmtl.training.balancing.registry import get
from kmtl.training.balancing.registry import list_balancing
from kmtl.training.balancing.registry import register_balancing
from kmtl.training.balancing.uncertainty import UncertaintyWeighting
from kmtl.training.balancing.weight_log import TaskWeightLog

__all__ = [
    "DynamicWeightAverage",
    "FixedWeights",
    "GradNorm",
    "GradientBalancing",
    "MetaBalance",
    "PLEWeightSchedule",
    "TaskBalancing",
    "TaskWeightLog",
    "UncertaintyWeighting",
    "balance",
    "get",
    "list_balancing",
    "register_balancing",
]
