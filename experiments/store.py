"""Finished runs on disk: OUT/runs/VARIANT/seed-N.json, one per variant and seed, and beside it
the run's serving export (seed-N/1, a version folder that `ihas serve --model_base_path` takes)
and, for a search, its gate histogram (seed-N.gates.json, which gates.png draws). So an
interrupted experiment resumes where it stopped and seeds can run in separate processes (or
sessions) that share OUT. A run made with other settings or data is an error, never mixed."""

import dataclasses
import json
import os

import keras

import ihas_keras
from experiments.variants import Settings, ignored_settings
from ihas_keras.errors import BadInputError

# Settings that change no number in a run's result.
_COSMETIC = ("progress", "verbose")
# The settings a search model depends on: a kept search is reused only when they match.
_SEARCH_SETTINGS = ("embedding_dim", "batch_size", "pretrain_epochs", "search_epochs",
                    "gate_every", "patience", "regularization_weight", "gate_learning_rate",
                    "gate_rank", "strategy")
# Settings added later, and the value every run stored before them was made with.
_INTRODUCED = {"shared_embedding": False, "routing": "gate", "gate_rank": 0,
               "strategy": "default"}
# How a run is evaluated: runs evaluated otherwise (earlier versions) are not mixed in.
EVALUATION = "serving export"


def comparable(settings: Settings) -> dict:
    """The settings a run's numbers depend on, and how the run is evaluated.

    Args:
        settings: the experiment's settings.

    Returns:
        Every setting but the cosmetic ones ("progress", "verbose"), plus "evaluation".
    """
    kept = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _COSMETIC}
    return {**kept, "evaluation": EVALUATION}


class RunStore:
    """The runs under OUT/runs made with SETTINGS on the data files PATHS.

    Args:
        out: the experiment's folder.
        settings: the experiment's settings.
        paths: the data files.
    """

    def __init__(self, out: str, settings: Settings, paths: list[str]) -> None:
        self.root = os.path.join(out, "runs")
        self.made_with = {"settings": comparable(settings),
                          "paths": [os.path.abspath(p) for p in paths]}

    def _path(self, variant: str, seed: int, part: str) -> str:
        return os.path.join(self.root, variant, f"seed-{seed}{part and '.' + part}.json")

    def export_dir(self, variant: str, seed: int) -> str:
        """The serving export of VARIANT on SEED: a version folder for `ihas serve`.

        Args:
            variant: the variant's name.
            seed: the seed.

        Returns:
            OUT/runs/VARIANT/seed-SEED/1.
        """
        return os.path.join(self.root, variant, f"seed-{seed}", "1")

    def _made_with(self, variant: str) -> dict:
        """The settings VARIANT's numbers depend on (`variants.ignored_settings`), and the data."""
        settings = dict(self.made_with["settings"])
        for key in ignored_settings(variant):
            settings.pop(key)
        return {"settings": settings, "paths": self.made_with["paths"]}

    def _search_made_with(self) -> dict:
        settings = {k: self.made_with["settings"][k] for k in _SEARCH_SETTINGS}
        return {"settings": settings, "paths": self.made_with["paths"]}

    def load_search(self, kind: str, seed: int) -> keras.Model | None:
        """The kept search model of KIND on SEED (OUT/runs/KIND/seed-SEED.search.keras), or None.

        Args:
            kind: the search's kind ("ihas", "ihas_3", "ihas_4").
            seed: the seed.

        Returns:
            The search model, not compiled; None when none is kept.

        Raises:
            BadInputError: it was made with other search settings or data, or is unreadable.
        """
        path = os.path.join(self.root, kind, f"seed-{seed}.search")
        if not os.path.exists(path + ".keras"):
            return None
        try:
            with open(path + ".json") as f:
                made_with = json.load(f)["made_with"]
            made_with["settings"] = {**{k: v for k, v in _INTRODUCED.items()
                                        if k in _SEARCH_SETTINGS}, **made_with["settings"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadInputError(f"{path}.json: not a kept search ({e}); delete "
                                f"{path}.keras to search again") from None
        if made_with != self._search_made_with():
            differ = sorted(k for k in _SEARCH_SETTINGS
                            if made_with["settings"].get(k) != self.made_with["settings"][k])
            what = f"settings ({', '.join(differ)})" if differ else "data files"
            raise BadInputError(f"{path}.keras: searched with other {what}; use another --out "
                                f"or delete it")
        return ihas_keras.load_model(path + ".keras")

    def save_search(self, kind: str, seed: int, model: keras.Model) -> None:
        """Keeps the search model of KIND on SEED, atomically, with the settings it was made with.

        Args:
            kind: the search's kind.
            seed: the seed.
            model: the searched model.
        """
        path = os.path.join(self.root, kind, f"seed-{seed}.search")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".json.tmp", "w") as f:
            json.dump({"made_with": self._search_made_with()}, f, indent=1)
        model.save(path + ".tmp.keras")
        os.replace(path + ".json.tmp", path + ".json")
        os.replace(path + ".tmp.keras", path + ".keras")

    def get(self, variant: str, seed: int, part: str = "") -> dict | None:
        """The stored result of VARIANT on SEED (or its PART, such as "gates"), or None.

        Args:
            variant: the variant's name (or a search's kind, for "gates").
            seed: the seed.
            part: "" for the run's result, or a part's name.

        Returns:
            The result; None when none is stored.

        Raises:
            BadInputError: it is unreadable or was made with other settings or data.
        """
        path = self._path(variant, seed, part)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                stored = json.load(f)
            made_with, result = stored["made_with"], stored["result"]
            settings, paths = {**_INTRODUCED, **made_with["settings"]}, made_with["paths"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadInputError(f"{path}: not a finished run ({e}); delete it to run it again") \
                from None
        expected = self._made_with(variant)
        differ = sorted(k for k, v in expected["settings"].items() if settings.get(k) != v)
        if differ or paths != expected["paths"]:
            what = f"settings ({', '.join(differ)})" if differ else "data files"
            raise BadInputError(f"{path}: made with other {what}; use another --out or delete "
                                f"{self.root}")
        return result

    def put(self, variant: str, seed: int, result: dict, part: str = "") -> None:
        """Stores RESULT (or PART) atomically (a killed process leaves no half-written run).

        Args:
            variant: the variant's name (or a search's kind, for "gates").
            seed: the seed.
            result: what to store (JSON).
            part: "" for the run's result, or a part's name.
        """
        path = self._path(variant, seed, part)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump({"made_with": self._made_with(variant), "result": result}, f, indent=1)
        os.replace(path + ".tmp", path)
