"""Export store rows to plain Parquet/CSV files and episodes to Minari datasets."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.errors import DependencyNotInstalled, shorten
from researchgym.store.catalog import Episode, sql_string
from researchgym.store.schema import StoreError
from researchgym.store.store import Store

FORMATS = ("parquet", "csv")

#: How an export error names its options, for Python and command-line users alike.
_WITHOUT_ENV = "recover_env=False (--without-env on the command line)"
_REPEAT_LAST_OBS = "repeat_last_obs=True (--repeat-last-obs on the command line)"


def export_table(
    store: Store,
    path: str | os.PathLike[str],
    format: str = "parquet",
    env_id: str | None = None,
) -> int:
    """Write the store's step rows to one file, ordered by campaign and step.

    The file is written under a temporary name and renamed into place.

    Args:
        store: Store to read.
        path: Output file.
        format: ``"parquet"`` or ``"csv"`` (vector columns become ``[x, y]`` text).
        env_id: Only rows of this env.

    Returns:
        The number of rows written.

    Raises:
        StoreError: If ``format`` is unknown.
    """
    if format not in FORMATS:
        raise StoreError(
            f"unknown export format {shorten(format)}; use one of {', '.join(FORMATS)}"
        )
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    where = f" WHERE env_id = {sql_string(env_id)}" if env_id is not None else ""
    select = f"SELECT * FROM steps{where} ORDER BY campaign_id, step"
    options = "FORMAT parquet, COMPRESSION zstd" if format == "parquet" else "FORMAT csv, HEADER"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        store.catalog.copy_to(select, tmp, options)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    count = f"SELECT count(*) FROM steps{where}"
    if format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    return int(store.sql(count).column(0)[0].as_py())


@contextlib.contextmanager
def _minari_root(datasets_path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Point Minari at ``datasets_path`` (its API reads MINARI_DATASETS_PATH)."""
    if datasets_path is None:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(datasets_path).expanduser().absolute())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def default_dataset_id(env_id: str, name: str = "store") -> str:
    """Minari dataset id for an env id: ``researchgym/Digits-v0`` -> ``researchgym/Digits/store-v0``.

    Args:
        env_id: Gymnasium env id, optionally namespaced and versioned.
        name: Dataset name part.

    Returns:
        A Minari ``namespace/env/name-vN`` id.
    """
    namespace, _, rest = env_id.rpartition("/")
    base, sep, version = rest.rpartition("-v")
    if not sep or not version.isdigit():
        base, version = rest, "0"
    parts = [p for p in (namespace, base) if p]
    return "/".join([*parts, f"{name}-v{version}"])


def export_minari(
    store: Store,
    dataset_id: str,
    env_id: str | None = None,
    *,
    agent: str | None = None,
    datasets_path: str | os.PathLike[str] | None = None,
    author: str | None = "researchgym",
    description: str | None = None,
    recover_env: bool = True,
    repeat_last_obs: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Write episodes as a Minari dataset that ``minari.load_dataset`` loads.

    Observations are the flat ``obs`` vectors (then the last step's ``next_obs``);
    actions are the ``action_flat`` vectors, the flat encoding of the settings each
    step ran (stepping the recovered env with one runs the same settings).
    With ``recover_env`` the dataset carries the env's spec (the keyword arguments
    the rows recorded in ``env_kwargs``, else the registered ones, with
    ``interface="flat"`` and ``store=False``; pass
    ``store=`` to ``recover_environment`` to record) and the flat interface's
    spaces, so ``dataset.recover_environment()`` makes the env; otherwise the
    spaces are unbounded boxes of the recorded sizes and there is no spec.

    Episodes follow Minari's layout: n steps have n + 1 observations (the one
    ``reset`` returned, then the one each step returned), n actions, rewards,
    terminations and truncations, and n + 1 ``infos`` (``val_score``, NaN when
    none, ``run_id`` and ``step``; the reset's entry is NaN, ``""`` and -1).
    An episode that stopped before it terminated is truncated at its last
    step, as Minari's ``DataCollector`` does. Steps recorded without a flat
    action (invalid actions) get NaN actions.

    Args:
        store: Store to read.
        dataset_id: Minari id, e.g. ``researchgym/Digits/random-v0``.
        env_id: Only episodes of this env (needed when envs differ in vector sizes).
        agent: Only episodes of this agent.
        datasets_path: Minari datasets root; defaults to Minari's own
            (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``).
        author: Recorded in the dataset metadata.
        description: Recorded in the dataset metadata.
        recover_env: Attach the env spec and its real spaces (the env must be
            registered with gymnasium).
        repeat_last_obs: End episodes recorded without the observation
            their last step returned (stores written before the ``next_obs``
            column) with their last recorded observation instead of failing.
        progress: Called with (episodes done, episodes total).

    Returns:
        The created ``minari.MinariDataset``.

    Raises:
        StoreError: If the dataset exists, there are no episodes, vector sizes differ between
            episodes or from the env's spaces, no step has a flat action, or
            ``recover_env`` is set and the episodes are not of one registered env
            recorded with one set of env arguments, or episodes lack their final
            observation and ``repeat_last_obs`` is not set.
        DependencyNotInstalled: If minari is not installed.
    """
    try:
        import gymnasium as gym
        import minari
        from minari.data_collector import EpisodeBuffer
        from minari.storage import get_dataset_path
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise DependencyNotInstalled(
            "exporting to Minari needs the minari package: pip install 'researchgym[offline]'"
        ) from exc

    with _minari_root(datasets_path):
        path = get_dataset_path(dataset_id)
    if path.exists():
        raise StoreError(
            f"Minari dataset {dataset_id!r} already exists at {path}; delete it "
            f"(minari.delete_dataset) or export under another id or datasets root"
        )
    where = []
    params: list[Any] = []
    for column, value in (("env_id", env_id), ("agent", agent)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    total = int(
        store.sql(f"SELECT count(DISTINCT campaign_id) FROM steps{clause}", params)
        .column(0)[0]
        .as_py()
    )
    if total == 0:
        scope = f" for env {env_id!r}" if env_id else ""
        raise StoreError(f"no episodes to export{scope} in store {store.path}")

    buffers = []
    obs_dim: int | None = None
    act_dim: int | None = None
    env_ids: set[str] = set()
    without_final = 0  # episodes without the observation their last step returned
    for i, episode in enumerate(store.iter_episodes(env_id=env_id, agent=agent)):
        env_ids.add(episode.env_id)
        obs_dim = _check_dim("obs", obs_dim, episode.observations, episode)
        if episode.final_observation is None:
            without_final += 1
        else:
            _check_dim("next_obs", obs_dim, episode.final_observation[None], episode)
        if episode.actions.shape[1]:
            act_dim = _check_dim("action_flat", act_dim, episode.actions, episode)
        buffers.append(episode)
        if progress is not None:
            progress(i + 1, total)
    if act_dim is None:
        raise StoreError(
            "no step in the selection has a flat action (action_flat is null everywhere); "
            "Minari needs fixed-size actions"
        )
    assert obs_dim is not None
    if without_final and not repeat_last_obs:
        raise StoreError(
            f"{without_final} of {total} episodes of {', '.join(sorted(env_ids))} were recorded "
            f"without the observation their last step returned (column next_obs, which stores "
            f"written before it lack), which Minari keeps as the final observation; "
            f"record them again, or end them with their last recorded observation: pass "
            f"{_REPEAT_LAST_OBS}"
        )
    spec = None
    if recover_env:
        recorded = store.sql(f"SELECT DISTINCT env_kwargs FROM steps{clause}", params)
        spec, observation_space, action_space = _flat_env(
            sorted(env_ids), recorded.column(0).to_pylist(), obs_dim, act_dim
        )
    else:
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)
        action_space = gym.spaces.Box(-np.inf, np.inf, shape=(act_dim,), dtype=np.float64)
    episodes = [
        _to_buffer(EpisodeBuffer, index, episode, observation_space, action_space)
        for index, episode in enumerate(buffers)
    ]
    repeated = (
        f" {without_final} episodes recorded without their final observation end with their "
        f"last observation repeated."
        if without_final
        else ""
    )
    text = description or (
        f"ResearchGym trajectories of {', '.join(sorted(env_ids))} exported from "
        f"{store.path}; observations are the flat observations the env returned, from reset "
        f"to the final one.{repeated}"
    )
    with _minari_root(datasets_path), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # metadata fields Minari only recommends
        return minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=episodes,
            env=spec,
            algorithm_name=agent or "researchgym-store",
            author=author,
            description=text,
            observation_space=observation_space,
            action_space=action_space,
            data_format="arrow",
        )


def _flat_env(
    env_ids: list[str], env_kwargs: list[str | None], obs_dim: int, act_dim: int
) -> tuple[Any, Any, Any]:
    """The flat-interface spec of the one env in ``env_ids``, and its spaces.

    The spec's keyword arguments are the registered ones updated with the rows'
    ``env_kwargs`` (one value in the whole selection; rows written before that
    column have none and take the registered arguments).
    """
    import gymnasium as gym

    if len(env_ids) != 1:
        raise StoreError(
            f"the episodes are of several envs {shorten(env_ids)}; export one env at a time "
            f"(env_id=...) or pass {_WITHOUT_ENV}"
        )
    try:
        registered = gym.spec(env_ids[0])
    except gym.error.Error as exc:
        raise StoreError(
            f"env {env_ids[0]!r} is not registered with gymnasium, so the dataset cannot "
            f"carry its spec; import the module that registers it or pass {_WITHOUT_ENV}"
        ) from exc
    if len(env_kwargs) != 1:
        raise StoreError(
            f"the episodes of {env_ids[0]} were recorded with different env arguments "
            f"{shorten(sorted(env_kwargs, key=str))}; export one campaign setting at a time "
            f"(e.g. agent=...) or pass {_WITHOUT_ENV}"
        )
    kwargs = {**registered.kwargs, **json.loads(env_kwargs[0] or "{}")}
    spec = dataclasses.replace(registered, kwargs={**kwargs, "interface": "flat", "store": False})
    env = gym.make(spec)
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    recorded = ((obs_dim,), (act_dim,))
    if (observation_space.shape, action_space.shape) != recorded:
        raise StoreError(
            f"recorded vectors of {env_ids[0]} have sizes obs {obs_dim}, action {act_dim}, "
            f"but the env's flat spaces have shapes {observation_space.shape} and "
            f"{action_space.shape}; export a store written by this env, or pass {_WITHOUT_ENV}"
        )
    return spec, observation_space, action_space


def _check_dim(name: str, current: int | None, array: np.ndarray, episode: Episode) -> int:
    dim = int(array.shape[1])
    if current is not None and dim != current:
        raise StoreError(
            f"{name} size {dim} in campaign {episode.campaign_id} ({episode.env_id}) differs "
            f"from {current} in earlier episodes; export one env at a time (env_id=...)"
        )
    return dim


def _to_buffer(
    buffer_type: Any, index: int, episode: Episode, observation_space: Any, action_space: Any
) -> Any:
    n = len(episode)
    final = episode.final_observation
    if final is None:
        final = episode.observations[-1]
    observations = np.vstack([episode.observations, final])
    truncations = episode.truncations.copy()
    truncations[-1] |= not episode.terminations[-1]
    actions = episode.actions
    if actions.shape[1] != action_space.shape[0]:
        actions = np.full((n, action_space.shape[0]), np.nan)
    # Plain lists: Minari's arrow storage cannot decode 1-D numpy info arrays.
    infos = {
        "val_score": [float("nan"), *episode.val_scores.tolist()],
        "run_id": ["", *episode.run_ids.tolist()],
        "step": [-1, *episode.steps.tolist()],
    }
    return buffer_type(
        id=index,
        seed=episode.seed,
        observations=observations.astype(observation_space.dtype),
        actions=actions.astype(action_space.dtype),
        rewards=episode.rewards,
        terminations=episode.terminations,
        truncations=truncations,
        infos=infos,
    )
