"""ResearchGym: machine-learning research as a Gymnasium environment.

Importing the package registers its envs, e.g. ``gymnasium.make("researchgym/Digits-v0")``.
``ENV_IDS`` lists the envs that work out of the box; ``FILE_ENV_IDS`` those that
read dataset files from a directory you give (``data_dir=...``).
"""

from importlib.metadata import PackageNotFoundError, version

from researchgym.envs import ENV_IDS, FAST_ENV_IDS, FILE_ENV_IDS, register_envs

try:
    __version__ = version("researchgym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

register_envs()

__all__ = ["ENV_IDS", "FAST_ENV_IDS", "FILE_ENV_IDS", "__version__"]
