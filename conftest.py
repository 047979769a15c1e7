"""Settings for the whole test run (tests/ and the notebooks under nbval).

Quick mode shrinks the notebooks' measurements so the whole suite stays fast;
notebook kernels inherit this environment from pytest.
"""

import os

os.environ.setdefault("SOCKSERVER_KIT_QUICK", "1")
