"""Options and knowledge (OaK): features, reward-respecting subtasks, options, option models, planning.

The pieces of Sutton's FC-STOMP progression, each a small set of pure functions over a
NamedTuple state (shapes in the docstrings; D observation components, A primitive actions,
N option slots):

  features.py  observation components (or code units, oakrl/learn/sparse_code.py) as features,
               with running activity and utility
  option.py    the option pool: one reward-respecting subtask per feature, its option learned
               off-policy by Q(lambda) with a stopping choice (policy + stopping condition)
  model.py     linear models of primitive actions and of options (reward until stopping,
               discount and features at stopping), learned off-policy with traces
  planning.py  Dyna-style value iteration over action and option models together; it reports
               how much each option improved a backup (the utility fed back to features)

The agent that runs them as one never-ending loop is oakrl/agents/oak.py; an option drawn on
Rooms-v0 (text and PNG) is oakrl/report/rooms.py.
"""

from oakrl.options.features import FeatureStats, features_init, features_update, propose_feature
from oakrl.options.model import (
    ActionModels,
    OptionModels,
    action_models_init,
    action_models_update,
    option_models_init,
    option_models_update,
)
from oakrl.options.option import (
    OptionPool,
    option_values,
    pool_init,
    pool_reset,
    pool_update,
    stopping_values,
)
from oakrl.options.planning import backup_values, plan

__all__ = [
    "ActionModels",
    "FeatureStats",
    "OptionModels",
    "OptionPool",
    "action_models_init",
    "action_models_update",
    "backup_values",
    "features_init",
    "features_update",
    "option_models_init",
    "option_models_update",
    "option_values",
    "plan",
    "pool_init",
    "pool_reset",
    "pool_update",
    "propose_feature",
    "stopping_values",
]
