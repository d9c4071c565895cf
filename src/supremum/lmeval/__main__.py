"""`python -m supremum.lmeval [lm-eval's own arguments]`: lm-eval's CLI with model type
`supremum` registered, e.g. `python -m supremum.lmeval --model supremum --model_args
artifact=PATH --tasks hellaswag`. (lm-eval 0.4 loads no plugins by entry point.)"""

from lm_eval.__main__ import cli_evaluate

import supremum.lmeval.adapter  # noqa: F401 - registers model type "supremum"
from supremum.lmeval import gitinfo

if __name__ == "__main__":
    gitinfo.install()
    cli_evaluate()
